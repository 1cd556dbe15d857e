package acks

import (
	"sort"
	"strings"
	"time"
)

// CandidateTx is one transaction of a submitted file.
type CandidateTx struct {
	PmtInfId   string
	EndToEndId string
	InstrId    string
	Amount     string // decimal text as submitted
	Currency   string
}

// Candidate is a submitted transmission an acknowledgement may be about.
type Candidate struct {
	ID          string
	Bank        string
	OrderID     string
	PartnerID   string
	MsgId       string
	PmtInfIds   []string
	Txs         []CandidateTx
	SubmittedAt time.Time
}

// MatchBy says which key matched.
type MatchBy string

// Match keys, strongest first.
const (
	ByMsgId      MatchBy = "msgid"
	ByPmtInfId   MatchBy = "pmtinfid"
	ByEndToEndId MatchBy = "endtoendid"
	ByOrderID    MatchBy = "orderid"
)

// Match is the outcome of matching one acknowledgement (or entry).
type Match struct {
	CandidateID string   // "" when nothing matched
	By          MatchBy  // the key that matched
	Ambiguous   []string // other candidate IDs that fit as well; the choice is the most recent submission
	Reason      string   // why nothing matched
}

// Matched reports whether a candidate was chosen.
func (m Match) Matched() bool { return m.CandidateID != "" }

// PSRRef is what a PSR says about the file it acknowledges.
type PSRRef struct {
	Bank        string // when set, only candidates of this bank are considered
	OrgnlMsgId  string
	PmtInfIds   []string
	EndToEndIds []string
}

// MatchPSR finds the transmission a PSR is about: by OrgnlMsgId, else by the
// most OrgnlPmtInfId in common, else by the most OrgnlEndToEndId in common.
// Ties go to the most recent submission and are reported in Ambiguous.
func MatchPSR(ref PSRRef, cands []Candidate) Match {
	cs := byBank(ref.Bank, cands)
	if id := strings.TrimSpace(ref.OrgnlMsgId); id != "" {
		var hits []Candidate
		for _, c := range cs {
			if c.MsgId != "" && strings.TrimSpace(c.MsgId) == id {
				hits = append(hits, c)
			}
		}
		if len(hits) > 0 {
			return pick(hits, ByMsgId)
		}
	}
	if m, ok := bestOverlap(cs, ref.PmtInfIds, func(c Candidate) []string { return c.PmtInfIds }, ByPmtInfId); ok {
		return m
	}
	if m, ok := bestOverlap(cs, ref.EndToEndIds, func(c Candidate) []string {
		out := make([]string, 0, len(c.Txs))
		for _, t := range c.Txs {
			out = append(out, t.EndToEndId)
		}
		return out
	}, ByEndToEndId); ok {
		return m
	}
	return Match{Reason: "no transmission with this OrgnlMsgId, OrgnlPmtInfId or OrgnlEndToEndId"}
}

func byBank(bank string, cands []Candidate) []Candidate {
	if bank == "" {
		return cands
	}
	var out []Candidate
	for _, c := range cands {
		if c.Bank == bank {
			out = append(out, c)
		}
	}
	return out
}

func bestOverlap(cs []Candidate, keys []string, of func(Candidate) []string, by MatchBy) (Match, bool) {
	if len(keys) == 0 {
		return Match{}, false
	}
	want := make(map[string]bool, len(keys))
	for _, k := range keys {
		if k = strings.TrimSpace(k); k != "" {
			want[k] = true
		}
	}
	best := 0
	var hits []Candidate
	for _, c := range cs {
		n := 0
		for _, k := range of(c) {
			if want[strings.TrimSpace(k)] {
				n++
			}
		}
		switch {
		case n == 0:
		case n > best:
			best, hits = n, []Candidate{c}
		case n == best:
			hits = append(hits, c)
		}
	}
	if len(hits) == 0 {
		return Match{}, false
	}
	return pick(hits, by), true
}

// pick chooses the most recent submission and reports the others.
func pick(hits []Candidate, by MatchBy) Match {
	sort.SliceStable(hits, func(i, j int) bool { return hits[i].SubmittedAt.After(hits[j].SubmittedAt) })
	m := Match{CandidateID: hits[0].ID, By: by}
	for _, h := range hits[1:] {
		m.Ambiguous = append(m.Ambiguous, h.ID)
	}
	return m
}

// OrderRef is what a HAC or PTK entry says about its order.
type OrderRef struct {
	Bank      string
	OrderID   string
	PartnerID string    // compared when both sides have one
	At        time.Time // the entry's time; zero when unknown
}

// MatchSkew is the clock difference tolerated between acquit's submission
// time and the bank's time stamp (a bank event may look slightly earlier
// than the submission).
const MatchSkew = 10 * time.Minute

// MatchOrder finds the transmission of a HAC or PTK entry: same OrderID
// (OrderIDs are four characters and reused), same partner when both are
// known, submitted at most window before the entry (and at most MatchSkew
// after it). The most recent submission wins; the others that fit are
// reported in Ambiguous. window <= 0 means no lower bound.
func MatchOrder(ref OrderRef, cands []Candidate, window time.Duration) Match {
	id := strings.ToUpper(strings.TrimSpace(ref.OrderID))
	if id == "" {
		return Match{Reason: "entry has no OrderID"}
	}
	var hits []Candidate
	sameID := 0
	for _, c := range byBank(ref.Bank, cands) {
		if strings.ToUpper(strings.TrimSpace(c.OrderID)) != id {
			continue
		}
		sameID++
		if ref.PartnerID != "" && c.PartnerID != "" && !strings.EqualFold(ref.PartnerID, c.PartnerID) {
			continue
		}
		if !ref.At.IsZero() && !c.SubmittedAt.IsZero() {
			d := ref.At.Sub(c.SubmittedAt)
			if d < -MatchSkew || window > 0 && d > window {
				continue
			}
		}
		hits = append(hits, c)
	}
	if len(hits) == 0 {
		if sameID > 0 {
			return Match{Reason: "OrderID " + id + " known, but not for this partner within the time window"}
		}
		return Match{Reason: "no transmission with OrderID " + id}
	}
	return pick(hits, ByOrderID)
}
