// Package painfile reads the identifiers acquit needs from an outgoing SEPA
// file (pain.001 credit transfers, pain.008 direct debits) before it is sent,
// so acknowledgements can be matched to it later: MsgId, PmtInfIds,
// EndToEndIds with their amounts. It streams: Scan hands each transaction to
// a callback and holds none of them, Read collects them, ReadHeader stops
// after the group header.
package painfile

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
)

// ErrDoctype is returned for documents carrying a DOCTYPE (entity
// declarations are never expanded).
var ErrDoctype = errors.New("painfile: DOCTYPE/entity declarations are not allowed")

// Tx is one transaction of the file.
type Tx struct {
	PmtInfID   string `json:"pmt_inf_id"`
	InstrID    string `json:"instr_id,omitempty"`
	EndToEndID string `json:"end_to_end_id"`
	Amount     string `json:"amount"` // decimal text as in the file
	Currency   string `json:"currency"`
	Name       string `json:"name,omitempty"` // creditor (pain.001) or debtor (pain.008)
	IBAN       string `json:"iban,omitempty"`
}

// Info is what acquit records about an outgoing file.
type Info struct {
	Namespace string   `json:"namespace"`
	Kind      string   `json:"kind"` // "pain.001" or "pain.008"
	MsgID     string   `json:"msg_id"`
	NbOfTxs   string   `json:"nb_of_txs"`
	CtrlSum   string   `json:"ctrl_sum"`
	PmtInfIDs []string `json:"pmt_inf_ids"`
	Txs       []Tx     `json:"txs"`
	// Sum is the sum of the transaction amounts as decimal text.
	Sum string `json:"sum"`
	// Count is the number of transactions found (len(Txs) after Read).
	Count int64 `json:"count"`
	// Currency is the currency of every transaction, "" when they differ
	// or there is none.
	Currency string `json:"currency,omitempty"`
}

// MaxTxs bounds the number of transactions read (a 100 MB file holds about
// 200,000).
const MaxTxs = 2_000_000

// Read extracts Info, every transaction included, from a pain.001 or
// pain.008 document. Its memory grows with the number of transactions: use
// Scan for files of any size.
func Read(r io.Reader) (*Info, error) {
	var txs []Tx
	info, err := Scan(r, func(t Tx) error {
		txs = append(txs, t)
		return nil
	}, true)
	if err != nil {
		return nil, err
	}
	info.Txs = txs
	return info, nil
}

// ReadHeader reads the group header only (kind, namespace, MsgId, NbOfTxs,
// CtrlSum) and stops at the first payment information block: it reads a
// few kilobytes of any file.
func ReadHeader(r io.Reader) (*Info, error) {
	return scan(r, nil, false, true)
}

// Scan reads a pain.001 or pain.008 document and calls fn with each
// transaction, in file order; an error from fn ends the scan and is
// returned. The Info returned has no Txs (Count, Sum and Currency are
// computed as they pass) and, unless pmtInfIDs, no PmtInfIDs: its memory
// does not grow with the file.
func Scan(r io.Reader, fn func(Tx) error, pmtInfIDs bool) (*Info, error) {
	return scan(r, fn, pmtInfIDs, false)
}

func scan(r io.Reader, fn func(Tx) error, pmtInfIDs, headerOnly bool) (*Info, error) {
	dec := xml.NewDecoder(r)
	dec.Strict = true
	info := &Info{}
	var path []string
	var cur *Tx
	var pmtInf string
	sum := new(big.Rat)
	var text []byte // the current element's character data (up to 4 KiB)
	val := func() string { return string(bytes.TrimSpace(text)) }
	var amt big.Rat // the current transaction's amount, parsed once
	haveAmt := false
	inParty := ""   // "Cdtr"/"Dbtr" while inside the counterparty of a tx
	currencies := 0 // 0: none seen, 1: one (info.Currency), 2: several
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("painfile: %w", err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return nil, ErrDoctype
		case xml.StartElement:
			if len(path) == 0 {
				if t.Name.Local != "Document" {
					return nil, fmt.Errorf("painfile: root element %q, want Document", t.Name.Local)
				}
				info.Namespace = t.Name.Space
				switch {
				case strings.Contains(t.Name.Space, "pain.001"):
					info.Kind = "pain.001"
				case strings.Contains(t.Name.Space, "pain.008"):
					info.Kind = "pain.008"
				default:
					return nil, fmt.Errorf("painfile: namespace %q is neither pain.001 nor pain.008", t.Name.Space)
				}
			}
			if len(path) > 64 {
				return nil, errors.New("painfile: elements nested too deep")
			}
			path = append(path, t.Name.Local)
			text = text[:0]
			if headerOnly && t.Name.Local == "PmtInf" {
				return finish(info, sum, true)
			}
			switch t.Name.Local {
			case "CdtTrfTxInf", "DrctDbtTxInf":
				if info.Count >= MaxTxs {
					return nil, fmt.Errorf("painfile: more than %d transactions", MaxTxs)
				}
				cur = &Tx{PmtInfID: pmtInf}
				haveAmt = false
			case "InstdAmt":
				if cur != nil {
					for _, a := range t.Attr {
						if a.Name.Local == "Ccy" {
							cur.Currency = a.Value
						}
					}
				}
			case "Cdtr", "Dbtr":
				if cur != nil {
					inParty = t.Name.Local
				}
			}
		case xml.CharData:
			if len(text) < 4096 {
				text = append(text, t...)
			}
		case xml.EndElement:
			name := t.Name.Local
			parent := ""
			if len(path) >= 2 {
				parent = path[len(path)-2]
			}
			switch {
			case name == "MsgId" && parent == "GrpHdr":
				info.MsgID = val()
			case name == "NbOfTxs" && parent == "GrpHdr":
				info.NbOfTxs = val()
			case name == "CtrlSum" && parent == "GrpHdr":
				info.CtrlSum = val()
			case name == "PmtInfId":
				pmtInf = val()
				if pmtInfIDs {
					info.PmtInfIDs = append(info.PmtInfIDs, pmtInf)
				}
			case cur != nil && name == "InstrId" && parent == "PmtId":
				cur.InstrID = val()
			case cur != nil && name == "EndToEndId" && parent == "PmtId":
				cur.EndToEndID = val()
			case cur != nil && name == "InstdAmt":
				cur.Amount = val()
				if _, ok := amt.SetString(cur.Amount); !ok {
					return nil, fmt.Errorf("painfile: transaction %q: bad amount %q", cur.EndToEndID, cur.Amount)
				}
				haveAmt = true
			case cur != nil && name == "Nm" && parent == inParty && inParty != "":
				cur.Name = val()
			case cur != nil && name == "IBAN" && inParty == "" && (parent == "Id") && len(path) >= 3 && (path[len(path)-3] == "CdtrAcct" || path[len(path)-3] == "DbtrAcct"):
				cur.IBAN = val()
			case name == "Cdtr" || name == "Dbtr":
				inParty = ""
			case name == "CdtTrfTxInf" || name == "DrctDbtTxInf":
				if cur != nil {
					if haveAmt {
						sum.Add(sum, &amt)
					}
					info.Count++
					switch {
					case currencies == 0:
						info.Currency, currencies = cur.Currency, 1
					case currencies == 1 && cur.Currency != info.Currency:
						info.Currency, currencies = "", 2
					}
					if fn != nil {
						if err := fn(*cur); err != nil {
							return nil, err
						}
					}
				}
				cur = nil
			}
			path = path[:len(path)-1]
			text = text[:0]
		}
	}
	return finish(info, sum, false)
}

func finish(info *Info, sum *big.Rat, header bool) (*Info, error) {
	if info.Kind == "" {
		return nil, errors.New("painfile: empty document")
	}
	if info.MsgID == "" {
		return nil, errors.New("painfile: no GrpHdr/MsgId")
	}
	if !header {
		info.Sum = sum.FloatString(2)
	}
	return info, nil
}
