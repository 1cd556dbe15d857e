package acks

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// HAC actions (OrgnlPmtInfId of a HAC pain.002), as EBICS defines them.
const (
	HACFileUpload      = "FILE_UPLOAD"
	HACFileDownload    = "FILE_DOWNLOAD"
	HACESUpload        = "ES_UPLOAD"
	HACESDownload      = "ES_DOWNLOAD"
	HACESVerification  = "ES_VERIFICATION"
	HACVEUForwarding   = "VEU_FORWARDING"
	HACVEUVerification = "VEU_VERIFICATION"
	HACVEUVerifEnd     = "VEU_VERIFICATION_END"
	HACVEUCancelOrder  = "VEU_CANCEL_ORDER"
	HACAdditional      = "ADDITIONAL"
	HACOrderFinalPos   = "ORDER_HAC_FINAL_POS"
	HACOrderFinalNeg   = "ORDER_HAC_FINAL_NEG"
)

// HACService holds the EBICS 3.0 BTF fields of a HAC entry (empty for
// EBICS 2.x order types).
type HACService struct {
	ServiceName   string // e.g. SCT, SDD, PSR
	ServiceOption string // e.g. COR
	Scope         string // e.g. DE
	ContainerType string // e.g. XML, ZIP
	MsgName       string // e.g. pain.001
	MsgVersion    string
	MsgVariant    string
	MsgFormat     string
}

// HACEntry is one event of a HAC customer protocol.
type HACEntry struct {
	Index      int    // 0-based position in the document
	Action     string // FILE_UPLOAD, ES_VERIFICATION, ORDER_HAC_FINAL_POS...
	OrderID    string
	OrderType  string // OrderType (EBICS 2.x) or AdminOrderType (EBICS 3.0: BTU, BTD, INI...)
	Service    HACService
	PartnerID  string
	UserID     string
	Time       time.Time // TimeStamp key; zero when absent or unparseable
	TimeText   string    // TimeStamp as sent
	ReasonCode string    // Rsn/Cd, else Rsn/Prtry
	Text       string    // AddtlInf lines joined by "\n"
	Originator string    // Orgtr/Nm (the customer)
	Final      bool      // ORDER_HAC_FINAL_POS or _NEG
	Positive   bool      // see Positive rules in ParseHAC
	// Extra holds the Othr keys this parser does not know, by scheme.
	Extra map[string]string
}

// positiveCodes are the reason codes that report a step that went well.
var positiveCodes = map[string]bool{"TS01": true, "TS04": true, "DS01": true, "DS05": true, "DS06": true, "DS07": true}

// hacKeys maps the SchmeNm/Prtry keys (lower-cased) to a setter.
var hacKeys = map[string]func(e *HACEntry, v string){
	"orderid":        func(e *HACEntry, v string) { e.OrderID = v },
	"ordertype":      func(e *HACEntry, v string) { e.OrderType = v },
	"adminordertype": func(e *HACEntry, v string) { e.OrderType = v },
	"partnerid":      func(e *HACEntry, v string) { e.PartnerID = v },
	"userid":         func(e *HACEntry, v string) { e.UserID = v },
	"timestamp":      func(e *HACEntry, v string) { e.TimeText = v; e.Time = parseISOTime(v) },
	"servicename":    func(e *HACEntry, v string) { e.Service.ServiceName = v },
	"serviceoption":  func(e *HACEntry, v string) { e.Service.ServiceOption = v },
	"scope":          func(e *HACEntry, v string) { e.Service.Scope = v },
	"containertype":  func(e *HACEntry, v string) { e.Service.ContainerType = v },
	"msgname":        func(e *HACEntry, v string) { e.Service.MsgName = v },
	"msgnameversion": func(e *HACEntry, v string) { e.Service.MsgVersion = v },
	"msgversion":     func(e *HACEntry, v string) { e.Service.MsgVersion = v },
	"msgnamevariant": func(e *HACEntry, v string) { e.Service.MsgVariant = v },
	"msgvariant":     func(e *HACEntry, v string) { e.Service.MsgVariant = v },
	"msgnameformat":  func(e *HACEntry, v string) { e.Service.MsgFormat = v },
	"msgformat":      func(e *HACEntry, v string) { e.Service.MsgFormat = v },
}

// ParseHACFunc streams a HAC document (the pain.002 "protocol" form), calling
// fn per entry in document order. Each StsRsnInf of an OrgnlPmtInfAndSts is
// one entry (an OrgnlPmtInfAndSts without StsRsnInf gives one bare entry).
//
// Positive: ORDER_HAC_FINAL_POS is positive, ORDER_HAC_FINAL_NEG negative;
// other entries are positive when their reason code is one of TS01, TS04,
// DS01, DS05, DS06, DS07, or when they carry no code and their action is not
// a cancellation; any other code (TD03, DS0A, DS19...) is negative.
func ParseHACFunc(r io.Reader, lim Limits, fn func(e HACEntry) error) error {
	lim = lim.withDefaults()
	idx := 0
	_, err := ParsePSR(r, lim, PSRHandler{
		OnTx: func(g *PSRGroup, p *PSRPmtInf, tx *PSRTx) error {
			return &ParseError{Kind: ErrMalformed, Format: "hac", Detail: "transaction status in a HAC protocol (is it a PSR?)"}
		},
		OnPmtInf: func(g *PSRGroup, p *PSRPmtInf) error {
			reasons := p.Reasons
			if len(reasons) == 0 {
				reasons = []Reason{{}}
			}
			for _, rs := range reasons {
				e := hacEntry(p.OrgnlPmtInfId, rs)
				e.Index = idx
				idx++
				if err := fn(e); err != nil {
					return err
				}
			}
			return nil
		},
	})
	if err != nil {
		var pe *ParseError
		if errors.As(err, &pe) && pe.Format == "psr" {
			pe.Format = "hac"
		}
		return err
	}
	return nil
}

func hacEntry(action string, rs Reason) HACEntry {
	e := HACEntry{Action: action, ReasonCode: rs.Key(), Text: strings.Join(rs.AddtlInf, "\n"), Originator: rs.Originator}
	for _, id := range rs.OriginatorIDs {
		if set, ok := hacKeys[strings.ToLower(id.Scheme)]; ok {
			set(&e, id.ID)
			continue
		}
		if e.Extra == nil {
			e.Extra = map[string]string{}
		}
		e.Extra[id.Scheme] = id.ID
	}
	act := strings.ToUpper(action)
	switch {
	case act == HACOrderFinalPos:
		e.Final, e.Positive = true, true
	case act == HACOrderFinalNeg:
		e.Final, e.Positive = true, false
	case e.ReasonCode != "":
		e.Positive = positiveCodes[strings.ToUpper(e.ReasonCode)]
	default:
		e.Positive = !strings.Contains(act, "CANCEL") && !strings.HasSuffix(act, "_NEG")
	}
	return e
}

// ParseHAC reads a whole HAC document into memory (at most
// Limits.MaxCollect entries, else ErrTooMany).
func ParseHAC(r io.Reader, lim Limits) ([]HACEntry, error) {
	lim = lim.withDefaults()
	var out []HACEntry
	err := ParseHACFunc(r, lim, func(e HACEntry) error {
		if len(out) >= lim.MaxCollect {
			return &ParseError{Kind: ErrTooMany, Format: "hac", Detail: fmt.Sprintf("more than %d entries", lim.MaxCollect)}
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// IsHACGroup reports whether a pain.002 group header looks like a HAC
// protocol (OrgnlMsgId / OrgnlMsgNmId "EBICS") rather than a PSR.
func IsHACGroup(g *PSRGroup) bool {
	return strings.EqualFold(g.OrgnlMsgNmId, "EBICS") || strings.EqualFold(g.OrgnlMsgId, "EBICS")
}
