// Package painfile reads the identifiers acquit needs from an outgoing SEPA
// file (pain.001 credit transfers, pain.008 direct debits) before it is sent,
// so acknowledgements can be matched to it later: MsgId, PmtInfIds,
// EndToEndIds with their amounts. It streams: memory does not grow with the
// number of transactions beyond the list it returns.
package painfile

import (
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
}

// MaxTxs bounds the number of transactions read (a 100 MB file holds about
// 200,000).
const MaxTxs = 2_000_000

// Read extracts Info from a pain.001 or pain.008 document.
func Read(r io.Reader) (*Info, error) {
	dec := xml.NewDecoder(r)
	dec.Strict = true
	info := &Info{}
	var path []string
	var cur *Tx
	var pmtInf string
	sum := new(big.Rat)
	var text strings.Builder
	inParty := "" // "Cdtr"/"Dbtr" while inside the counterparty of a tx
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
			text.Reset()
			switch t.Name.Local {
			case "CdtTrfTxInf", "DrctDbtTxInf":
				if len(info.Txs) >= MaxTxs {
					return nil, fmt.Errorf("painfile: more than %d transactions", MaxTxs)
				}
				cur = &Tx{PmtInfID: pmtInf}
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
			if text.Len() < 4096 {
				text.Write(t)
			}
		case xml.EndElement:
			v := strings.TrimSpace(text.String())
			name := t.Name.Local
			parent := ""
			if len(path) >= 2 {
				parent = path[len(path)-2]
			}
			switch {
			case name == "MsgId" && parent == "GrpHdr":
				info.MsgID = v
			case name == "NbOfTxs" && parent == "GrpHdr":
				info.NbOfTxs = v
			case name == "CtrlSum" && parent == "GrpHdr":
				info.CtrlSum = v
			case name == "PmtInfId":
				pmtInf = v
				info.PmtInfIDs = append(info.PmtInfIDs, v)
			case cur != nil && name == "InstrId" && parent == "PmtId":
				cur.InstrID = v
			case cur != nil && name == "EndToEndId" && parent == "PmtId":
				cur.EndToEndID = v
			case cur != nil && name == "InstdAmt":
				cur.Amount = v
				if _, ok := new(big.Rat).SetString(v); !ok {
					return nil, fmt.Errorf("painfile: transaction %q: bad amount %q", cur.EndToEndID, v)
				}
			case cur != nil && name == "Nm" && parent == inParty && inParty != "":
				cur.Name = v
			case cur != nil && name == "IBAN" && inParty == "" && (parent == "Id") && len(path) >= 3 && (path[len(path)-3] == "CdtrAcct" || path[len(path)-3] == "DbtrAcct"):
				cur.IBAN = v
			case name == "Cdtr" || name == "Dbtr":
				inParty = ""
			case name == "CdtTrfTxInf" || name == "DrctDbtTxInf":
				if cur != nil {
					a, _ := new(big.Rat).SetString(cur.Amount)
					if a != nil {
						sum.Add(sum, a)
					}
					info.Txs = append(info.Txs, *cur)
				}
				cur = nil
			}
			path = path[:len(path)-1]
			text.Reset()
		}
	}
	if info.Kind == "" {
		return nil, errors.New("painfile: empty document")
	}
	if info.MsgID == "" {
		return nil, errors.New("painfile: no GrpHdr/MsgId")
	}
	info.Sum = sum.FloatString(2)
	return info, nil
}
