package acks

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
)

// Status is an ISO 20022 payment status code (ExternalPaymentGroupStatus1Code
// / ExternalPaymentTransactionStatus1Code), e.g. ACTC or RJCT.
type Status string

// The payment status codes of pain.002.
const (
	StatusNone Status = ""
	StatusRCVD Status = "RCVD" // received
	StatusACTC Status = "ACTC" // accepted after technical validation
	StatusACCP Status = "ACCP" // accepted after customer profile validation
	StatusACWC Status = "ACWC" // accepted with change
	StatusACSP Status = "ACSP" // accepted, settlement in process
	StatusACSC Status = "ACSC" // accepted, settlement completed
	StatusPART Status = "PART" // partially accepted
	StatusPDNG Status = "PDNG" // pending
	StatusRJCT Status = "RJCT" // rejected
)

// Rejected reports whether s is RJCT.
func (s Status) Rejected() bool { return s == StatusRJCT }

// Positive reports whether s is one of the accepted statuses.
func (s Status) Positive() bool {
	switch s {
	case StatusACTC, StatusACCP, StatusACWC, StatusACSP, StatusACSC:
		return true
	}
	return false
}

// Known reports whether s is one of the codes listed above.
func (s Status) Known() bool {
	return s.Positive() || s == StatusRCVD || s == StatusPART || s == StatusPDNG || s == StatusRJCT
}

// OrgID is one Orgtr/Id/OrgId/Othr entry: the identifier and its scheme
// (SchmeNm/Prtry or SchmeNm/Cd).
type OrgID struct {
	ID     string `json:"id"`
	Scheme string `json:"scheme"`
}

// Reason is one StsRsnInf: a code (Rsn/Cd, or StsRsn/Cd in .02), a
// proprietary code, the free text lines, and the originator.
type Reason struct {
	Code          string   `json:"code,omitempty"`           // ISO external status reason code (Cd)
	Proprietary   string   `json:"proprietary,omitempty"`    // Prtry
	AddtlInf      []string `json:"addtl_inf,omitempty"`      // AddtlInf (AddtlStsRsnInf in .02)
	Originator    string   `json:"originator,omitempty"`     // Orgtr/Nm
	OriginatorBIC string   `json:"originator_bic,omitempty"` // Orgtr/Id/OrgId/BICOrBEI or AnyBIC
	OriginatorIDs []OrgID  `json:"originator_ids,omitempty"` // Orgtr/Id/OrgId/Othr
}

// Key returns the code, else the proprietary code.
func (r Reason) Key() string {
	if r.Code != "" {
		return r.Code
	}
	return r.Proprietary
}

// Text returns the AddtlInf lines joined by a space.
func (r Reason) Text() string { return strings.Join(r.AddtlInf, " ") }

// StatusCount is one NbOfTxsPerSts entry.
type StatusCount struct {
	NbOfTxs string
	Status  Status
	CtrlSum string
}

// PSRGroup is the group header and OrgnlGrpInfAndSts of a pain.002.
type PSRGroup struct {
	Version       string // "pain.002.001.03"..., from the namespace; "" when the document has none
	Namespace     string
	MsgId         string
	CreDtTm       string
	Created       time.Time // parsed CreDtTm; zero when absent or unparseable
	InitgPtyName  string
	OrgnlMsgId    string
	OrgnlMsgNmId  string
	OrgnlCreDtTm  string
	OrgnlNbOfTxs  string
	OrgnlCtrlSum  string
	GrpSts        Status
	Reasons       []Reason
	NbOfTxsPerSts []StatusCount
}

// PSRPmtInf is one OrgnlPmtInfAndSts (without its transactions).
type PSRPmtInf struct {
	Index         int // 0-based position in the document
	OrgnlPmtInfId string
	OrgnlNbOfTxs  string
	OrgnlCtrlSum  string
	PmtInfSts     Status
	Reasons       []Reason
	NbOfTxsPerSts []StatusCount
}

// PSRTx is one TxInfAndSts.
type PSRTx struct {
	OrgnlPmtInfId   string // of the enclosing OrgnlPmtInfAndSts, or the transaction's own in .02
	StsId           string
	OrgnlInstrId    string
	OrgnlEndToEndId string
	OrgnlTxId       string
	OrgnlUETR       string
	TxSts           Status
	Reasons         []Reason
	AcctSvcrRef     string
	ClrSysRef       string
	Amount          string // OrgnlTxRef/Amt/InstdAmt, decimal text as sent
	Currency        string // its Ccy attribute
	ReqdExctnDt     string
	DebtorName      string
	DebtorIBAN      string
	CreditorName    string
	CreditorIBAN    string
}

// PSRHandler receives the parts of a pain.002 as they are read. Any
// callback may be nil; an error returned by a callback stops the parse and
// is returned wrapped. The pointers are only valid during the call, except
// the *PSRGroup, which stays valid and complete after OnGroup.
type PSRHandler struct {
	// OnGroup is called once, when OrgnlGrpInfAndSts ends.
	OnGroup func(g *PSRGroup) error
	// OnTx is called per transaction; p is nil in pain.002.001.02, where
	// transactions are not grouped by PmtInf. p's Id, status and reasons are
	// known (schema order puts them before the transactions).
	OnTx func(g *PSRGroup, p *PSRPmtInf, tx *PSRTx) error
	// OnPmtInf is called when OrgnlPmtInfAndSts ends, after its
	// transactions.
	OnPmtInf func(g *PSRGroup, p *PSRPmtInf) error
}

// PSRSummary is what ParsePSR returns once the whole document is read.
type PSRSummary struct {
	Group   PSRGroup
	PmtInfs int
	Txs     int
	Bytes   int64
}

var (
	pain002NS = regexp.MustCompile(`(?:^|[:/$])(pain\.002\.00[0-9]\.[0-9]{2})(?:\.[a-z]{2}\.[0-9]{2})?(?:\.xsd)?$`)
)

// ParsePSR reads a pain.002 (.001.02, .03 up to .10 and later, and the
// German .002.xx variants) token by token, calling h as parts complete.
// Memory stays constant whatever the number of transactions. Errors are
// *ParseError (or a callback's error, wrapped).
func ParsePSR(r io.Reader, lim Limits, h PSRHandler) (*PSRSummary, error) {
	p := &psrParser{s: newXMLStream(r, lim.withDefaults(), "psr"), h: h}
	if err := p.run(); err != nil {
		return nil, err
	}
	sum := &PSRSummary{Group: p.g, PmtInfs: p.nPmt, Txs: p.nTx, Bytes: p.s.g.total}
	return sum, nil
}

type psrParser struct {
	s   *xmlStream
	h   PSRHandler
	g   PSRGroup
	buf []byte
	txv PSRTx // the current transaction (OnTx's pointer is only valid during the call)

	report    bool // the report element has been seen
	inGroup   bool
	groupDone bool
	pmt       *PSRPmtInf
	tx        *PSRTx
	rsn       *Reason
	oid       *OrgID
	cnt       *StatusCount
	nPmt, nTx int
}

func (p *psrParser) fail(kind error, format string, args ...any) error {
	return p.s.fail(kind, fmt.Sprintf(format, args...), nil)
}

func (p *psrParser) run() error {
	pop := false
	for {
		kind, err := p.s.next(&pop)
		if err != nil {
			return err
		}
		switch kind {
		case tokStart:
			p.buf = p.buf[:0]
			if err := p.start(); err != nil {
				return err
			}
		case tokText:
			t := p.s.t.text
			if len(p.buf)+len(t) > p.s.lim.MaxTokenBytes {
				return p.fail(ErrTokenTooLarge, "text of <%s>", p.s.up(0))
			}
			p.buf = append(p.buf, t...)
		case tokEnd:
			if err := p.end(); err != nil {
				return err
			}
			p.buf = p.buf[:0]
		}
		if kind == tokEOF {
			break
		}
	}
	if !p.report {
		return p.fail(ErrNotPain002, "no CstmrPmtStsRpt")
	}
	if !p.groupDone {
		return p.fail(ErrMalformed, "no OrgnlGrpInfAndSts")
	}
	return nil
}

func (p *psrParser) start() error {
	depth := len(p.s.stack)
	name := p.s.up(0)
	switch depth {
	case 1:
		if name != "Document" {
			return p.fail(ErrNotPain002, "root element is <%s>", clip(name))
		}
		ns := p.s.rootNS
		if ns != "" {
			m := pain002NS.FindStringSubmatch(ns)
			if m == nil {
				return p.fail(ErrNotPain002, "namespace %q", clip(ns))
			}
			p.g.Version = m[1]
			p.g.Namespace = ns
		}
		return nil
	case 2:
		switch name {
		case "CstmrPmtStsRpt":
		case "pain.002.001.02":
			if p.g.Version == "" {
				p.g.Version = "pain.002.001.02"
			}
		default:
			return p.fail(ErrNotPain002, "report element is <%s>", clip(name))
		}
		p.report = true
		return nil
	case 3:
		switch name {
		case "OrgnlGrpInfAndSts":
			if p.inGroup || p.groupDone {
				return p.fail(ErrMalformed, "second OrgnlGrpInfAndSts")
			}
			p.inGroup = true
		case "OrgnlPmtInfAndSts":
			if !p.groupDone {
				return p.fail(ErrMalformed, "OrgnlPmtInfAndSts before OrgnlGrpInfAndSts")
			}
			p.pmt = &PSRPmtInf{Index: p.nPmt}
		case "TxInfAndSts":
			if !p.groupDone {
				return p.fail(ErrMalformed, "TxInfAndSts before OrgnlGrpInfAndSts")
			}
			p.txv = PSRTx{}
			p.tx = &p.txv
		}
		return nil
	}
	switch name {
	case "TxInfAndSts":
		if p.pmt == nil || depth != 4 || p.tx != nil {
			return p.fail(ErrMalformed, "misplaced TxInfAndSts")
		}
		p.txv = PSRTx{OrgnlPmtInfId: p.pmt.OrgnlPmtInfId}
		p.tx = &p.txv
	case "StsRsnInf":
		if p.rsn != nil {
			return p.fail(ErrMalformed, "nested StsRsnInf")
		}
		if p.tx == nil && p.pmt == nil && !p.inGroup {
			return nil
		}
		p.rsn = &Reason{}
	case "Othr":
		if p.rsn != nil && p.s.within("Orgtr") || p.rsn != nil && p.s.within("StsOrgtr") {
			p.oid = &OrgID{}
		}
	case "NbOfTxsPerSts":
		if p.tx == nil && (p.pmt != nil || p.inGroup) {
			p.cnt = &StatusCount{}
		}
	case "InstdAmt":
		if p.tx != nil && p.s.within("OrgnlTxRef") {
			for _, a := range p.s.t.attrs {
				if string(a.local) == "Ccy" {
					p.tx.Currency = string(bytes.TrimSpace(a.value))
				}
			}
		}
	}
	return nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

func (p *psrParser) setStatus(dst *Status, what string) error {
	v := bytes.TrimSpace(p.buf)
	if *dst != "" {
		return p.fail(ErrMalformed, "duplicate %s", what)
	}
	if !isStatusCode(v) {
		return p.fail(ErrMalformed, "%s %q is not a status code", what, clip(string(v)))
	}
	*dst = statusOf(v)
	return nil
}

// isStatusCode reports whether v is four upper-case letters or digits.
func isStatusCode(v []byte) bool {
	if len(v) != 4 {
		return false
	}
	for _, c := range v {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// statusOf returns the Status for a code, without allocating for the
// known ones.
func statusOf(v []byte) Status {
	for _, s := range knownStatuses {
		if string(s) == string(v) {
			return s
		}
	}
	return Status(v)
}

var knownStatuses = [...]Status{StatusACCP, StatusACSC, StatusACSP, StatusACTC, StatusACWC, StatusRJCT, StatusPART, StatusPDNG, StatusRCVD}

func (p *psrParser) text() string { return strings.TrimSpace(string(p.buf)) }

func (p *psrParser) end() error {
	s := p.s
	name, parent := s.up(0), s.up(1)
	maxRep := s.lim.MaxRepeat

	// Reasons first: their Cd/Nm/Id must not leak into the owner.
	if p.rsn != nil {
		switch name {
		case "Cd", "Prtry":
			switch parent {
			case "Rsn", "StsRsn":
				if name == "Cd" {
					p.rsn.Code = p.text()
				} else {
					p.rsn.Proprietary = p.text()
				}
			case "SchmeNm":
				if p.oid != nil {
					p.oid.Scheme = p.text()
				}
			}
		case "AddtlInf", "AddtlStsRsnInf":
			if len(p.rsn.AddtlInf) >= maxRep {
				return p.fail(ErrTooMany, "AddtlInf")
			}
			p.rsn.AddtlInf = append(p.rsn.AddtlInf, p.text())
		case "Nm":
			if parent == "Orgtr" || parent == "StsOrgtr" {
				p.rsn.Originator = p.text()
			}
		case "BICOrBEI", "AnyBIC", "BIC":
			p.rsn.OriginatorBIC = p.text()
		case "Id":
			if parent == "Othr" && p.oid != nil {
				p.oid.ID = p.text()
			}
		case "Othr":
			if p.oid != nil {
				if len(p.rsn.OriginatorIDs) >= maxRep {
					return p.fail(ErrTooMany, "Orgtr/Id/OrgId/Othr")
				}
				p.rsn.OriginatorIDs = append(p.rsn.OriginatorIDs, *p.oid)
				p.oid = nil
			}
		case "StsRsnInf":
			var owner *[]Reason
			switch {
			case p.tx != nil:
				owner = &p.tx.Reasons
			case p.pmt != nil:
				owner = &p.pmt.Reasons
			default:
				owner = &p.g.Reasons
			}
			if len(*owner) >= maxRep {
				return p.fail(ErrTooMany, "StsRsnInf")
			}
			*owner = append(*owner, *p.rsn)
			p.rsn = nil
		}
		return nil
	}

	if p.cnt != nil {
		switch name {
		case "DtldNbOfTxs":
			p.cnt.NbOfTxs = p.text()
		case "DtldSts":
			return p.setStatus(&p.cnt.Status, "DtldSts")
		case "DtldCtrlSum":
			p.cnt.CtrlSum = p.text()
		case "NbOfTxsPerSts":
			owner := &p.g.NbOfTxsPerSts
			if p.pmt != nil {
				owner = &p.pmt.NbOfTxsPerSts
			}
			if len(*owner) >= maxRep {
				return p.fail(ErrTooMany, "NbOfTxsPerSts")
			}
			*owner = append(*owner, *p.cnt)
			p.cnt = nil
		}
		return nil
	}

	if p.tx != nil {
		tx := p.tx
		if parent == "TxInfAndSts" {
			switch name {
			case "StsId":
				tx.StsId = p.text()
			case "OrgnlPmtInfId":
				tx.OrgnlPmtInfId = p.text()
			case "OrgnlInstrId":
				tx.OrgnlInstrId = p.text()
			case "OrgnlEndToEndId":
				tx.OrgnlEndToEndId = p.text()
			case "OrgnlTxId":
				tx.OrgnlTxId = p.text()
			case "OrgnlUETR":
				tx.OrgnlUETR = p.text()
			case "TxSts":
				return p.setStatus(&tx.TxSts, "TxSts")
			case "AcctSvcrRef":
				tx.AcctSvcrRef = p.text()
			case "ClrSysRef":
				tx.ClrSysRef = p.text()
			}
			return nil
		}
		if !s.within("OrgnlTxRef") {
			if name == "TxInfAndSts" {
				return p.emitTx()
			}
			return nil
		}
		switch name {
		case "InstdAmt":
			if parent == "Amt" {
				if tx.Amount != "" {
					return p.fail(ErrMalformed, "duplicate InstdAmt")
				}
				tx.Amount = p.text()
			}
		case "ReqdExctnDt", "ReqdColltnDt":
			if parent == "OrgnlTxRef" && tx.ReqdExctnDt == "" {
				tx.ReqdExctnDt = p.text()
			}
		case "Dt", "DtTm":
			if parent == "ReqdExctnDt" || parent == "ReqdColltnDt" {
				tx.ReqdExctnDt = p.text()
			}
		case "Nm":
			party := parent
			if party == "Pty" {
				party = s.up(2)
			}
			switch party {
			case "Dbtr":
				tx.DebtorName = p.text()
			case "Cdtr":
				tx.CreditorName = p.text()
			}
		case "IBAN":
			if parent == "Id" {
				switch s.up(2) {
				case "DbtrAcct":
					tx.DebtorIBAN = p.text()
				case "CdtrAcct":
					tx.CreditorIBAN = p.text()
				}
			}
		}
		return nil
	}

	if p.pmt != nil {
		if parent == "OrgnlPmtInfAndSts" {
			switch name {
			case "OrgnlPmtInfId":
				p.pmt.OrgnlPmtInfId = p.text()
			case "OrgnlNbOfTxs":
				p.pmt.OrgnlNbOfTxs = p.text()
			case "OrgnlCtrlSum":
				p.pmt.OrgnlCtrlSum = p.text()
			case "PmtInfSts":
				return p.setStatus(&p.pmt.PmtInfSts, "PmtInfSts")
			}
			return nil
		}
		if name == "OrgnlPmtInfAndSts" {
			p.nPmt++
			if p.h.OnPmtInf != nil {
				if err := p.h.OnPmtInf(&p.g, p.pmt); err != nil {
					return fmt.Errorf("psr OnPmtInf %s: %w", p.pmt.OrgnlPmtInfId, err)
				}
			}
			p.pmt = nil
		}
		return nil
	}

	if p.inGroup {
		if parent == "OrgnlGrpInfAndSts" {
			switch name {
			case "OrgnlMsgId":
				p.g.OrgnlMsgId = p.text()
			case "OrgnlMsgNmId":
				p.g.OrgnlMsgNmId = p.text()
			case "OrgnlCreDtTm":
				p.g.OrgnlCreDtTm = p.text()
			case "OrgnlNbOfTxs":
				p.g.OrgnlNbOfTxs = p.text()
			case "OrgnlCtrlSum":
				p.g.OrgnlCtrlSum = p.text()
			case "GrpSts":
				return p.setStatus(&p.g.GrpSts, "GrpSts")
			}
			return nil
		}
		if name == "OrgnlGrpInfAndSts" {
			p.inGroup = false
			p.groupDone = true
			if p.h.OnGroup != nil {
				if err := p.h.OnGroup(&p.g); err != nil {
					return fmt.Errorf("psr OnGroup %s: %w", p.g.MsgId, err)
				}
			}
		}
		return nil
	}

	if s.within("GrpHdr") {
		switch {
		case name == "MsgId" && parent == "GrpHdr":
			p.g.MsgId = p.text()
		case name == "CreDtTm" && parent == "GrpHdr":
			p.g.CreDtTm = p.text()
			p.g.Created = parseISOTime(p.g.CreDtTm)
		case name == "Nm" && parent == "InitgPty":
			p.g.InitgPtyName = p.text()
		}
	}
	return nil
}

func (p *psrParser) emitTx() error {
	p.nTx++
	if p.h.OnTx != nil {
		if err := p.h.OnTx(&p.g, p.pmt, p.tx); err != nil {
			return fmt.Errorf("psr OnTx %s: %w", p.tx.OrgnlEndToEndId, err)
		}
	}
	p.tx = nil
	return nil
}

// parseISOTime accepts the ISO 8601 date-times banks send, with or without
// fractional seconds and zone (no zone is read as UTC).
func parseISOTime(s string) time.Time {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	return time.Time{}
}
