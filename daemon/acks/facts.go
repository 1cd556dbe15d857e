package acks

import (
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

// AckFacts is what HAC or PTK entries of one order say about it: how far
// the bank got (Stage) and its status so far, with the reasons of a
// rejection. ParseEntries uses it to give HAC and PTK entries a stage and
// status comparable with a PSR's.
type AckFacts struct {
	Source       string // "hac", "ptk"
	DocID        string // caller's id of the stored document
	At           time.Time
	Stage        Stage
	GroupStatus  Status
	GroupReasons []Reason
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
// reasons are the negative entries before it plus the final text. Negative
// entries without a final one make the status PDNG with them as reasons:
// not decided yet (banks send the final entry later).
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
// lines as reasons, negative lines without a final one PDNG.
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
