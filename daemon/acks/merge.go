package acks

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Stage is how far the bank says it got with a file, independent of the
// final status.
type Stage int

// Stages, in order.
const (
	StageNone              Stage = iota
	StageReceived                // upload received (HAC FILE_UPLOAD TS01, PSR RCVD)
	StageSignatureVerified       // signatures checked (HAC ES_VERIFICATION DS01)
	StageFinal                   // the bank gave a final word (PSR status, HAC FINAL)
)

// MarshalText renders the stage by name (JSON payloads).
func (s Stage) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// String names the stage.
func (s Stage) String() string {
	switch s {
	case StageReceived:
		return "received"
	case StageSignatureVerified:
		return "signature_verified"
	case StageFinal:
		return "final"
	}
	return "none"
}

// PmtInfFact is one PmtInf status of an acknowledgement.
type PmtInfFact struct {
	PmtInfId string
	Status   Status
	Reasons  []Reason
}

// TxFact is one transaction status of an acknowledgement.
type TxFact struct {
	Level      Level // where the status was stated (tx, or pmtinf/group when inherited)
	PmtInfId   string
	EndToEndId string
	InstrId    string
	Status     Status
	Reasons    []Reason
	Amount     string
	Currency   string
}

// AckFacts is what one acknowledgement document says about one
// transmission, whatever its kind. Build it with PSRFactsBuilder,
// FactsFromHAC or FactsFromPTK.
type AckFacts struct {
	Source       string // "psr", "hac", "ptk"
	DocID        string // caller's id of the stored document
	At           time.Time
	Stage        Stage
	GroupStatus  Status
	GroupReasons []Reason
	PmtInfs      []PmtInfFact
	Txs          []TxFact // non-accepted transactions (and accepted ones if kept)
	AcceptedTxs  int      // accepted transactions seen but not kept
}

// PSRFactsBuilder collects the facts of one PSR while it streams: group and
// PmtInf statuses, every transaction that is not accepted (accepted ones are
// counted, or kept when KeepAccepted), and the match keys (at most MaxKeys
// EndToEndIds). Use Handler() with ParsePSR.
type PSRFactsBuilder struct {
	Facts        AckFacts
	Ref          PSRRef
	KeepAccepted bool
	MaxKeys      int // EndToEndIds kept for matching; default 10,000
}

// Handler returns the callbacks feeding the builder.
func (b *PSRFactsBuilder) Handler() PSRHandler {
	if b.Facts.Source == "" {
		b.Facts.Source = "psr"
	}
	if b.MaxKeys <= 0 {
		b.MaxKeys = 10_000
	}
	return PSRHandler{
		OnGroup: func(g *PSRGroup) error {
			b.Facts.GroupStatus = g.GrpSts
			b.Facts.GroupReasons = g.Reasons
			if b.Facts.At.IsZero() {
				b.Facts.At = g.Created
			}
			b.Ref.OrgnlMsgId = g.OrgnlMsgId
			b.Facts.Stage = stageOf(g.GrpSts)
			return nil
		},
		OnPmtInf: func(g *PSRGroup, p *PSRPmtInf) error {
			b.Facts.PmtInfs = append(b.Facts.PmtInfs, PmtInfFact{p.OrgnlPmtInfId, p.PmtInfSts, p.Reasons})
			if len(b.Ref.PmtInfIds) < b.MaxKeys {
				b.Ref.PmtInfIds = append(b.Ref.PmtInfIds, p.OrgnlPmtInfId)
			}
			if s := stageOf(p.PmtInfSts); s > b.Facts.Stage {
				b.Facts.Stage = s
			}
			return nil
		},
		OnTx: func(g *PSRGroup, p *PSRPmtInf, tx *PSRTx) error {
			if len(b.Ref.EndToEndIds) < b.MaxKeys && tx.OrgnlEndToEndId != "" {
				b.Ref.EndToEndIds = append(b.Ref.EndToEndIds, tx.OrgnlEndToEndId)
			}
			if p == nil && tx.OrgnlPmtInfId != "" && len(b.Ref.PmtInfIds) < b.MaxKeys && !contains(b.Ref.PmtInfIds, tx.OrgnlPmtInfId) {
				b.Ref.PmtInfIds = append(b.Ref.PmtInfIds, tx.OrgnlPmtInfId)
			}
			if s := stageOf(tx.TxSts); s > b.Facts.Stage {
				b.Facts.Stage = s
			}
			eff := EffectiveStatus(g, p, tx)
			if eff.Status.Positive() && !b.KeepAccepted {
				b.Facts.AcceptedTxs++
				return nil
			}
			st, rs, lvl := tx.TxSts, tx.Reasons, LevelTx
			if eff.Status == StatusRJCT {
				st, rs, lvl = eff.Status, eff.Reasons, eff.Level
			}
			b.Facts.Txs = append(b.Facts.Txs, TxFact{Level: lvl, PmtInfId: tx.OrgnlPmtInfId, EndToEndId: tx.OrgnlEndToEndId, InstrId: tx.OrgnlInstrId,
				Status: st, Reasons: rs, Amount: tx.Amount, Currency: tx.Currency})
			return nil
		},
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func stageOf(s Status) Stage {
	switch {
	case s == StatusNone:
		return StageNone
	case s == StatusRCVD || s == StatusPDNG:
		return StageReceived
	}
	return StageFinal
}

// FactsFromHAC turns the HAC entries of one transmission (already matched)
// into facts: FILE_UPLOAD -> received, ES_VERIFICATION/VEU -> signature
// verified, ORDER_HAC_FINAL_POS -> ACTC, ORDER_HAC_FINAL_NEG -> RJCT whose
// reasons are the negative entries before it plus the final text. A
// negative entry without a final one leaves the status open (banks send the
// final entry later).
func FactsFromHAC(docID string, es []HACEntry) AckFacts {
	f := AckFacts{Source: "hac", DocID: docID}
	var negatives []Reason
	for _, e := range es {
		if e.Time.After(f.At) {
			f.At = e.Time
		}
		act := strings.ToUpper(e.Action)
		r := Reason{Code: e.ReasonCode, Originator: e.Originator}
		if e.Text != "" {
			r.AddtlInf = strings.Split(e.Text, "\n")
		}
		switch {
		case e.Final && e.Positive:
			f.Stage = StageFinal
			if f.GroupStatus != StatusRJCT {
				f.GroupStatus = StatusACTC
			}
		case e.Final:
			f.Stage = StageFinal
			f.GroupStatus = StatusRJCT
			f.GroupReasons = append(append(f.GroupReasons, negatives...), withAction(r, e.Action))
			negatives = nil
		case !e.Positive:
			negatives = append(negatives, withAction(r, e.Action))
		case act == HACFileUpload && f.Stage < StageReceived:
			f.Stage = StageReceived
		case (act == HACESVerification || strings.HasPrefix(act, "VEU_")) && f.Stage < StageSignatureVerified:
			f.Stage = StageSignatureVerified
		}
	}
	if f.GroupStatus == StatusNone && len(negatives) > 0 {
		f.GroupStatus = StatusPDNG
		f.GroupReasons = negatives
	}
	return f
}

func withAction(r Reason, action string) Reason {
	if r.Code == "" && len(r.AddtlInf) == 0 {
		r.AddtlInf = []string{action}
	}
	return r
}

// FactsFromPTK does for PTK entries what FactsFromHAC does for HAC ones:
// codes TS01 -> received, DS01/DS06/DS07 -> signature verified, a final
// positive line -> ACTC, a final negative line -> RJCT with the negative
// lines as reasons.
func FactsFromPTK(docID string, es []PTKEntry) AckFacts {
	f := AckFacts{Source: "ptk", DocID: docID}
	var negatives []Reason
	for _, e := range es {
		if e.Time.After(f.At) {
			f.At = e.Time
		}
		r := Reason{Code: e.Code}
		if e.Text != "" {
			r.AddtlInf = []string{e.Text}
		}
		switch {
		case e.Final && e.Outcome == PTKPositive:
			f.Stage = StageFinal
			if f.GroupStatus != StatusRJCT {
				f.GroupStatus = StatusACTC
			}
		case e.Final && e.Outcome == PTKNegative:
			f.Stage = StageFinal
			f.GroupStatus = StatusRJCT
			f.GroupReasons = append(append(f.GroupReasons, negatives...), r)
			negatives = nil
		case e.Outcome == PTKNegative:
			negatives = append(negatives, r)
		case strings.EqualFold(e.Code, "TS01") && f.Stage < StageReceived:
			f.Stage = StageReceived
		case (strings.EqualFold(e.Code, "DS01") || strings.EqualFold(e.Code, "DS06") || strings.EqualFold(e.Code, "DS07")) && f.Stage < StageSignatureVerified:
			f.Stage = StageSignatureVerified
		}
	}
	if f.GroupStatus == StatusNone && len(negatives) > 0 {
		f.GroupStatus = StatusPDNG
		f.GroupReasons = negatives
	}
	return f
}

// RejectedTx is one rejected transaction of a transmission.
type RejectedTx struct {
	PmtInfId   string    `json:"pmtinf_id,omitempty"`
	EndToEndId string    `json:"end_to_end_id,omitempty"`
	InstrId    string    `json:"instr_id,omitempty"`
	Amount     string    `json:"amount,omitempty"` // from the submitted file when known, else from the acknowledgement
	Currency   string    `json:"currency,omitempty"`
	Level      Level     `json:"level"`   // where the rejection was stated
	Reasons    []Reason  `json:"reasons"` // codes and texts (use Reason.Describe for people)
	Source     string    `json:"source"`  // "psr", "hac", "ptk"
	DocID      string    `json:"doc_id,omitempty"`
	At         time.Time `json:"at"`
	Unknown    bool      `json:"unknown,omitempty"` // the transaction is not in the submitted file
}

// Texts renders the reasons for people, in lang ("fr" or English).
func (r RejectedTx) Texts(lang string) []string {
	out := make([]string, 0, len(r.Reasons))
	for _, rs := range r.Reasons {
		out = append(out, rs.Describe(lang))
	}
	return out
}

// HistoryItem records what one acknowledgement did to the overall state.
type HistoryItem struct {
	Source string    `json:"source"`
	DocID  string    `json:"doc_id,omitempty"`
	At     time.Time `json:"at"`
	Status Status    `json:"status,omitempty"` // the acknowledgement's own group status
	Stage  Stage     `json:"stage"`
	Note   string    `json:"note,omitempty"`
}

// Overall is the merged state of one transmission.
type Overall struct {
	Status       Status        `json:"status"` // RJCT, PART, an accepted status, PDNG, RCVD, or ""
	Stage        Stage         `json:"stage"`
	Final        bool          `json:"final"`                   // RJCT, PART or accepted
	GroupReasons []Reason      `json:"group_reasons,omitempty"` // why the whole file (or every PmtInf) was rejected
	Rejected     []RejectedTx  `json:"rejected,omitempty"`
	Conflicts    []string      `json:"conflicts,omitempty"` // later positive statements that did not undo a rejection
	History      []HistoryItem `json:"history,omitempty"`
}

var positiveRank = map[Status]int{StatusACTC: 1, StatusACCP: 2, StatusACWC: 3, StatusACSP: 4, StatusACSC: 5}

// Merge combines every acknowledgement received for one transmission, in
// time order (ties keep the given order), into its overall state. It never
// overwrites blindly: a rejection (group, PmtInf or transaction) stays
// whatever comes after it; a later ACTC/ACSC only raises the accepted
// status of what is not rejected, and is listed in Conflicts when it
// contradicts a rejection. The rejected transactions carry the amounts of
// the submitted file (c.Txs) when known.
func Merge(c Candidate, acks []AckFacts) Overall {
	order := make([]int, len(acks))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool { return acks[order[i]].At.Before(acks[order[j]].At) })

	var out Overall
	groupRejected := false
	var groupSrc *AckFacts
	pmtRejected := map[string]*rejection{}
	txRejected := map[string]*rejection{}
	var txOrder []string
	best := StatusNone
	part, pending := false, false

	for _, i := range order {
		a := &acks[i]
		note := ""
		if a.Stage > out.Stage {
			out.Stage = a.Stage
		}
		switch s := a.GroupStatus; {
		case s == StatusRJCT:
			if !groupRejected {
				groupRejected, groupSrc = true, a
				out.GroupReasons = append(out.GroupReasons, a.GroupReasons...)
				note = "file rejected"
			}
		case s.Positive():
			if groupRejected {
				out.Conflicts = append(out.Conflicts, fmt.Sprintf("%s %s at %s ignored: the file was rejected before", a.Source, s, stamp(a.At)))
			} else if positiveRank[s] > positiveRank[best] {
				best = s
			}
		case s == StatusPART:
			part = true
		case s == StatusPDNG || s == StatusRCVD:
			pending = true
		}
		for _, p := range a.PmtInfs {
			switch {
			case p.Status == StatusRJCT:
				if _, ok := pmtRejected[p.PmtInfId]; !ok {
					pmtRejected[p.PmtInfId] = &rejection{reasons: p.Reasons, src: a}
				}
			case p.Status.Positive():
				if _, ok := pmtRejected[p.PmtInfId]; ok {
					out.Conflicts = append(out.Conflicts, fmt.Sprintf("%s %s for PmtInf %s ignored: rejected before", a.Source, p.Status, p.PmtInfId))
				} else if !groupRejected && positiveRank[p.Status] > positiveRank[best] && a.GroupStatus != StatusPART {
					best = p.Status
				}
			case p.Status == StatusPART:
				part = true
			}
		}
		for _, t := range a.Txs {
			key := txKey(t.EndToEndId, t.InstrId)
			switch {
			case t.Status == StatusRJCT:
				if _, ok := txRejected[key]; !ok {
					txRejected[key] = &rejection{reasons: t.Reasons, src: a, fact: t}
					txOrder = append(txOrder, key)
				}
			case t.Status.Positive():
				if _, ok := txRejected[key]; ok {
					out.Conflicts = append(out.Conflicts, fmt.Sprintf("%s %s for transaction %s ignored: rejected before", a.Source, t.Status, key))
				}
			case t.Status == StatusPDNG:
				pending = true
			}
		}
		out.History = append(out.History, HistoryItem{Source: a.Source, DocID: a.DocID, At: a.At, Status: a.GroupStatus, Stage: a.Stage, Note: note})
	}

	// Rejected transactions: the submitted ones first, in file order.
	seen := map[string]bool{}
	singlePmt := ""
	if len(c.PmtInfIds) == 1 {
		singlePmt = c.PmtInfIds[0]
	}
	for _, t := range c.Txs {
		key := txKey(t.EndToEndId, t.InstrId)
		pmt := t.PmtInfId
		if pmt == "" {
			pmt = singlePmt
		}
		rt := RejectedTx{PmtInfId: pmt, EndToEndId: t.EndToEndId, InstrId: t.InstrId, Amount: t.Amount, Currency: t.Currency}
		switch r := txRejected[key]; {
		case r != nil:
			seen[key] = true
			rt.Level, rt.Reasons = r.level(), r.reasons
			r.fill(&rt)
		case pmtRejected[pmt] != nil:
			rt.Level, rt.Reasons = LevelPmtInf, pmtRejected[pmt].reasons
			pmtRejected[pmt].fill(&rt)
		case groupRejected:
			rt.Level, rt.Reasons = LevelGroup, out.GroupReasons
			(&rejection{src: groupSrc}).fill(&rt)
		default:
			continue
		}
		out.Rejected = append(out.Rejected, rt)
	}
	for _, key := range txOrder {
		if seen[key] {
			continue
		}
		r := txRejected[key]
		rt := RejectedTx{PmtInfId: r.fact.PmtInfId, EndToEndId: r.fact.EndToEndId, InstrId: r.fact.InstrId, Amount: r.fact.Amount,
			Currency: r.fact.Currency, Level: r.level(), Reasons: r.reasons, Unknown: len(c.Txs) > 0}
		r.fill(&rt)
		out.Rejected = append(out.Rejected, rt)
	}

	allPmtRejected := len(c.PmtInfIds) > 0
	for _, id := range c.PmtInfIds {
		if pmtRejected[id] == nil {
			allPmtRejected = false
		}
	}
	known := 0
	for _, r := range out.Rejected {
		if !r.Unknown {
			known++
		}
	}
	switch {
	case groupRejected, allPmtRejected:
		out.Status = StatusRJCT
		if allPmtRejected && !groupRejected {
			for _, id := range c.PmtInfIds {
				out.GroupReasons = append(out.GroupReasons, pmtRejected[id].reasons...)
			}
		}
	case len(c.Txs) > 0 && known == len(c.Txs):
		out.Status = StatusRJCT
	case len(out.Rejected) > 0 || len(pmtRejected) > 0 || part:
		out.Status = StatusPART
	case best != StatusNone:
		out.Status = best
	case pending:
		out.Status = StatusPDNG
	case out.Stage >= StageReceived:
		out.Status = StatusRCVD
	}
	out.Final = out.Status == StatusRJCT || out.Status == StatusPART || out.Status.Positive()
	return out
}

type rejection struct {
	reasons []Reason
	src     *AckFacts
	fact    TxFact
}

func (r *rejection) level() Level {
	if r.fact.Level != "" {
		return r.fact.Level
	}
	return LevelTx
}

func (r *rejection) fill(rt *RejectedTx) {
	if r.src != nil {
		rt.Source, rt.DocID, rt.At = r.src.Source, r.src.DocID, r.src.At
	}
	if rt.Amount == "" {
		rt.Amount, rt.Currency = r.fact.Amount, r.fact.Currency
	}
}

func txKey(e2e, instr string) string {
	if e2e = strings.TrimSpace(e2e); e2e != "" && e2e != "NOTPROVIDED" {
		return "e2e:" + e2e
	}
	return "instr:" + strings.TrimSpace(instr)
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "unknown time"
	}
	return t.UTC().Format(time.RFC3339)
}
