package protocol

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"
)

// Version is an EBICS protocol version.
type Version string

// The supported versions.
const (
	H004 Version = "H004" // EBICS 2.5
	H005 Version = "H005" // EBICS 3.0
)

// NS returns the XML namespace of the version's messages.
func (v Version) NS() string { return "urn:org:ebics:" + string(v) }

// SigNS returns the namespace of the signature structures (S001 / S002).
func (v Version) SigNS() string {
	if v == H005 {
		return "http://www.ebics.org/S002"
	}
	return "http://www.ebics.org/S001"
}

// ParseVersion checks a version string.
func ParseVersion(s string) (Version, error) {
	switch Version(s) {
	case H004, H005:
		return Version(s), nil
	}
	return "", fmt.Errorf("ebics: unsupported version %q (want H004 or H005)", s)
}

// Message kinds (root element names).
const (
	KindRequest            = "ebicsRequest"
	KindUnsecured          = "ebicsUnsecuredRequest"
	KindNoPubKeyDigests    = "ebicsNoPubKeyDigestsRequest"
	KindResponse           = "ebicsResponse"
	KindKeyManagementResp  = "ebicsKeyManagementResponse"
	PhaseInitialisation    = "Initialisation"
	PhaseTransfer          = "Transfer"
	PhaseReceipt           = "Receipt"
	ProductName            = "acquit"
	TimestampLayout        = "2006-01-02T15:04:05.000Z"
	timestampLayoutNoMilli = "2006-01-02T15:04:05Z"
)

// OrderParams are the order parameters of a request.
type OrderParams struct {
	// EBICS 2.5 FUL/FDL.
	FileFormat  string
	CountryCode string
	// EBICS 3.0 BTF service.
	ServiceName   string
	Scope         string
	ServiceOption string
	ContainerType string
	MsgName       string
	MsgVersion    string
	// DateRange (downloads), YYYY-MM-DD.
	DateStart, DateEnd string
}

// Request is an EBICS request message (any of the three request kinds).
type Request struct {
	Version       Version
	Kind          string
	HostID        string
	Nonce         string // 32 hex digits
	Timestamp     time.Time
	PartnerID     string
	UserID        string
	SystemID      string
	Product       string
	OrderType     string // OrderType (H004) or AdminOrderType (H005)
	OrderID       string
	OrderAttrib   string // H004 only, e.g. OZHNN, DZHNN, DZNNN
	Params        OrderParams
	BankAuthHash  []byte // BankPubKeyDigests/Authentication (X002)
	BankEncHash   []byte // BankPubKeyDigests/Encryption (E002)
	NumSegments   int
	TransactionID string // 32 hex digits
	Phase         string
	SegmentNumber int
	LastSegment   bool
	// Upload initialisation body.
	EncKeyHash     []byte // DataEncryptionInfo/EncryptionPubKeyDigest
	TransactionKey []byte // wrapped
	SignatureData  []byte // encrypted, compressed UserSignatureData
	DataDigest     []byte // H005
	DigestVersion  string // H005, A005/A006
	// OrderData is the base64 text of one segment (or of the unsecured
	// order data of INI/HIA).
	OrderData string
	// Receipt.
	HasReceipt  bool
	ReceiptCode int
}

// NewNonce returns 16 random bytes in hex, uppercase.
func NewNonce() string {
	b := make([]byte, 16)
	rand.Read(b)
	return strings.ToUpper(hex.EncodeToString(b))
}

// NewTransactionID returns a fresh 16-byte transaction id in hex.
func NewTransactionID() string { return NewNonce() }

func digestEl(parent *etree.Element, tag, version string, h []byte) {
	e := parent.CreateElement(tag)
	e.CreateAttr("Version", version)
	e.CreateAttr("Algorithm", AlgSHA256)
	e.SetText(base64.StdEncoding.EncodeToString(h))
}

// Document builds the XML document of the request (unsigned).
func (r *Request) Document() (*etree.Document, error) {
	if r.Version != H004 && r.Version != H005 {
		return nil, fmt.Errorf("ebics request: version %q", r.Version)
	}
	doc := etree.NewDocument()
	doc.CreateProcInst("xml", `version="1.0" encoding="UTF-8"`)
	root := doc.CreateElement(r.Kind)
	root.CreateAttr("xmlns", r.Version.NS())
	root.CreateAttr("xmlns:ds", NSDsig)
	root.CreateAttr("Version", string(r.Version))
	root.CreateAttr("Revision", "1")
	header := root.CreateElement("header")
	header.CreateAttr("authenticate", "true")
	st := header.CreateElement("static")
	st.CreateElement("HostID").SetText(r.HostID)
	mut := header.CreateElement("mutable")
	switch {
	case r.Kind == KindRequest && r.TransactionID != "":
		st.CreateElement("TransactionID").SetText(r.TransactionID)
		mut.CreateElement("TransactionPhase").SetText(r.Phase)
		if r.Phase == PhaseTransfer {
			sn := mut.CreateElement("SegmentNumber")
			sn.CreateAttr("lastSegment", strconv.FormatBool(r.LastSegment))
			sn.SetText(strconv.Itoa(r.SegmentNumber))
		}
	default:
		if r.Kind != KindUnsecured {
			st.CreateElement("Nonce").SetText(r.Nonce)
			st.CreateElement("Timestamp").SetText(r.Timestamp.UTC().Format(TimestampLayout))
		}
		st.CreateElement("PartnerID").SetText(r.PartnerID)
		st.CreateElement("UserID").SetText(r.UserID)
		if r.SystemID != "" {
			st.CreateElement("SystemID").SetText(r.SystemID)
		}
		p := st.CreateElement("Product")
		p.CreateAttr("Language", "en")
		p.SetText(cmp.Or(r.Product, ProductName))
		od := st.CreateElement("OrderDetails")
		if r.Version == H005 {
			od.CreateElement("AdminOrderType").SetText(r.OrderType)
		} else {
			od.CreateElement("OrderType").SetText(r.OrderType)
		}
		if r.Kind == KindRequest {
			if r.OrderID != "" {
				od.CreateElement("OrderID").SetText(r.OrderID)
			}
			if r.Version == H004 {
				od.CreateElement("OrderAttribute").SetText(r.OrderAttrib)
			}
			r.orderParams(od)
			bd := st.CreateElement("BankPubKeyDigests")
			digestEl(bd, "Authentication", "X002", r.BankAuthHash)
			digestEl(bd, "Encryption", "E002", r.BankEncHash)
		} else if r.Version == H004 {
			od.CreateElement("OrderAttribute").SetText(r.OrderAttrib)
		}
		st.CreateElement("SecurityMedium").SetText("0000")
		if r.Kind == KindRequest && r.NumSegments > 0 {
			st.CreateElement("NumSegments").SetText(strconv.Itoa(r.NumSegments))
		}
		if r.Kind == KindRequest {
			mut.CreateElement("TransactionPhase").SetText(PhaseInitialisation)
		}
	}
	body := root.CreateElement("body")
	switch {
	case r.HasReceipt:
		tr := body.CreateElement("TransferReceipt")
		tr.CreateAttr("authenticate", "true")
		tr.CreateElement("ReceiptCode").SetText(strconv.Itoa(r.ReceiptCode))
	case r.TransactionKey != nil:
		dt := body.CreateElement("DataTransfer")
		dei := dt.CreateElement("DataEncryptionInfo")
		dei.CreateAttr("authenticate", "true")
		digestEl(dei, "EncryptionPubKeyDigest", "E002", r.EncKeyHash)
		dei.CreateElement("TransactionKey").SetText(base64.StdEncoding.EncodeToString(r.TransactionKey))
		sd := dt.CreateElement("SignatureData")
		sd.CreateAttr("authenticate", "true")
		sd.SetText(base64.StdEncoding.EncodeToString(r.SignatureData))
		if r.Version == H005 {
			dd := dt.CreateElement("DataDigest")
			dd.CreateAttr("SignatureVersion", r.DigestVersion)
			dd.SetText(base64.StdEncoding.EncodeToString(r.DataDigest))
		}
	case r.OrderData != "":
		body.CreateElement("DataTransfer").CreateElement("OrderData").SetText(r.OrderData)
	}
	return doc, nil
}

func (r *Request) orderParams(od *etree.Element) {
	p := r.Params
	dateRange := func(e *etree.Element) {
		if p.DateStart != "" && p.DateEnd != "" {
			dr := e.CreateElement("DateRange")
			dr.CreateElement("Start").SetText(p.DateStart)
			dr.CreateElement("End").SetText(p.DateEnd)
		}
	}
	if r.Version == H005 {
		switch r.OrderType {
		case "BTU", "BTD":
			e := od.CreateElement(r.OrderType + "OrderParams")
			svc := e.CreateElement("Service")
			svc.CreateElement("ServiceName").SetText(p.ServiceName)
			if p.Scope != "" {
				svc.CreateElement("Scope").SetText(p.Scope)
			}
			if p.ServiceOption != "" {
				svc.CreateElement("ServiceOption").SetText(p.ServiceOption)
			}
			if p.ContainerType != "" {
				svc.CreateElement("Container").CreateAttr("containerType", p.ContainerType)
			}
			mn := svc.CreateElement("MsgName")
			if p.MsgVersion != "" {
				mn.CreateAttr("version", p.MsgVersion)
			}
			mn.SetText(p.MsgName)
			if r.OrderType == "BTU" {
				e.CreateElement("SignatureFlag")
			} else {
				dateRange(e)
			}
		default:
			dateRange(od.CreateElement("StandardOrderParams"))
		}
		return
	}
	switch r.OrderType {
	case "FUL", "FDL":
		e := od.CreateElement(r.OrderType + "OrderParams")
		if r.OrderType == "FDL" {
			dateRange(e)
		}
		ff := e.CreateElement("FileFormat")
		if p.CountryCode != "" {
			ff.CreateAttr("CountryCode", p.CountryCode)
		}
		ff.SetText(p.FileFormat)
	default:
		dateRange(od.CreateElement("StandardOrderParams"))
	}
}

// Marshal builds the request and, except for unsecured requests, adds the
// X002 authentication signature with the subscriber's key.
func (r *Request) Marshal(auth *rsa.PrivateKey) ([]byte, error) {
	doc, err := r.Document()
	if err != nil {
		return nil, err
	}
	if r.Kind != KindUnsecured {
		if auth == nil {
			return nil, fmt.Errorf("ebics request %s: no authentication key", r.OrderType)
		}
		if err := SignAuth(doc, auth); err != nil {
			return nil, err
		}
	}
	return doc.WriteToBytes()
}

// ParseRequest parses a request (hardened) without verifying its
// signature; call VerifyAuth on the returned document with the sender's
// key. It returns an *XMLError for anything that is not an EBICS request.
func ParseRequest(data []byte, max int) (*Request, *etree.Document, error) {
	doc, err := ParseXML(data, max)
	if err != nil {
		return nil, nil, err
	}
	root := doc.Root()
	r := &Request{Kind: root.Tag}
	switch root.Tag {
	case KindRequest, KindUnsecured, KindNoPubKeyDigests:
	default:
		return nil, nil, xmlErr("unexpected", "root element %q is not an EBICS request", root.Tag)
	}
	v, err := ParseVersion(root.SelectAttrValue("Version", ""))
	if err != nil {
		return nil, nil, xmlErr("unexpected", "%v", err)
	}
	if root.NamespaceURI() != v.NS() {
		return nil, nil, xmlErr("unexpected", "namespace %q does not match version %s", root.NamespaceURI(), v)
	}
	r.Version = v
	st := path(root, "header", "static")
	mut := path(root, "header", "mutable")
	if st == nil || mut == nil {
		return nil, nil, xmlErr("unexpected", "missing header/static or header/mutable")
	}
	r.HostID = text(st, "HostID")
	r.Nonce = text(st, "Nonce")
	if ts := text(st, "Timestamp"); ts != "" {
		t, err := parseTimestamp(ts)
		if err != nil {
			return nil, nil, xmlErr("unexpected", "Timestamp %q", ts)
		}
		r.Timestamp = t
	}
	r.PartnerID = text(st, "PartnerID")
	r.UserID = text(st, "UserID")
	r.SystemID = text(st, "SystemID")
	r.Product = text(st, "Product")
	r.TransactionID = text(st, "TransactionID")
	if od := child(st, "OrderDetails"); od != nil {
		r.OrderType = cmp.Or(text(od, "OrderType"), text(od, "AdminOrderType"))
		r.OrderID = text(od, "OrderID")
		r.OrderAttrib = text(od, "OrderAttribute")
		for _, pe := range od.ChildElements() {
			if !strings.HasSuffix(pe.Tag, "OrderParams") {
				continue
			}
			if dr := child(pe, "DateRange"); dr != nil {
				r.Params.DateStart, r.Params.DateEnd = text(dr, "Start"), text(dr, "End")
			}
			if ff := child(pe, "FileFormat"); ff != nil {
				r.Params.FileFormat = strings.TrimSpace(ff.Text())
				r.Params.CountryCode = ff.SelectAttrValue("CountryCode", "")
			}
			if svc := child(pe, "Service"); svc != nil {
				r.Params.ServiceName = text(svc, "ServiceName")
				r.Params.Scope = text(svc, "Scope")
				r.Params.ServiceOption = text(svc, "ServiceOption")
				if c := child(svc, "Container"); c != nil {
					r.Params.ContainerType = c.SelectAttrValue("containerType", "")
				}
				if mn := child(svc, "MsgName"); mn != nil {
					r.Params.MsgName = strings.TrimSpace(mn.Text())
					r.Params.MsgVersion = mn.SelectAttrValue("version", "")
				}
			}
		}
	}
	if bd := child(st, "BankPubKeyDigests"); bd != nil {
		var e1, e2 error
		r.BankAuthHash, e1 = DecodeBase64(text(bd, "Authentication"))
		r.BankEncHash, e2 = DecodeBase64(text(bd, "Encryption"))
		if e1 != nil || e2 != nil {
			return nil, nil, xmlErr("unexpected", "BankPubKeyDigests not base64")
		}
	}
	if ns := text(st, "NumSegments"); ns != "" {
		n, err := strconv.Atoi(ns)
		if err != nil || n < 0 {
			return nil, nil, xmlErr("unexpected", "NumSegments %q", ns)
		}
		r.NumSegments = n
	}
	r.Phase = text(mut, "TransactionPhase")
	if sn := child(mut, "SegmentNumber"); sn != nil {
		n, err := strconv.Atoi(strings.TrimSpace(sn.Text()))
		if err != nil || n < 1 {
			return nil, nil, xmlErr("unexpected", "SegmentNumber %q", sn.Text())
		}
		r.SegmentNumber = n
		r.LastSegment = sn.SelectAttrValue("lastSegment", "") == "true"
	}
	body := child(root, "body")
	if body == nil {
		return nil, nil, xmlErr("unexpected", "missing body")
	}
	if tr := child(body, "TransferReceipt"); tr != nil {
		n, err := strconv.Atoi(text(tr, "ReceiptCode"))
		if err != nil {
			return nil, nil, xmlErr("unexpected", "ReceiptCode")
		}
		r.HasReceipt, r.ReceiptCode = true, n
	}
	if dt := child(body, "DataTransfer"); dt != nil {
		if dei := child(dt, "DataEncryptionInfo"); dei != nil {
			var e1, e2, e3 error
			r.EncKeyHash, e1 = DecodeBase64(text(dei, "EncryptionPubKeyDigest"))
			r.TransactionKey, e2 = DecodeBase64(text(dei, "TransactionKey"))
			r.SignatureData, e3 = DecodeBase64(text(dt, "SignatureData"))
			if e1 != nil || e2 != nil || e3 != nil || len(r.TransactionKey) == 0 {
				return nil, nil, xmlErr("unexpected", "DataEncryptionInfo/SignatureData not base64")
			}
			if dd := child(dt, "DataDigest"); dd != nil {
				r.DigestVersion = dd.SelectAttrValue("SignatureVersion", "")
				if r.DataDigest, e1 = DecodeBase64(dd.Text()); e1 != nil {
					return nil, nil, xmlErr("unexpected", "DataDigest not base64")
				}
			}
		}
		r.OrderData = text(dt, "OrderData")
	}
	return r, doc, nil
}

// Response is an EBICS response (ebicsResponse or ebicsKeyManagementResponse).
type Response struct {
	Version        Version
	Kind           string
	TransactionID  string
	NumSegments    int
	Phase          string
	SegmentNumber  int
	LastSegment    bool
	OrderID        string
	TechCode       string
	ReportText     string
	BusinessCode   string
	EncKeyHash     []byte
	TransactionKey []byte // wrapped
	OrderData      string // base64 segment
	BankTimestamp  time.Time
}

// Document builds the response document (unsigned).
func (r *Response) Document() *etree.Document {
	doc := etree.NewDocument()
	doc.CreateProcInst("xml", `version="1.0" encoding="UTF-8"`)
	root := doc.CreateElement(r.Kind)
	root.CreateAttr("xmlns", r.Version.NS())
	root.CreateAttr("xmlns:ds", NSDsig)
	root.CreateAttr("Version", string(r.Version))
	root.CreateAttr("Revision", "1")
	header := root.CreateElement("header")
	header.CreateAttr("authenticate", "true")
	st := header.CreateElement("static")
	if r.TransactionID != "" {
		st.CreateElement("TransactionID").SetText(r.TransactionID)
	}
	if r.NumSegments > 0 {
		st.CreateElement("NumSegments").SetText(strconv.Itoa(r.NumSegments))
	}
	mut := header.CreateElement("mutable")
	if r.Kind == KindResponse {
		mut.CreateElement("TransactionPhase").SetText(cmp.Or(r.Phase, PhaseInitialisation))
		if r.SegmentNumber > 0 {
			sn := mut.CreateElement("SegmentNumber")
			sn.CreateAttr("lastSegment", strconv.FormatBool(r.LastSegment))
			sn.SetText(strconv.Itoa(r.SegmentNumber))
		}
	}
	if r.OrderID != "" {
		mut.CreateElement("OrderID").SetText(r.OrderID)
	}
	mut.CreateElement("ReturnCode").SetText(cmp.Or(r.TechCode, CodeOK))
	mut.CreateElement("ReportText").SetText(cmp.Or(r.ReportText, "["+LookupCode(cmp.Or(r.TechCode, CodeOK)).Name+"] "+LookupCode(cmp.Or(r.TechCode, CodeOK)).Text))
	body := root.CreateElement("body")
	if r.OrderData != "" {
		dt := body.CreateElement("DataTransfer")
		if r.TransactionKey != nil {
			dei := dt.CreateElement("DataEncryptionInfo")
			dei.CreateAttr("authenticate", "true")
			digestEl(dei, "EncryptionPubKeyDigest", "E002", r.EncKeyHash)
			dei.CreateElement("TransactionKey").SetText(base64.StdEncoding.EncodeToString(r.TransactionKey))
		}
		dt.CreateElement("OrderData").SetText(r.OrderData)
	}
	rc := body.CreateElement("ReturnCode")
	rc.CreateAttr("authenticate", "true")
	rc.SetText(cmp.Or(r.BusinessCode, CodeOK))
	if !r.BankTimestamp.IsZero() {
		ts := body.CreateElement("TimestampBankParameter")
		ts.CreateAttr("authenticate", "true")
		ts.SetText(r.BankTimestamp.UTC().Format(TimestampLayout))
	}
	return doc
}

// Marshal builds the response; ebicsResponse messages are signed with the
// bank's X002 key (key management responses are not signed; auth nil
// leaves a response unsigned, which clients refuse).
func (r *Response) Marshal(auth *rsa.PrivateKey) ([]byte, error) {
	doc := r.Document()
	if r.Kind == KindResponse && auth != nil {
		if err := SignAuth(doc, auth); err != nil {
			return nil, err
		}
	}
	return doc.WriteToBytes()
}

// ParseResponse parses a response (hardened), without verifying it.
func ParseResponse(data []byte, max int) (*Response, *etree.Document, error) {
	doc, err := ParseXML(data, max)
	if err != nil {
		return nil, nil, err
	}
	root := doc.Root()
	if root.Tag != KindResponse && root.Tag != KindKeyManagementResp {
		return nil, nil, xmlErr("unexpected", "root element %q is not an EBICS response", root.Tag)
	}
	v, err := ParseVersion(root.SelectAttrValue("Version", ""))
	if err != nil || root.NamespaceURI() != v.NS() {
		return nil, nil, xmlErr("unexpected", "response version/namespace %q %q", root.SelectAttrValue("Version", ""), root.NamespaceURI())
	}
	r := &Response{Version: v, Kind: root.Tag}
	st, mut, body := path(root, "header", "static"), path(root, "header", "mutable"), child(root, "body")
	if st == nil || mut == nil || body == nil {
		return nil, nil, xmlErr("unexpected", "response lacks header/static, header/mutable or body")
	}
	r.TransactionID = text(st, "TransactionID")
	if ns := text(st, "NumSegments"); ns != "" {
		if r.NumSegments, err = strconv.Atoi(ns); err != nil || r.NumSegments < 0 {
			return nil, nil, xmlErr("unexpected", "NumSegments %q", ns)
		}
	}
	r.Phase = text(mut, "TransactionPhase")
	if sn := child(mut, "SegmentNumber"); sn != nil {
		if r.SegmentNumber, err = strconv.Atoi(strings.TrimSpace(sn.Text())); err != nil || r.SegmentNumber < 1 {
			return nil, nil, xmlErr("unexpected", "SegmentNumber %q", sn.Text())
		}
		r.LastSegment = sn.SelectAttrValue("lastSegment", "") == "true"
	}
	r.OrderID = text(mut, "OrderID")
	r.TechCode = text(mut, "ReturnCode")
	r.ReportText = text(mut, "ReportText")
	r.BusinessCode = text(body, "ReturnCode")
	if len(r.TechCode) != 6 {
		return nil, nil, xmlErr("unexpected", "technical ReturnCode %q", r.TechCode)
	}
	if dt := child(body, "DataTransfer"); dt != nil {
		if dei := child(dt, "DataEncryptionInfo"); dei != nil {
			var e1, e2 error
			r.EncKeyHash, e1 = DecodeBase64(text(dei, "EncryptionPubKeyDigest"))
			r.TransactionKey, e2 = DecodeBase64(text(dei, "TransactionKey"))
			if e1 != nil || e2 != nil {
				return nil, nil, xmlErr("unexpected", "DataEncryptionInfo not base64")
			}
		}
		r.OrderData = text(dt, "OrderData")
	}
	if ts := text(body, "TimestampBankParameter"); ts != "" {
		r.BankTimestamp, _ = parseTimestamp(ts)
	}
	return r, doc, nil
}

// Err returns the technical or business code as an *Error, or nil.
func (r *Response) Err(phase string) error {
	if err := CodeError(r.TechCode, r.ReportText, phase); err != nil {
		return err
	}
	return CodeError(r.BusinessCode, r.ReportText, phase)
}

func parseTimestamp(s string) (time.Time, error) {
	for _, l := range []string{time.RFC3339Nano, TimestampLayout, timestampLayoutNoMilli} {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("bad timestamp %q", s)
}

func path(e *etree.Element, tags ...string) *etree.Element {
	for _, t := range tags {
		e = child(e, t)
		if e == nil {
			return nil
		}
	}
	return e
}

func text(e *etree.Element, tag string) string {
	c := child(e, tag)
	if c == nil {
		return ""
	}
	return strings.TrimSpace(c.Text())
}

// orderDataMark stands for the segment in MarshalEnvelope's document; it
// holds characters base64 never produces, so it cannot be mistaken for
// order data.
const orderDataMark = "<OrderData>@@acquit-order-data@@</OrderData>"

// MarshalEnvelope builds and signs a transfer-phase request carrying
// upload order data and returns the serialised document cut where the
// OrderData text goes: prefix + segment + suffix is the request. The X002
// signature covers only the elements marked authenticate="true" (the
// header here); OrderData is not among them, so the envelope is signed once
// and the segment (base64 text, which needs no XML escaping) is streamed
// from the spool into the request body without being copied into a
// document. r.OrderData is ignored.
func (r *Request) MarshalEnvelope(auth *rsa.PrivateKey) (prefix, suffix []byte, err error) {
	if r.Kind != KindRequest || r.TransactionID == "" || r.Phase != PhaseTransfer {
		return nil, nil, fmt.Errorf("ebics request: an envelope is for a transfer-phase request")
	}
	cp := *r
	cp.OrderData = "@@acquit-order-data@@"
	b, err := cp.Marshal(auth)
	if err != nil {
		return nil, nil, err
	}
	i := bytes.Index(b, []byte(orderDataMark))
	if i < 0 || bytes.Count(b, []byte(orderDataMark)) != 1 {
		return nil, nil, fmt.Errorf("ebics request: OrderData mark not found once in the envelope")
	}
	j := i + len("<OrderData>")
	return b[:j], b[j+len("@@acquit-order-data@@"):], nil
}
