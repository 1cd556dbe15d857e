// Package sim is an EBICS bank simulator for tests and demos: an HTTP
// server on loopback speaking EBICS 2.5 (H004) and 3.0 (H005) that keeps
// subscriber state, checks everything a bank checks (the official XSD,
// X002, ES, nonces, timestamps, key digests, segment order and size, with
// its own XML canonicalisation and signature code: c14n.go, verify.go,
// schema.go), expires idle transactions, validates uploaded
// pain.001/pain.008 files asynchronously and offers HAC, PSR (pain.002) and
// PTK acknowledgements for download, with fault injection.
package sim

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
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
	// SpoolDir, when set, makes the bank write the decoded order data to a
	// file there instead of memory (orders of any size: Order.DataPath
	// instead of Order.Data); the checks are the same (segment order and
	// content, order data size, the ES over the whole order data, the
	// file's validation for the acknowledgements). Either way, upload
	// segments are decoded and checked as they arrive (decode.go); without
	// SpoolDir the bank keeps the order as it arrived (its segments, 10 to
	// 20 times smaller than a pain.001) and decodes it again for the
	// acknowledgement and Orders.
	SpoolDir string
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
	// ESRawDigest makes the bank hash order data as transmitted when it
	// verifies an ES or a DataDigest; by default CR, LF and Ctrl-Z are
	// left out, as the specification's data preparation says.
	ESRawDigest bool
	// BankKeys reuses existing bank keys (their Auth and Enc keys, which
	// need certificates for H005); nil generates fresh ones.
	BankKeys *keys.Set
	// SchemaDir is the folder holding the official schemas (H004/, H005/)
	// every request is validated against (091010 EBICS_INVALID_XML when
	// invalid): "" finds them ($EBICS_XSD_DIR, then
	// shared/fixtures/ebics/ebics-xsd in the working directory or an
	// ancestor; validation is off, with a warning, if none is found or
	// xmllint is missing), "off" disables validation. A folder given here
	// must be usable, or New fails.
	SchemaDir string
	// TxTimeout expires an open transaction (upload or download) with no
	// request for that long, as a bank does: its document is offered again
	// to the next download. 0: 10 minutes; negative: never.
	TxTimeout time.Duration
	// CaptureDir, when set, receives a copy of every request and response
	// exchanged (NNNNNN-request.xml, NNNNNN-response.xml, in order), for
	// checks by independent verifiers.
	CaptureDir string
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
	Data          []byte // the decrypted, decompressed document (nil with Config.SpoolDir)
	// DataPath is the file holding the document when the bank spools
	// uploads to disk (Config.SpoolDir); Size is the document's length.
	DataPath string
	Size     int64
	MsgID    string
	Accepted bool
	Reasons  []string
	Received time.Time
	// SignatureVersion (A005/A006) and Signature are the subscriber's ES
	// over Data, as the bank verified it (for independent re-checks).
	SignatureVersion string
	Signature        []byte
	// segments and key keep the order as it arrived (memory mode): it was
	// decoded and verified then; Data is decoded from them again when
	// Orders is called, the acknowledgement reads them streaming.
	segments []string
	key      []byte
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
	schema   *schemaValidator
	now      func() time.Time // the clock of transaction expiry (tests move it)
	capture  int
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
	if cfg.TxTimeout == 0 {
		cfg.TxTimeout = 10 * time.Minute
	}
	s := &Sim{cfg: cfg, log: cfg.Logger, authKey: bk.Auth, encKey: bk.Enc, faults: cfg.Faults,
		subs: map[string]*subscriber{}, nonces: map[string]time.Time{}, txs: map[string]*tx{}, msgIDs: map[string]bool{}, now: time.Now}
	if dir := FindSchemaDir(cfg.SchemaDir); dir != "" {
		v, err := newSchemaValidator(dir)
		switch {
		case err != nil && cfg.SchemaDir != "":
			return nil, fmt.Errorf("ebics sim: schema validation: %w", err)
		case err != nil:
			s.log.Warn().Err(err).Msg("ebics sim: requests are NOT validated against the EBICS schemas")
		default:
			s.schema = v
		}
	} else if cfg.SchemaDir != SchemaOff {
		s.log.Warn().Str("env", SchemaDirEnv).Msg("ebics sim: EBICS schemas not found; requests are NOT validated against them")
	}
	if cfg.CaptureDir != "" {
		if err := os.MkdirAll(cfg.CaptureDir, 0o755); err != nil {
			return nil, fmt.Errorf("ebics sim: capture folder: %w", err)
		}
	}
	return s, nil
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
	s.mu.Lock()
	for _, t := range s.txs { // stop the decoders of unfinished uploads
		t.dropUpload()
	}
	s.mu.Unlock()
	if s.schema != nil {
		s.schema.close()
	}
	s.ackWG.Wait()
	return err
}

// WaitAcks waits until every asynchronous file validation has finished.
func (s *Sim) WaitAcks() { s.ackWG.Wait() }

// SetFaults replaces the injected faults.
func (s *Sim) SetFaults(f Faults) { s.mu.Lock(); s.faults = f; s.mu.Unlock() }

// Orders returns what the bank recorded, in order of arrival.
func (s *Sim) Orders() []Order {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.orders {
		if o := &s.orders[i]; o.segments != nil {
			data, err := decodeSegments(o.segments, o.key, o.Size)
			if err != nil { // it was decoded once already: not expected
				s.log.Error().Err(err).Str("order", o.OrderID).Msg("ebics sim: order data no longer decodes")
				continue
			}
			o.Data, o.segments, o.key = data, nil, nil
		}
	}
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
	n := s.captureRequest(body)
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
	s.captureResponse(n, out)
	w.Header().Set("Content-Type", "text/xml; charset=UTF-8")
	w.Write(out)
}

// captureRequest writes a copy of a request to CaptureDir and returns its
// sequence number (0 when capture is off).
func (s *Sim) captureRequest(body []byte) int {
	if s.cfg.CaptureDir == "" {
		return 0
	}
	s.mu.Lock()
	s.capture++
	n := s.capture
	s.mu.Unlock()
	s.captureWrite(fmt.Sprintf("%06d-request.xml", n), body)
	return n
}

// captureResponse writes the answer to request n.
func (s *Sim) captureResponse(n int, out []byte) {
	if n > 0 {
		s.captureWrite(fmt.Sprintf("%06d-response.xml", n), out)
	}
}

func (s *Sim) captureWrite(name string, b []byte) {
	if err := os.WriteFile(filepath.Join(s.cfg.CaptureDir, name), b, 0o644); err != nil {
		s.log.Error().Err(err).Str("file", name).Msg("ebics sim: capture")
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

// ValidatesSchema reports whether requests are validated against the
// official EBICS schemas (see Config.SchemaDir).
func (s *Sim) ValidatesSchema() bool { return s.schema != nil }

func (s *Sim) handle(body []byte) ([]byte, error) {
	v := guessVersion(body)
	// The bank's own parse: the tree the schema check picks its schema
	// from and X002 is verified on (verify.go), independent of the
	// client's protocol package.
	tree, err := parseTree(body)
	if err != nil {
		s.log.Warn().Err(err).Msg("ebics sim: request is not well-formed XML")
		if strings.Contains(string(body[:min(len(body), 256)]), "ebicsHEVRequest") {
			return s.hevAnswer(protocol.CodeInvalidXML), nil
		}
		return s.errorResponse(v, kindOfRoot(body), protocol.CodeInvalidXML, err.Error()), nil
	}
	// The schema check (an xmllint process) runs while the request is
	// parsed; its verdict still comes first, and nothing is acted on
	// before both are in.
	var schemaErr chan error
	if s.schema != nil {
		schemaErr = make(chan error, 1)
		go func() { schemaErr <- s.schema.validate(body, tree) }()
	}
	var req *protocol.Request
	var perr error
	if tree.local != "ebicsHEVRequest" {
		// Transfer and receipt requests are read from the tree above
		// (transferRequest); the others through the protocol package.
		var own bool
		if req, own, perr = transferRequest(tree); !own {
			req, _, perr = protocol.ParseRequest(body, int(s.cfg.MaxSegmentSize)+256<<10)
		}
	}
	if schemaErr != nil {
		if err := <-schemaErr; err != nil {
			var se *errSchema
			if !errors.As(err, &se) {
				s.log.Error().Err(err).Msg("ebics sim: schema validation failed to run")
				return s.errorResponse(v, kindOfRoot(body), protocol.CodeInternalError, "schema validation unavailable"), nil
			}
			s.log.Warn().Err(err).Str("root", tree.local).Msg("ebics sim: request refused by the schema")
			if tree.local == "ebicsHEVRequest" {
				return s.hevAnswer(protocol.CodeInvalidXML), nil
			}
			return s.errorResponse(v, kindOfRoot(body), protocol.CodeInvalidXML, se.detail), nil
		}
	}
	if tree.local == "ebicsHEVRequest" {
		return s.hev(body), nil
	}
	if perr != nil {
		s.log.Warn().Err(perr).Msg("ebics sim: unparseable request")
		return s.errorResponse(v, protocol.KindResponse, protocol.CodeInvalidXML, perr.Error()), nil
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
		return s.hpb(req, tree), nil
	}
	s.expireLocked(s.now())
	if req.TransactionID != "" {
		return s.transfer(req, tree)
	}
	return s.initialise(req, tree), nil
}

// kindOfRoot is the response kind for a request that could not be parsed
// as one: key management requests get a key management response.
func kindOfRoot(body []byte) string {
	head := string(body[:min(len(body), 512)])
	if strings.Contains(head, "ebicsUnsecuredRequest") || strings.Contains(head, "ebicsNoPubKeyDigestsRequest") || strings.Contains(head, "ebicsUnsignedRequest") {
		return protocol.KindKeyManagementResp
	}
	return protocol.KindResponse
}

func (s *Sim) hev(body []byte) []byte {
	code := protocol.CodeOK
	doc, err := protocol.ParseXML(body, 64<<10)
	if err != nil || doc.Root().Tag != "ebicsHEVRequest" {
		code = protocol.CodeInvalidXML
	} else if h := doc.Root().SelectElement("HostID"); h == nil || strings.TrimSpace(h.Text()) != s.cfg.HostID {
		code = protocol.CodeInvalidHostID
	}
	return s.hevAnswer(code)
}

// hevAnswer is the HEV response with a return code.
func (s *Sim) hevAnswer(code string) []byte {
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

func bytesEq(a, b []byte) bool { return len(a) > 0 && string(a) == string(b) }
