package acks

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Entry is one acknowledgement statement, flattened across PSR, HAC and PTK
// so that daemon/transmissions can store, match and apply entries uniformly.
type Entry struct {
	Kind     string // "psr", "hac", "ptk" (as detected: a HAC sent as PSR is "hac")
	Doc      string // ZIP entry name, "" for a bare document
	Level    string // "group", "pmtinf", "tx", "hac", "ptk"
	Ref      string // what it is about: OrgnlMsgId, PmtInfId, EndToEndId, HAC action, "line N"
	Status   Status // PSR: effective status; HAC/PTK: ACTC/RJCT if final, else PDNG if negative, RCVD if it shows receipt or signature, none otherwise
	Stage    Stage
	Final    bool // the bank's final word on the order or the transaction
	Positive bool
	Reasons  []Reason
	// ReasonCode is the first reason's code; ReasonText all reasons'
	// AddtlInf (HAC/PTK: the entry text), joined by " / ".
	ReasonCode string
	ReasonText string
	At         time.Time
	// Match keys.
	MsgID, PmtInfID, EndToEndID, InstrID  string
	OrderID, OrderType, PartnerID, UserID string
	Amount, Currency                      string
}

// ParseOptions tell ParseEntries what it reads.
type ParseOptions struct {
	Kind   string      // "psr", "hac" or "ptk"
	PTK    *PTKProfile // required for "ptk"
	Ref    time.Time   // reference time for PTK dates without a year
	Limits Limits
	// KeepAcceptedTxs also returns accepted PSR transactions as entries
	// (by default only the non-accepted ones are, with their effective
	// status; the group and PmtInf entries carry the match keys).
	KeepAcceptedTxs bool
	// OnEntry, when set, receives each entry as it is parsed instead of
	// Parsed.Entries collecting them (a caller converting entries keeps
	// one copy, not two); its error stops the parse and is returned.
	OnEntry func(Entry) error
}

// Parsed is the result of ParseEntries.
type Parsed struct {
	Entries []Entry // empty when ParseOptions.OnEntry took them
	// Count is the number of entries parsed.
	Count     int
	Unmatched []PTKLine // PTK lines no pattern matched (never dropped)
	Skipped   []string  // ZIP entries that are not XML documents
	Raw       string    // PTK text as decoded

	onEntry func(Entry) error
}

// add keeps e, or hands it to ParseOptions.OnEntry.
func (out *Parsed) add(e Entry) error {
	out.Count++
	if out.onEntry != nil {
		return out.onEntry(e)
	}
	out.Entries = append(out.Entries, e)
	return nil
}

// ParseEntries parses one downloaded acknowledgement (a bare document or a
// ZIP container of several) into flat entries. PSR and HAC are told apart
// by their group header (OrgnlMsgId/OrgnlMsgNmId "EBICS" is HAC), whatever
// kind the bank delivered them as. Errors are *ParseError.
func ParseEntries(data []byte, o ParseOptions) (*Parsed, error) {
	return ParseEntriesAt(bytes.NewReader(data), int64(len(data)), o)
}

// MaxPTKBytes bounds a bare PTK protocol read by ParseEntriesAt (it is
// read whole): plain text of a few lines per order never comes near it.
const MaxPTKBytes = 64 << 20

// ParseEntriesAt is ParseEntries over a download read through ra (size
// bytes), e.g. its spool file: PSR and HAC documents are streamed and ZIP
// containers read in place, so memory does not grow with the download (a
// PTK protocol, plain text of a few lines per order, is read whole, up to
// MaxPTKBytes).
func ParseEntriesAt(ra io.ReaderAt, size int64, o ParseOptions) (*Parsed, error) {
	lim := o.Limits.withDefaults()
	out := &Parsed{onEntry: o.OnEntry}
	switch o.Kind {
	case "ptk":
		if isZipAt(ra, size) {
			skipped, err := eachDocumentAt(ra, size, lim, true, func(entry string, r io.Reader) error {
				b, err := io.ReadAll(io.LimitReader(r, lim.MaxBytes+1))
				if err != nil {
					return &ParseError{Kind: ErrContainer, Format: "zip", Entry: clip(entry), Err: err}
				}
				return out.addPTK(entry, b, o, lim)
			})
			out.Skipped = skipped
			if err != nil {
				return nil, err
			}
			return out, nil
		}
		if size > min(lim.MaxBytes, MaxPTKBytes) {
			return nil, &ParseError{Kind: ErrTooLarge, Format: "ptk", Detail: fmt.Sprintf("%d bytes, more than %d", size, min(lim.MaxBytes, MaxPTKBytes))}
		}
		data := make([]byte, size)
		if _, err := ra.ReadAt(data, 0); err != nil && !errors.Is(err, io.EOF) {
			return nil, &ParseError{Kind: ErrPTK, Format: "ptk", Err: err}
		}
		if err := out.addPTK("", data, o, lim); err != nil {
			return nil, err
		}
		return out, nil
	case "psr", "hac":
	default:
		return nil, &ParseError{Kind: ErrMalformed, Format: o.Kind, Detail: fmt.Sprintf("unknown acknowledgement kind %q", clip(o.Kind))}
	}
	skipped, err := eachDocumentAt(ra, size, lim, false, func(entry string, r io.Reader) error {
		return out.addXML(entry, r, o, lim)
	})
	out.Skipped = skipped
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (out *Parsed) addPTK(doc string, data []byte, o ParseOptions, lim Limits) error {
	res, err := ParsePTK(data, o.PTK, o.Ref, lim)
	if err != nil {
		return err
	}
	if out.Raw != "" {
		out.Raw += "\n"
	}
	out.Raw += res.Raw
	out.Unmatched = append(out.Unmatched, res.Unmatched...)
	for _, e := range res.Entries {
		en := Entry{Kind: "ptk", Doc: doc, Level: "ptk", Ref: "line " + strconv.Itoa(e.Line), At: e.Time, Final: e.Final,
			Positive: e.Outcome == PTKPositive, OrderID: e.OrderID, OrderType: e.OrderType, UserID: e.UserID, PartnerID: e.PartnerID,
			ReasonCode: e.Code, ReasonText: e.Text}
		r := Reason{Code: e.Code}
		if e.Text != "" {
			r.AddtlInf = []string{e.Text}
		}
		en.Reasons = []Reason{r}
		f := FactsFromPTK("", []PTKEntry{e})
		en.Stage, en.Status = f.Stage, f.GroupStatus
		if en.Status == StatusNone && en.Stage >= StageReceived {
			en.Status = StatusRCVD
		}
		if err := out.add(en); err != nil {
			return err
		}
	}
	return nil
}

func (out *Parsed) addXML(doc string, r io.Reader, o ParseOptions, lim Limits) error {
	hac := false
	h := PSRHandler{
		OnGroup: func(g *PSRGroup) error {
			hac = IsHACGroup(g)
			if hac {
				return nil
			}
			return out.add(psrEntry(doc, "group", g.OrgnlMsgId, g, "", g.GrpSts, g.Reasons))
		},
		OnPmtInf: func(g *PSRGroup, p *PSRPmtInf) error {
			if hac {
				reasons := p.Reasons
				if len(reasons) == 0 {
					reasons = []Reason{{}}
				}
				for _, rs := range reasons {
					e := hacEntry(p.OrgnlPmtInfId, rs)
					if err := out.add(entryFromHAC(doc, e)); err != nil {
						return err
					}
				}
				return nil
			}
			e := psrEntry(doc, "pmtinf", p.OrgnlPmtInfId, g, p.OrgnlPmtInfId, p.PmtInfSts, p.Reasons)
			return out.add(e)
		},
		OnTx: func(g *PSRGroup, p *PSRPmtInf, tx *PSRTx) error {
			if hac {
				return &ParseError{Kind: ErrMalformed, Format: "hac", Entry: doc, Detail: "transaction status in a HAC protocol"}
			}
			eff := EffectiveStatus(g, p, tx)
			if eff.Status.Positive() && !o.KeepAcceptedTxs {
				return nil
			}
			if out.Count >= lim.MaxCollect {
				return &ParseError{Kind: ErrTooMany, Format: "psr", Entry: doc, Detail: fmt.Sprintf("more than %d entries", lim.MaxCollect)}
			}
			e := psrEntry(doc, "tx", tx.OrgnlEndToEndId, g, tx.OrgnlPmtInfId, eff.Status, eff.Reasons)
			e.EndToEndID, e.InstrID, e.Amount, e.Currency = tx.OrgnlEndToEndId, tx.OrgnlInstrId, tx.Amount, tx.Currency
			if e.Ref == "" {
				e.Ref = tx.OrgnlInstrId
			}
			return out.add(e)
		},
	}
	_, err := ParsePSR(r, lim, h)
	return err
}

func psrEntry(doc, level, ref string, g *PSRGroup, pmtInfID string, st Status, reasons []Reason) Entry {
	e := Entry{Kind: "psr", Doc: doc, Level: level, Ref: ref, Status: st, Stage: stageOf(st), At: g.Created,
		MsgID: g.OrgnlMsgId, PmtInfID: pmtInfID, Reasons: reasons,
		Final: st == StatusRJCT || st == StatusPART || st.Positive(), Positive: st.Positive()}
	e.ReasonCode, e.ReasonText = reasonSummary(reasons)
	return e
}

func reasonSummary(rs []Reason) (code, text string) {
	var texts []string
	for _, r := range rs {
		if code == "" {
			code = r.Key()
		}
		if t := r.Text(); t != "" {
			texts = append(texts, t)
		}
	}
	return code, strings.Join(texts, " / ")
}

func entryFromHAC(doc string, h HACEntry) Entry {
	e := Entry{Kind: "hac", Doc: doc, Level: "hac", Ref: h.Action, At: h.Time, Final: h.Final, Positive: h.Positive,
		OrderID: h.OrderID, OrderType: h.OrderType, PartnerID: h.PartnerID, UserID: h.UserID,
		ReasonCode: h.ReasonCode, ReasonText: h.Text}
	r := Reason{Code: h.ReasonCode, Originator: h.Originator}
	if h.Text != "" {
		r.AddtlInf = strings.Split(h.Text, "\n")
	}
	e.Reasons = []Reason{r}
	f := FactsFromHAC("", []HACEntry{h})
	e.Stage, e.Status = f.Stage, f.GroupStatus
	if e.Status == StatusNone && e.Stage >= StageReceived {
		e.Status = StatusRCVD
	}
	if e.OrderType == "" && h.Service.ServiceName != "" {
		e.OrderType = h.Service.ServiceName
	}
	return e
}
