// Package sim is an EBICS bank simulator for tests and demos: an HTTP
// server on loopback speaking EBICS 2.5 (H004) and 3.0 (H005) that keeps
// subscriber state, checks everything a bank checks (X002, ES, nonces,
// timestamps, key digests, segment order and size), validates uploaded
// pain.001/pain.008 files asynchronously and offers HAC, PSR (pain.002) and
// PTK acknowledgements for download, with fault injection.
package sim

import (
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/acquit/acquit/plugins/ebics/keys"
	"github.com/acquit/acquit/plugins/ebics/protocol"
)

// Faults are the failures injected into a run. Zero value: none.
type Faults struct {
	// RejectFile makes the bank reject every uploaded file (HAC final
	// negative, PSR group status RJCT).
	RejectFile bool
	// RejectTxs lists EndToEndIds the bank rejects (PSR TxSts RJCT, AC04).
	RejectTxs []string
	// NeverAck accepts uploads but never produces acknowledgements.
	NeverAck bool
	// AckDelay delays the acknowledgements after the upload.
	AckDelay time.Duration
	// DropAtSegment closes the connection without answer when this upload
	// segment number arrives (once); the segment is not stored.
	DropAtSegment int
	// DropAfterSegment stores this segment, then drops the connection
	// without answer (once): the client does not know it arrived.
	DropAfterSegment int
	// InternalErrorAtSegment answers 061099 for this segment (once).
	InternalErrorAtSegment int
	// RecoverySyncAtSegment answers 061101 EBICS_TX_RECOVERY_SYNC for this
	// segment (once), naming the last segment received.
	RecoverySyncAtSegment int
	// InternalErrorOnInit answers 061099 to the next initialisation (once).
	InternalErrorOnInit bool
	// RequestDelay delays every answer (slow bank; crash tests).
	RequestDelay time.Duration
}

// Config configures a simulator.
type Config struct {
	HostID string
	// MaxSegmentSize is the largest OrderData segment accepted (base64
	// bytes); default 1 MiB.
	MaxSegmentSize int
	// DownloadSegmentSize is the segment size of downloads; default 1 MiB.
	DownloadSegmentSize int
	// MaxSegments caps NumSegments; default 10000.
	MaxSegments int
	// MaxOrderSize caps the decompressed order data; default 512 MiB.
	MaxOrderSize int64
	// RequireCertificates refuses INI/HIA keys without X.509 certificates
	// with 091217 (French banks; always the case in H005).
	RequireCertificates bool
	// ManualActivation leaves subscribers "initialised" after INI+HIA
	// until Activate is called (the bank checking the letter); by default
	// they become ready at once.
	ManualActivation bool
	// ClockSkew is the accepted Timestamp difference (default 1 h).
	ClockSkew time.Duration
	Faults    Faults
	Logger    zerolog.Logger
	// BankKeyBits sizes the bank keys (default 2048).
	BankKeyBits int
	// Admin enables POST /admin/activate?partner=P&user=U (the bank
	// checking a letter) and GET /admin/orders (JSON), for the command.
	Admin bool
	// OrderTypes (2.5) and Services (3.0) are what HAA lists; nil: all
	// the simulator supports.
	OrderTypes []string
	Services   []protocol.OrderParams
	// Permitted restricts the subscriber's permissions in HTD/HKD (order
	// types or 3.0 service names); nil: everything offered.
	Permitted []string
	// BankKeys reuses existing bank keys (their Auth and Enc keys, which
	// need certificates for H005); nil generates fresh ones.
	BankKeys *keys.Set
}

// SubscriberState is a subscriber's onboarding state.
type SubscriberState string

// The states.
const (
	StateNew         SubscriberState = "new"
	StateINI         SubscriberState = "ini_sent"
	StateInitialised SubscriberState = "initialised"
	StateReady       SubscriberState = "ready"
)

type subscriber struct {
	partner, user string
	state         SubscriberState
	sig, auth     *protocol.PubKey
	enc           *protocol.PubKey
	orderIDs      map[string]bool
}

// Order is what the bank recorded for one completed upload.
type Order struct {
	OrderID       string
	TransactionID string
	OrderType     string // order type or BTU service name
	PartnerID     string
	UserID        string
	Version       protocol.Version
	FileFormat    string
	Data          []byte // the decrypted, decompressed document
	MsgID         string
	Accepted      bool
	Reasons       []string
	Received      time.Time
}

// Doc is a document offered for download.
type Doc struct {
	ID        string
	Kind      string // HAC, PTK, PSR, STM, ...
	Format    string
	Partner   string
	Content   []byte
	Created   time.Time
	Delivered bool
	inFlight  string // transaction id holding it
}

type tx struct {
	id         string
	sub        *subscriber
	version    protocol.Version
	upload     bool
	orderType  string
	orderID    string
	params     protocol.OrderParams
	numSeg     int
	segments   []string
	wrappedKey []byte
	sigData    []byte
	dataDigest []byte
	done       bool
	doc        *Doc
	created    time.Time
	response   []byte // final response of a completed upload (recovery)
}

// Sim is a running bank simulator.
type Sim struct {
	cfg      Config
	log      zerolog.Logger
	authKey  *keys.Key
	encKey   *keys.Key
	mu       sync.Mutex
	faults   Faults
	subs     map[string]*subscriber
	nonces   map[string]time.Time
	txs      map[string]*tx
	orders   []Order
	docs     []*Doc
	msgIDs   map[string]bool
	seq      int
	srv      *http.Server
	ln       net.Listener
	wg       sync.WaitGroup
	ackWG    sync.WaitGroup
	requests int
	unsigned bool
}

// New creates a simulator with fresh bank keys (with self-signed
// certificates, used by H005).
func New(cfg Config) (*Sim, error) {
	if cfg.HostID == "" {
		cfg.HostID = "SIMBANK"
	}
	if cfg.MaxSegmentSize <= 0 {
		cfg.MaxSegmentSize = 1 << 20
	}
	if cfg.DownloadSegmentSize <= 0 {
		cfg.DownloadSegmentSize = 1 << 20
	}
	if cfg.MaxSegments <= 0 {
		cfg.MaxSegments = 10000
	}
	if cfg.MaxOrderSize <= 0 {
		cfg.MaxOrderSize = 512 << 20
	}
	if cfg.ClockSkew <= 0 {
		cfg.ClockSkew = time.Hour
	}
	bits := cfg.BankKeyBits
	if bits == 0 {
		bits = 2048
	}
	bk := cfg.BankKeys
	if bk == nil {
		var err error
		bk, err = keys.Generate("BANK", cfg.HostID, keys.Options{Bits: bits, SelfSigned: true, CommonName: cfg.HostID})
		if err != nil {
			return nil, fmt.Errorf("ebics sim: bank keys: %w", err)
		}
	}
	return &Sim{cfg: cfg, log: cfg.Logger, authKey: bk.Auth, encKey: bk.Enc, faults: cfg.Faults,
		subs: map[string]*subscriber{}, nonces: map[string]time.Time{}, txs: map[string]*tx{}, msgIDs: map[string]bool{}}, nil
}

// Start listens on 127.0.0.1 (port 0 unless addr is given) and serves; it
// returns the EBICS URL.
func (s *Sim) Start(addr string) (string, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("ebics sim: listen: %w", err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.srv.Serve(ln) }()
	return "http://" + ln.Addr().String() + "/ebics", nil
}

// Close stops the server and waits for pending acknowledgement jobs.
func (s *Sim) Close() error {
	var err error
	if s.srv != nil {
		err = s.srv.Close()
		s.wg.Wait()
	}
	s.ackWG.Wait()
	return err
}

// WaitAcks waits until every asynchronous file validation has finished.
func (s *Sim) WaitAcks() { s.ackWG.Wait() }

// SetFaults replaces the injected faults.
func (s *Sim) SetFaults(f Faults) { s.mu.Lock(); s.faults = f; s.mu.Unlock() }

// AddSubscriber declares a subscriber (state "new"), as the bank does when
// the contract is signed.
func (s *Sim) AddSubscriber(partnerID, userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs[partnerID+"/"+userID] = &subscriber{partner: partnerID, user: userID, state: StateNew, orderIDs: map[string]bool{}}
}

// Activate moves an initialised subscriber to ready (letter checked).
func (s *Sim) Activate(partnerID, userID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.subs[partnerID+"/"+userID]
	if sub == nil || sub.state != StateInitialised {
		return fmt.Errorf("ebics sim: subscriber %s/%s not initialised", partnerID, userID)
	}
	sub.state = StateReady
	return nil
}

// State returns a subscriber's state ("" if unknown).
func (s *Sim) State(partnerID, userID string) SubscriberState {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sub := s.subs[partnerID+"/"+userID]; sub != nil {
		return sub.state
	}
	return ""
}

// BankKeyHashes returns the digests of the bank's X002 and E002 keys as
// its letter shows them for version v.
func (s *Sim) BankKeyHashes(v protocol.Version) (auth, enc []byte) {
	return s.authKey.Pub().Digest(v), s.encKey.Pub().Digest(v)
}

// Orders returns what the bank recorded, in order of arrival.
func (s *Sim) Orders() []Order {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Order(nil), s.orders...)
}

// Docs returns the documents offered for download.
func (s *Sim) Docs() []Doc {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Doc, 0, len(s.docs))
	for _, d := range s.docs {
		out = append(out, *d)
	}
	return out
}

// AddDocument offers a document for download to a partner (kind: HAC, PTK,
// PSR, STM, ...).
func (s *Sim) AddDocument(partnerID, kind, format string, content []byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addDocLocked(partnerID, kind, format, content)
}

func (s *Sim) addDocLocked(partnerID, kind, format string, content []byte) string {
	s.seq++
	d := &Doc{ID: fmt.Sprintf("D%06d", s.seq), Kind: kind, Format: format, Partner: partnerID, Content: content, Created: time.Now().UTC()}
	s.docs = append(s.docs, d)
	return d.ID
}

// ExpireTransactions drops open transactions (as a bank does after its
// timeout), releasing documents of unfinished downloads.
func (s *Sim) ExpireTransactions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, t := range s.txs {
		if !t.done {
			if t.doc != nil && t.doc.inFlight == id {
				t.doc.inFlight = ""
			}
			delete(s.txs, id)
		}
	}
}

// ForgetTransactions drops every transaction, completed ones included (a
// bank that keeps no memory of finished uploads): a client that lost the
// final answer can no longer get it again.
func (s *Sim) ForgetTransactions() {
	s.ExpireTransactions()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.txs {
		delete(s.txs, id)
	}
}

// signKey is the bank's X002 key for responses (nil in the fuzz test:
// RSA private operations under coverage instrumentation are too slow).
func (s *Sim) signKey() *rsa.PrivateKey {
	if s.unsigned {
		return nil
	}
	return s.authKey.Private
}

// Requests returns the number of HTTP requests served.
func (s *Sim) Requests() int { s.mu.Lock(); defer s.mu.Unlock(); return s.requests }

var errDrop = errors.New("drop connection")

// ServeHTTP answers one EBICS request.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Admin && strings.HasPrefix(r.URL.Path, "/admin/") {
		s.admin(w, r)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	limit := int64(s.cfg.MaxSegmentSize) + 256<<10
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return
	}
	s.mu.Lock()
	s.requests++
	delay := s.faults.RequestDelay
	s.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	var out []byte
	if int64(len(body)) > limit {
		out = s.errorResponse(guessVersion(body), protocol.KindResponse, protocol.CodeSegmentSizeExceeded, "request too large")
	} else {
		out, err = s.handle(body)
		if errors.Is(err, errDrop) {
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		}
	}
	w.Header().Set("Content-Type", "text/xml; charset=UTF-8")
	w.Write(out)
}

func (s *Sim) admin(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/admin/activate" && r.Method == http.MethodPost:
		if err := s.Activate(r.URL.Query().Get("partner"), r.URL.Query().Get("user")); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		fmt.Fprintln(w, "ready")
	case r.URL.Path == "/admin/orders" && r.Method == http.MethodGet:
		type view struct {
			OrderID, TransactionID, OrderType, PartnerID, UserID, MsgID string
			Accepted                                                    bool
			Reasons                                                     []string
			Bytes                                                       int
			Received                                                    time.Time
		}
		var out []view
		for _, o := range s.Orders() {
			out = append(out, view{o.OrderID, o.TransactionID, o.OrderType, o.PartnerID, o.UserID, o.MsgID, o.Accepted, o.Reasons, len(o.Data), o.Received})
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	default:
		http.NotFound(w, r)
	}
}

func guessVersion(b []byte) protocol.Version {
	if strings.Contains(string(b[:min(len(b), 512)]), "H005") {
		return protocol.H005
	}
	return protocol.H004
}

func (s *Sim) errorResponse(v protocol.Version, kind, code, report string) []byte {
	resp := &protocol.Response{Version: v, Kind: kind, TechCode: code, ReportText: report}
	info := protocol.LookupCode(code)
	if info.Business { // business codes travel in the body, the header says 000000
		resp.TechCode, resp.BusinessCode = protocol.CodeOK, code
	}
	if report == "" {
		resp.ReportText = "[" + info.Name + "] " + info.Text
	} else {
		resp.ReportText = "[" + info.Name + "] " + report
	}
	b, err := resp.Marshal(s.signKey())
	if err != nil {
		s.log.Error().Err(err).Msg("ebics sim: marshal error response")
	}
	return b
}

func (s *Sim) handle(body []byte) ([]byte, error) {
	v := guessVersion(body)
	if strings.Contains(string(body[:min(len(body), 256)]), "ebicsHEVRequest") {
		return s.hev(body), nil
	}
	req, doc, err := protocol.ParseRequest(body, int(s.cfg.MaxSegmentSize)+256<<10)
	if err != nil {
		s.log.Warn().Err(err).Msg("ebics sim: unparseable request")
		return s.errorResponse(v, protocol.KindResponse, protocol.CodeInvalidXML, err.Error()), nil
	}
	v = req.Version
	if req.HostID != s.cfg.HostID {
		return s.errorResponse(v, respKind(req), protocol.CodeInvalidHostID, "unknown host "+req.HostID), nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch req.Kind {
	case protocol.KindUnsecured:
		return s.keyMgmt(req), nil
	case protocol.KindNoPubKeyDigests:
		return s.hpb(req, doc), nil
	}
	if req.TransactionID != "" {
		return s.transfer(req, doc)
	}
	return s.initialise(req, doc), nil
}

func (s *Sim) hev(body []byte) []byte {
	code := protocol.CodeOK
	doc, err := protocol.ParseXML(body, 64<<10)
	if err != nil || doc.Root().Tag != "ebicsHEVRequest" {
		code = protocol.CodeInvalidXML
	} else if h := doc.Root().SelectElement("HostID"); h == nil || strings.TrimSpace(h.Text()) != s.cfg.HostID {
		code = protocol.CodeInvalidHostID
	}
	info := protocol.LookupCode(code)
	return []byte(`<?xml version="1.0" encoding="UTF-8"?><ebicsHEVResponse xmlns="http://www.ebics.org/H000"><SystemReturnCode><ReturnCode>` +
		code + `</ReturnCode><ReportText>[` + info.Name + `] ` + info.Text + `</ReportText></SystemReturnCode>` +
		`<VersionNumber ProtocolVersion="H004">02.50</VersionNumber><VersionNumber ProtocolVersion="H005">03.00</VersionNumber></ebicsHEVResponse>`)
}

func respKind(r *protocol.Request) string {
	if r.Kind == protocol.KindRequest {
		return protocol.KindResponse
	}
	return protocol.KindKeyManagementResp
}

// checkFresh enforces the timestamp window and refuses replayed nonces
// (091103 EBICS_TX_MESSAGE_REPLAY).
func (s *Sim) checkFresh(req *protocol.Request) string {
	now := time.Now()
	if req.Nonce == "" || len(req.Nonce) != 32 || req.Timestamp.IsZero() {
		return protocol.CodeInvalidRequest
	}
	if d := now.Sub(req.Timestamp); d > s.cfg.ClockSkew || d < -s.cfg.ClockSkew {
		return protocol.CodeTxMessageReplay
	}
	key := req.PartnerID + "/" + req.UserID + "/" + strings.ToUpper(req.Nonce)
	if _, seen := s.nonces[key]; seen {
		return protocol.CodeTxMessageReplay
	}
	for k, t := range s.nonces {
		if now.Sub(t) > 2*s.cfg.ClockSkew {
			delete(s.nonces, k)
		}
	}
	s.nonces[key] = now
	return ""
}

func (s *Sim) keyMgmt(req *protocol.Request) []byte {
	v := req.Version
	km := protocol.KindKeyManagementResp
	sub := s.subs[req.PartnerID+"/"+req.UserID]
	if sub == nil {
		return s.errorResponse(v, km, protocol.CodeUserUnknown, "")
	}
	raw, err := protocol.DecodeBase64(req.OrderData)
	if err != nil {
		return s.errorResponse(v, km, protocol.CodeInvalidOrderData, err.Error())
	}
	data, err := protocol.Inflate(raw, 1<<20)
	if err != nil {
		return s.errorResponse(v, km, protocol.CodeInvalidOrderData, err.Error())
	}
	kod, err := protocol.ParseKeyOrderData(data)
	var kl *protocol.KeyLengthError
	if errors.As(err, &kl) {
		code := map[string]string{"INI": "091204", "HIA": "091205"}[req.OrderType]
		return s.errorResponse(v, km, code, err.Error())
	}
	if err != nil {
		return s.errorResponse(v, km, protocol.CodeInvalidOrderData, err.Error())
	}
	if kod.PartnerID != req.PartnerID || kod.UserID != req.UserID {
		return s.errorResponse(v, km, protocol.CodePartnerIDMismatch, "order data names another subscriber")
	}
	needCert := s.cfg.RequireCertificates || v == protocol.H005
	check := func(k *protocol.PubKey, versions ...string) string {
		ok := false
		for _, x := range versions {
			ok = ok || k.Version == x
		}
		if !ok {
			return map[string]string{"A": "091201", "X": "091202", "E": "091203"}[versions[0][:1]]
		}
		if needCert && k.Cert == nil {
			return protocol.CodeOnlyX509
		}
		if k.Cert != nil {
			now := time.Now()
			if now.After(k.Cert.NotAfter) {
				return protocol.CodeCertExpired
			}
			if now.Before(k.Cert.NotBefore) {
				return "091209"
			}
		}
		return ""
	}
	switch req.OrderType {
	case "INI":
		if kod.Signature == nil {
			return s.errorResponse(v, km, protocol.CodeInvalidOrderData, "INI without signature key")
		}
		if sub.state != StateNew {
			return s.errorResponse(v, km, protocol.CodeInvalidUserState, "INI already received")
		}
		if c := check(kod.Signature, protocol.A005, protocol.A006); c != "" {
			return s.errorResponse(v, km, c, "")
		}
		sub.sig = kod.Signature
		sub.state = StateINI
	case "HIA":
		if kod.Auth == nil || kod.Enc == nil {
			return s.errorResponse(v, km, protocol.CodeInvalidOrderData, "HIA without keys")
		}
		if sub.state != StateINI && sub.state != StateNew {
			return s.errorResponse(v, km, protocol.CodeInvalidUserState, "HIA already received")
		}
		if c := check(kod.Auth, "X002"); c != "" {
			return s.errorResponse(v, km, c, "")
		}
		if c := check(kod.Enc, "E002"); c != "" {
			return s.errorResponse(v, km, c, "")
		}
		sub.auth, sub.enc = kod.Auth, kod.Enc
		if sub.state == StateINI {
			sub.state = StateInitialised
			if !s.cfg.ManualActivation {
				sub.state = StateReady
			}
		} else {
			sub.state = StateNew // HIA first: wait for INI
		}
	default:
		return s.errorResponse(v, km, protocol.CodeUnsupportedOrderType, req.OrderType)
	}
	s.log.Info().Str("partner", req.PartnerID).Str("user", req.UserID).Str("order", req.OrderType).Str("state", string(sub.state)).Msg("ebics sim: key management")
	resp := &protocol.Response{Version: v, Kind: km, TechCode: protocol.CodeOK}
	b, _ := resp.Marshal(nil)
	return b
}

func (s *Sim) hpb(req *protocol.Request, doc *etreeDoc) []byte {
	v := req.Version
	km := protocol.KindKeyManagementResp
	sub := s.subs[req.PartnerID+"/"+req.UserID]
	if sub == nil {
		return s.errorResponse(v, km, protocol.CodeUserUnknown, "")
	}
	if sub.auth == nil || (sub.state != StateInitialised && sub.state != StateReady) {
		return s.errorResponse(v, km, protocol.CodeInvalidUserState, "")
	}
	if err := protocol.VerifyAuth(doc, sub.auth.Key); err != nil {
		return s.errorResponse(v, km, protocol.CodeAuthenticationFailed, err.Error())
	}
	if c := s.checkFresh(req); c != "" {
		return s.errorResponse(v, km, c, "")
	}
	if req.OrderType != "HPB" {
		return s.errorResponse(v, km, protocol.CodeUnsupportedOrderType, req.OrderType)
	}
	od, err := protocol.HPBResponseOrderData(v, s.authKey.Pub(), s.encKey.Pub(), s.cfg.HostID)
	if err != nil {
		return s.errorResponse(v, km, protocol.CodeInternalError, err.Error())
	}
	key := protocol.NewTransactionKey()
	enc, _ := protocol.EncryptE002(key, protocol.Deflate(od))
	wrapped, err := protocol.WrapKey(sub.enc.Key, key)
	if err != nil {
		return s.errorResponse(v, km, protocol.CodeInternalError, err.Error())
	}
	resp := &protocol.Response{Version: v, Kind: km, TechCode: protocol.CodeOK, EncKeyHash: sub.enc.Digest(v),
		TransactionKey: wrapped, OrderData: b64(enc)}
	b, _ := resp.Marshal(nil)
	return b
}

// orderKind classifies an order: upload kinds and download kinds.
func orderKind(req *protocol.Request) (kind string, upload bool, ok bool) {
	p := req.Params
	switch req.OrderType {
	case "FUL":
		return "FUL:" + p.FileFormat, true, p.FileFormat != ""
	case "CCT", "CDD", "CDB", "XE2", "XE3", "CIP":
		return req.OrderType, true, true
	case "BTU":
		return "BTU:" + p.ServiceName, true, p.ServiceName != "" && p.MsgName != ""
	case "HAC", "PTK", "HAA", "HTD", "HKD":
		return req.OrderType, false, true
	case "Z01":
		return "PSR", false, true
	case "C53", "STA", "C52", "C54":
		return "STM", false, true
	case "FDL":
		switch {
		case strings.HasPrefix(p.FileFormat, "pain.002"):
			return "PSR", false, true
		case strings.HasPrefix(p.FileFormat, "camt.05"):
			return "STM", false, true
		}
		return p.FileFormat, false, p.FileFormat != ""
	case "BTD":
		switch p.ServiceName {
		case "PSR":
			return "PSR", false, true
		case "EOP", "STM":
			return "STM", false, true
		}
		return p.ServiceName, false, p.ServiceName != ""
	}
	return "", false, false
}

func (s *Sim) initialise(req *protocol.Request, doc *etreeDoc) []byte {
	v := req.Version
	rk := protocol.KindResponse
	sub := s.subs[req.PartnerID+"/"+req.UserID]
	if sub == nil {
		return s.errorResponse(v, rk, protocol.CodeUserUnknown, "")
	}
	if sub.state != StateReady {
		return s.errorResponse(v, rk, protocol.CodeInvalidUserState, "subscriber "+string(sub.state))
	}
	if err := protocol.VerifyAuth(doc, sub.auth.Key, "DataEncryptionInfo", "SignatureData", "TransferReceipt"); err != nil {
		s.log.Warn().Err(err).Str("partner", req.PartnerID).Msg("ebics sim: authentication failed")
		return s.errorResponse(v, rk, protocol.CodeAuthenticationFailed, err.Error())
	}
	if c := s.checkFresh(req); c != "" {
		return s.errorResponse(v, rk, c, "")
	}
	wantAuth, wantEnc := s.BankKeyHashes(v)
	if !bytesEq(req.BankAuthHash, wantAuth) || !bytesEq(req.BankEncHash, wantEnc) {
		return s.errorResponse(v, rk, protocol.CodeBankPubkeyUpdate, "bank key digests do not match")
	}
	if s.faults.InternalErrorOnInit {
		s.faults.InternalErrorOnInit = false
		return s.errorResponse(v, rk, protocol.CodeInternalError, "injected")
	}
	kind, upload, ok := orderKind(req)
	if !ok || !s.offers(v, req.OrderType) {
		return s.errorResponse(v, rk, protocol.CodeUnsupportedOrderType, req.OrderType)
	}
	t := &tx{id: protocol.NewTransactionID(), sub: sub, version: v, upload: upload, orderType: req.OrderType, params: req.Params, created: time.Now()}
	if upload {
		if req.TransactionKey == nil || req.SignatureData == nil {
			return s.errorResponse(v, rk, protocol.CodeInvalidRequestContnt, "upload without DataEncryptionInfo/SignatureData")
		}
		if !bytesEq(req.EncKeyHash, wantEnc) {
			return s.errorResponse(v, rk, protocol.CodeBankPubkeyUpdate, "encryption key digest does not match")
		}
		if req.NumSegments < 1 || req.NumSegments > s.cfg.MaxSegments {
			return s.errorResponse(v, rk, protocol.CodeMaxSegmentsExceeded, fmt.Sprintf("NumSegments %d", req.NumSegments))
		}
		if v == protocol.H004 {
			if !validOrderID(req.OrderID) {
				return s.errorResponse(v, rk, protocol.CodeInvalidOrderParams, "OrderID "+req.OrderID)
			}
			if sub.orderIDs[req.OrderID] {
				return s.errorResponse(v, rk, protocol.CodeOrderIDExists, "OrderID "+req.OrderID)
			}
			t.orderID = req.OrderID
		} else {
			s.seq++
			t.orderID = fmt.Sprintf("B%03X", s.seq%4096)
		}
		t.numSeg, t.wrappedKey, t.sigData, t.dataDigest = req.NumSegments, req.TransactionKey, req.SignatureData, req.DataDigest
		s.txs[t.id] = t
		s.log.Info().Str("tx", t.id).Str("order", t.orderID).Str("kind", kind).Int("segments", t.numSeg).Msg("ebics sim: upload initialised")
		resp := &protocol.Response{Version: v, Kind: rk, TransactionID: t.id, Phase: protocol.PhaseInitialisation, OrderID: t.orderID}
		b, _ := resp.Marshal(s.signKey())
		return b
	}
	var d *Doc
	switch kind {
	case "HAA":
		d = &Doc{ID: "HAA", Kind: "HAA", Partner: sub.partner, Content: protocol.HAAResponseOrderData(v, s.orderTypes(), s.services()), Created: time.Now()}
	case "HTD", "HKD":
		pd := s.partnerData(v, sub)
		d = &Doc{ID: kind, Kind: kind, Partner: sub.partner, Content: protocol.PartnerOrderData(v, kind+"ResponseOrderData", pd), Created: time.Now()}
	default:
		d = s.pickDoc(sub.partner, kind, req.Params)
	}
	if d == nil {
		return s.errorResponse(v, rk, protocol.CodeNoDownloadData, "")
	}
	key := protocol.NewTransactionKey()
	enc, _ := protocol.EncryptE002(key, protocol.Deflate(d.Content))
	wrapped, err := protocol.WrapKey(sub.enc.Key, key)
	if err != nil {
		return s.errorResponse(v, rk, protocol.CodeInternalError, err.Error())
	}
	t.segments = protocol.SplitSegments(b64(enc), s.cfg.DownloadSegmentSize)
	t.numSeg, t.doc, t.wrappedKey = len(t.segments), d, wrapped
	d.inFlight = t.id
	s.txs[t.id] = t
	resp := &protocol.Response{Version: v, Kind: rk, TransactionID: t.id, NumSegments: t.numSeg, Phase: protocol.PhaseInitialisation,
		SegmentNumber: 1, LastSegment: t.numSeg == 1, EncKeyHash: sub.enc.Digest(v), TransactionKey: wrapped, OrderData: t.segments[0]}
	if v == protocol.H005 {
		s.seq++
		resp.OrderID = fmt.Sprintf("D%03X", s.seq%4096)
	}
	b, _ := resp.Marshal(s.signKey())
	return b
}

// OrderTypes lists the order types the simulator offers (HAA, 2.5).
func (s *Sim) orderTypes() []string {
	if s.cfg.OrderTypes != nil {
		return s.cfg.OrderTypes
	}
	return []string{"FUL", "FDL", "CCT", "CDD", "HAC", "PTK", "Z01", "C53", "STA", "HAA", "HTD", "HKD"}
}

// offers reports whether the order type is enabled (2.5: OrderTypes when
// configured; BTU/BTD and the admin types always in 3.0).
func (s *Sim) offers(v protocol.Version, ot string) bool {
	if v == protocol.H005 || s.cfg.OrderTypes == nil {
		return true
	}
	for _, o := range s.cfg.OrderTypes {
		if o == ot {
			return true
		}
	}
	return false
}

var uploadTypes = map[string]bool{"FUL": true, "CCT": true, "CDD": true, "CDB": true, "XE2": true, "XE3": true, "CIP": true, "BTU": true}

// partnerData is what HTD/HKD tell a subscriber: the orders offered to the
// partner, and the subscriber's permissions (all of them).
func (s *Sim) partnerData(v protocol.Version, sub *subscriber) protocol.PartnerData {
	var orders []protocol.OrderInfo
	if v == protocol.H004 {
		for _, ot := range s.orderTypes() {
			tt := "Download"
			if uploadTypes[ot] {
				tt = "Upload"
			}
			orders = append(orders, protocol.OrderInfo{OrderType: ot, TransferType: tt})
		}
	} else {
		for _, svc := range s.services() {
			ot := "BTD"
			if svc.ServiceName == "SCT" || svc.ServiceName == "SDD" {
				ot = "BTU"
			}
			orders = append(orders, protocol.OrderInfo{OrderType: ot, Service: svc})
		}
		for _, ot := range []string{"HAC", "PTK", "HAA", "HTD", "HKD"} {
			orders = append(orders, protocol.OrderInfo{OrderType: ot})
		}
	}
	perm := orders
	if s.cfg.Permitted != nil {
		perm = nil
		for _, o := range orders {
			for _, p := range s.cfg.Permitted {
				if o.OrderType == p || o.Service.ServiceName == p {
					perm = append(perm, o)
				}
			}
		}
	}
	return protocol.PartnerData{HostID: s.cfg.HostID, Name: sub.partner, Orders: orders,
		Users: []protocol.UserInfo{{UserID: sub.user, Status: "1", Permission: perm}}}
}

func (s *Sim) services() []protocol.OrderParams {
	if s.cfg.Services != nil {
		return s.cfg.Services
	}
	return []protocol.OrderParams{{ServiceName: "SCT", MsgName: "pain.001"}, {ServiceName: "SDD", ServiceOption: "COR", MsgName: "pain.008"},
		{ServiceName: "PSR", Scope: "BIL", MsgName: "pain.002"}, {ServiceName: "EOP", MsgName: "camt.053"}}
}

func (s *Sim) pickDoc(partner, kind string, p protocol.OrderParams) *Doc {
	var from, to time.Time
	ranged := p.DateStart != "" && p.DateEnd != ""
	if ranged {
		from, _ = time.Parse("2006-01-02", p.DateStart)
		to, _ = time.Parse("2006-01-02", p.DateEnd)
		to = to.Add(24 * time.Hour)
	}
	cands := []*Doc{}
	for _, d := range s.docs {
		if d.Partner != partner || d.Kind != kind || d.inFlight != "" {
			continue
		}
		if ranged {
			if d.Created.Before(from) || !d.Created.Before(to) {
				continue
			}
		} else if d.Delivered {
			continue
		}
		cands = append(cands, d)
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].Created.Before(cands[j].Created) })
	if len(cands) == 0 {
		return nil
	}
	return cands[0]
}

func (s *Sim) transfer(req *protocol.Request, doc *etreeDoc) ([]byte, error) {
	v := req.Version
	rk := protocol.KindResponse
	t := s.txs[req.TransactionID]
	if t == nil {
		return s.errorResponse(v, rk, protocol.CodeTxUnknownTxID, req.TransactionID), nil
	}
	if err := protocol.VerifyAuth(doc, t.sub.auth.Key, "DataEncryptionInfo", "SignatureData", "TransferReceipt"); err != nil {
		return s.errorResponse(v, rk, protocol.CodeAuthenticationFailed, err.Error()), nil
	}
	base := protocol.Response{Version: v, Kind: rk, TransactionID: t.id, Phase: req.Phase}
	if req.Phase == protocol.PhaseReceipt {
		if t.upload || !req.HasReceipt {
			return s.errorResponse(v, rk, protocol.CodeInvalidRequest, "receipt without download"), nil
		}
		delete(s.txs, t.id)
		t.doc.inFlight = ""
		base.TechCode = protocol.CodePostprocessSkipped
		if req.ReceiptCode == 0 {
			t.doc.Delivered = true
			base.TechCode = protocol.CodePostprocessDone
		}
		s.log.Info().Str("tx", t.id).Str("doc", t.doc.ID).Int("receipt", req.ReceiptCode).Msg("ebics sim: download receipt")
		b, _ := base.Marshal(s.signKey())
		return b, nil
	}
	if req.Phase != protocol.PhaseTransfer || req.SegmentNumber < 1 {
		return s.errorResponse(v, rk, protocol.CodeInvalidRequest, "phase "+req.Phase), nil
	}
	n := req.SegmentNumber
	if n > t.numSeg {
		return s.errorResponse(v, rk, protocol.CodeTxSegmentExceeded, ""), nil
	}
	base.SegmentNumber, base.LastSegment = n, n == t.numSeg
	if !t.upload {
		base.OrderData = t.segments[n-1]
		b, _ := base.Marshal(s.signKey())
		return b, nil
	}
	// upload segment
	if t.done {
		if n == t.numSeg && t.response != nil {
			return t.response, nil // recovery of the final answer
		}
		return s.errorResponse(v, rk, protocol.CodeTxUnknownTxID, "transaction complete"), nil
	}
	if len(req.OrderData) > s.cfg.MaxSegmentSize {
		return s.errorResponse(v, rk, protocol.CodeSegmentSizeExceeded, fmt.Sprintf("%d bytes, limit %d", len(req.OrderData), s.cfg.MaxSegmentSize)), nil
	}
	if req.OrderData == "" {
		return s.errorResponse(v, rk, protocol.CodeInvalidRequestContnt, "empty segment"), nil
	}
	f := &s.faults
	switch {
	case f.DropAtSegment == n:
		f.DropAtSegment = 0
		return nil, errDrop
	case f.InternalErrorAtSegment == n:
		f.InternalErrorAtSegment = 0
		return s.errorResponse(v, rk, protocol.CodeInternalError, "injected"), nil
	case f.RecoverySyncAtSegment == n:
		f.RecoverySyncAtSegment = 0
		r := base
		r.TechCode, r.SegmentNumber, r.LastSegment = protocol.CodeTxRecoverySync, len(t.segments), false
		r.ReportText = fmt.Sprintf("[EBICS_TX_RECOVERY_SYNC] last segment received %d", len(t.segments))
		b, _ := r.Marshal(s.signKey())
		return b, nil
	}
	switch {
	case n <= len(t.segments):
		if t.segments[n-1] != req.OrderData {
			return s.errorResponse(v, rk, protocol.CodeTxAbort, "segment resent with other content"), nil
		}
	case n == len(t.segments)+1:
		t.segments = append(t.segments, req.OrderData)
	default:
		r := base
		r.TechCode, r.SegmentNumber, r.LastSegment = protocol.CodeTxRecoverySync, max(len(t.segments), 1), false
		r.ReportText = fmt.Sprintf("[EBICS_TX_RECOVERY_SYNC] last segment received %d", len(t.segments))
		b, _ := r.Marshal(s.signKey())
		return b, nil
	}
	if req.LastSegment != (n == t.numSeg) {
		delete(s.txs, t.id)
		return s.errorResponse(v, rk, "011101", "lastSegment flag does not match NumSegments"), nil
	}
	if f.DropAfterSegment == n {
		f.DropAfterSegment = 0
		if n == t.numSeg {
			s.complete(t, base)
		}
		return nil, errDrop
	}
	if n < t.numSeg {
		b, _ := base.Marshal(s.signKey())
		return b, nil
	}
	return s.complete(t, base), nil
}

// complete decodes, checks and records an upload whose segments are all in.
func (s *Sim) complete(t *tx, base protocol.Response) []byte {
	v := t.version
	fail := func(code, report string) []byte {
		delete(s.txs, t.id)
		s.log.Warn().Str("tx", t.id).Str("code", code).Str("report", report).Msg("ebics sim: upload refused")
		return s.errorResponse(v, protocol.KindResponse, code, report)
	}
	key, err := protocol.UnwrapKey(s.encKey.Private, t.wrappedKey)
	if err != nil {
		return fail(protocol.CodeInvalidRequestContnt, err.Error())
	}
	plain, err := protocol.DecodeOrderData(t.segments, key, s.cfg.MaxOrderSize)
	var ce *protocol.CryptoError
	switch {
	case errors.As(err, &ce) && ce.Op == "inflate":
		return fail(protocol.CodeInvalidOrderData, err.Error())
	case err != nil:
		return fail(protocol.CodeInvalidRequestContnt, err.Error())
	}
	sigComp, err := protocol.DecryptE002(key, t.sigData)
	if err != nil {
		return fail(protocol.CodeInvalidRequestContnt, "SignatureData: "+err.Error())
	}
	sigXML, err := protocol.Inflate(sigComp, 1<<20)
	if err != nil {
		return fail(protocol.CodeInvalidRequestContnt, "SignatureData: "+err.Error())
	}
	sigs, err := protocol.ParseUserSignatureData(sigXML)
	if err != nil {
		return fail("091111", err.Error())
	}
	digest := protocol.DocumentDigest(plain)
	if v == protocol.H005 && !bytesEq(digest, t.dataDigest) {
		return fail(protocol.CodeSignatureFailed, "DataDigest does not match the order data")
	}
	sg := sigs[0]
	if sg.PartnerID != t.sub.partner || sg.UserID != t.sub.user {
		return fail(protocol.CodePartnerIDMismatch, "ES by another subscriber")
	}
	if sg.Version != t.sub.sig.Version {
		return fail(protocol.CodeSignatureFailed, "ES version differs from the INI key's")
	}
	if err := protocol.VerifyES(sg.Version, t.sub.sig.Key, digest, sg.Value); err != nil {
		return fail(protocol.CodeSignatureFailed, err.Error())
	}
	t.done = true
	t.sub.orderIDs[t.orderID] = true
	kind, _, _ := orderKind(&protocol.Request{OrderType: t.orderType, Params: t.params})
	o := Order{OrderID: t.orderID, TransactionID: t.id, OrderType: kind, PartnerID: t.sub.partner, UserID: t.sub.user,
		Version: v, FileFormat: firstNonEmpty(t.params.FileFormat, t.params.MsgName), Data: plain, Received: time.Now().UTC()}
	s.orders = append(s.orders, o)
	idx := len(s.orders) - 1
	s.log.Info().Str("tx", t.id).Str("order", t.orderID).Int("bytes", len(plain)).Msg("ebics sim: order recorded")
	faults := s.faults
	s.ackWG.Add(1)
	go func() {
		defer s.ackWG.Done()
		s.acknowledge(idx, faults)
	}()
	base.OrderID = t.orderID
	b, _ := base.Marshal(s.signKey())
	t.response = b
	t.segments = nil
	return b
}

func bytesEq(a, b []byte) bool { return len(a) > 0 && string(a) == string(b) }

func validOrderID(id string) bool {
	if len(id) != 4 || id[0] < 'A' || id[0] > 'Z' {
		return false
	}
	for _, c := range id[1:] {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}
