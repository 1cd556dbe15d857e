package sim

// The simulator fed messages made by implementations acquit did not
// write: every request below is X002-signed by xmlsec1, every order
// signature made by the openssl command line, the order data E002-encrypted
// and the transaction key wrapped by openssl (package indep). Only the XML
// structure of the requests comes from acquit's protocol package. Every
// response is checked with xmlsec1 against the bank's key.

import (
	"bytes"
	"compress/zlib"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acquit/acquit/plugins/ebics/indep"
	"github.com/acquit/acquit/plugins/ebics/keys"
	"github.com/acquit/acquit/plugins/ebics/protocol"
)

// tpKeys are the third-party subscriber's keys (generated once).
var (
	tpOnce               sync.Once
	tpSig, tpAuth, tpEnc *rsa.PrivateKey
)

func thirdPartyKeys(t testing.TB) {
	tpOnce.Do(func() {
		for _, k := range []**rsa.PrivateKey{&tpSig, &tpAuth, &tpEnc} {
			var err error
			if *k, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
				panic(err)
			}
		}
	})
}

// thirdParty is an EBICS client made of independent tools.
type thirdParty struct {
	t    testing.TB
	s    *Sim
	v    protocol.Version
	sigV string
	h    http.Handler
	// esRaw signs the order data as is even when the bank strips CR/LF.
	esRaw bool
	// damage, when set, changes the E002 ciphertext of the order data (or
	// the wrapped transaction key) before it is sent.
	damage, damageKey func([]byte) []byte
	// stopAfter > 0 sends only that many segments (an abandoned upload).
	stopAfter int
	// segmentCodes are the return codes of the transfer segments of the
	// last upload, in order.
	segmentCodes []string
}

// newThirdParty starts a simulator (schemas required) with a subscriber
// already in state st holding the third party's keys.
func newThirdParty(t testing.TB, v protocol.Version, sigV string, st SubscriberState, cfg Config) *thirdParty {
	t.Helper()
	if err := indep.Require(); err != nil {
		t.Fatal(err)
	}
	thirdPartyKeys(t)
	if bankKeys == nil {
		k, err := keys.Generate("BANK", "SIM", keys.Options{SelfSigned: true})
		if err != nil {
			t.Fatal(err)
		}
		bankKeys = k
	}
	cfg.HostID, cfg.BankKeys = "SIM", bankKeys
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !s.ValidatesSchema() {
		t.Fatalf("the simulator found no EBICS schemas (set %s) or no xmllint", SchemaDirEnv)
	}
	s.AddSubscriber("P", "U")
	sub := s.subs["P/U"]
	sub.state = st
	sub.sig = &protocol.PubKey{Version: sigV, Key: &tpSig.PublicKey}
	sub.auth = &protocol.PubKey{Version: "X002", Key: &tpAuth.PublicKey}
	sub.enc = &protocol.PubKey{Version: "E002", Key: &tpEnc.PublicKey}
	return &thirdParty{t: t, s: s, v: v, sigV: sigV, h: s}
}

// base is a request header for the subscriber.
func (c *thirdParty) base(kind, orderType string) *protocol.Request {
	return &protocol.Request{Version: c.v, Kind: kind, HostID: "SIM", Nonce: protocol.NewNonce(), Timestamp: time.Now().UTC(),
		PartnerID: "P", UserID: "U", OrderType: orderType}
}

// signed builds the request and signs it with xmlsec1.
func (c *thirdParty) signed(r *protocol.Request, edit func(string) string) []byte {
	c.t.Helper()
	doc, err := r.Document()
	if err != nil {
		c.t.Fatal(err)
	}
	b, err := doc.WriteToBytes()
	if err != nil {
		c.t.Fatal(err)
	}
	if edit != nil {
		b = []byte(edit(string(b)))
	}
	out, err := indep.SignX002(b, tpAuth)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// post sends a raw request; the answer must be X002-signed by the bank
// (checked with xmlsec1) unless it is a key management response.
func (c *thirdParty) post(body []byte) *protocol.Response {
	c.t.Helper()
	rec := httptest.NewRecorder()
	c.h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/ebics", bytes.NewReader(body)))
	out := rec.Body.Bytes()
	resp, _, err := protocol.ParseResponse(out, 16<<20)
	if err != nil {
		c.t.Fatalf("bank answer: %v\n%s", err, out)
	}
	if resp.Kind == protocol.KindResponse {
		if err := indep.VerifyX002(out, &bankKeys.Auth.Private.PublicKey); err != nil {
			c.t.Fatalf("xmlsec1 rejects the bank's answer: %v\n%s", err, out)
		}
	}
	return resp
}

func code(r *protocol.Response) string {
	if r.TechCode != protocol.CodeOK {
		return r.TechCode
	}
	return r.BusinessCode
}

func zdeflate(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// upload sends order data in segments; orderID "" lets the bank assign
// it (H004). It returns the final response.
func (c *thirdParty) upload(data []byte, segments int, orderID string) *protocol.Response {
	c.t.Helper()
	t := c.t
	key := make([]byte, 16)
	rand.Read(key)
	esInput := data
	if !c.s.cfg.ESRawDigest && !c.esRaw {
		esInput = indep.StripCRLFEOF(data)
	}
	es, err := indep.SignES(c.sigV, tpSig, esInput)
	if err != nil {
		t.Fatal(err)
	}
	usd := protocol.UserSignatureData(c.v, c.sigV, es, "P", "U")
	sigData, err := indep.EncryptE002(key, zdeflate(t, usd))
	if err != nil {
		t.Fatal(err)
	}
	enc, err := indep.EncryptE002(key, zdeflate(t, data))
	if err != nil {
		t.Fatal(err)
	}
	wrapped, err := indep.WrapKey(&bankKeys.Enc.Private.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if c.damage != nil {
		enc = c.damage(enc)
	}
	if c.damageKey != nil {
		wrapped = c.damageKey(wrapped)
	}
	c.segmentCodes = nil
	text := base64.StdEncoding.EncodeToString(enc)
	// Each segment must be base64 on its own (xs:base64Binary).
	size := ((len(text)+segments-1)/segments + 3) / 4 * 4
	segs := protocol.SplitSegments(text, size)
	r := c.base(protocol.KindRequest, map[protocol.Version]string{protocol.H004: "CCT", protocol.H005: "BTU"}[c.v])
	if c.v == protocol.H005 {
		r.Params = protocol.OrderParams{ServiceName: "SCT", MsgName: "pain.001"}
		dd := data
		if !c.s.cfg.ESRawDigest {
			dd = indep.StripCRLFEOF(data)
		}
		h := sha256.Sum256(dd)
		r.DataDigest, r.DigestVersion = h[:], c.sigV
	} else {
		r.OrderAttrib = "OZHNN"
	}
	r.OrderID = orderID
	r.BankAuthHash, r.BankEncHash = c.s.BankKeyHashes(c.v)
	r.EncKeyHash = r.BankEncHash
	r.NumSegments, r.TransactionKey, r.SignatureData = len(segs), wrapped, sigData
	resp := c.post(c.signed(r, nil))
	if code(resp) != protocol.CodeOK {
		return resp
	}
	for i, seg := range segs {
		if c.stopAfter > 0 && i == c.stopAfter {
			return nil
		}
		tr := &protocol.Request{Version: c.v, Kind: protocol.KindRequest, HostID: "SIM", TransactionID: resp.TransactionID,
			Phase: protocol.PhaseTransfer, SegmentNumber: i + 1, LastSegment: i == len(segs)-1, OrderData: seg}
		sr := c.post(c.signed(tr, nil))
		c.segmentCodes = append(c.segmentCodes, code(sr))
		if code(sr) != protocol.CodeOK || i == len(segs)-1 {
			if sr.OrderID == "" {
				sr.OrderID = resp.OrderID
			}
			return sr
		}
	}
	return nil
}

// painWithNewlines is order data with CR/LF line ends (what generated
// pain.001 files look like) and a Ctrl-Z at the end.
func painWithNewlines() []byte {
	var b strings.Builder
	b.WriteString("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pain.001.001.03\">\r\n")
	for i := 0; i < 200; i++ {
		b.WriteString("  <!-- filler line to make several segments -->\n")
	}
	b.WriteString("</Document>\r\n\x1a")
	return []byte(b.String())
}

// Uploads made by independent tools are accepted: A005 and A006 (PSS whose
// message is SHA-256 of the order data, as libeufin, ebics-client-php and
// epics sign), in H004 and H005, in several segments, with and without the
// CR/LF/Ctrl-Z normalisation. Regression: the simulator used to verify
// A006 with SHA-256(order data) as the PSS input hash and answered 091301
// (fixed in protocol by the ebics-proto change; the simulator now checks
// with its own code).
func TestThirdPartyUpload(t *testing.T) {
	for _, tc := range []struct {
		name  string
		v     protocol.Version
		sigV  string
		strip bool
	}{
		{"H004-A005-raw", protocol.H004, "A005", false},
		{"H004-A006-raw", protocol.H004, "A006", false},
		{"H004-A006-strip", protocol.H004, "A006", true},
		{"H005-A006-raw", protocol.H005, "A006", false},
		{"H005-A005-strip", protocol.H005, "A005", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newThirdParty(t, tc.v, tc.sigV, StateReady, Config{ESRawDigest: !tc.strip, MaxSegmentSize: 4096})
			data := painWithNewlines()
			orderID := ""
			if tc.v == protocol.H004 {
				orderID = "A001"
			}
			r := c.upload(data, 3, orderID)
			if code(r) != protocol.CodeOK {
				t.Fatalf("upload refused: %s %s", code(r), r.ReportText)
			}
			c.s.WaitAcks()
			orders := c.s.Orders()
			if len(orders) != 1 || !bytes.Equal(orders[0].Data, data) {
				t.Fatalf("bank recorded %d orders", len(orders))
			}
			if orderID != "" && orders[0].OrderID != orderID {
				t.Fatalf("order id %s, want the client's %s", orders[0].OrderID, orderID)
			}
			if err := indep.VerifyES(tc.sigV, &tpSig.PublicKey, map[bool][]byte{false: data, true: indep.StripCRLFEOF(data)}[tc.strip], orders[0].Signature); err != nil {
				t.Fatalf("recorded signature: %v", err)
			}
		})
	}
}

// An ES over other data, or made with the other padding, is refused with
// 091301 EBICS_SIGNATURE_VERIFICATION_FAILED; so is an ES over the
// un-normalised data at a bank that strips CR/LF.
func TestThirdPartyUploadBadSignature(t *testing.T) {
	c := newThirdParty(t, protocol.H004, "A006", StateReady, Config{})
	c.sigV = "A005" // the bank expects A006 from this subscriber
	if r := c.upload(painWithNewlines(), 1, "A002"); code(r) != protocol.CodeSignatureFailed {
		t.Fatalf("A005 signature for an A006 subscriber: %s %s", code(r), r.ReportText)
	}
	c = newThirdParty(t, protocol.H004, "A006", StateReady, Config{})
	c.esRaw = true // the client signs the data with its CR/LF, the bank strips them
	if r := c.upload(painWithNewlines(), 1, "A003"); code(r) != protocol.CodeSignatureFailed {
		t.Fatalf("ES over un-normalised data at a stripping bank: %s %s", code(r), r.ReportText)
	}
}

// H004 OrderID is optional in the schema (since 2.5 the bank assigns it):
// an upload without one is accepted and the bank's OrderID comes back in
// the response. Regression: the simulator answered 091112.
func TestH004UploadWithoutOrderID(t *testing.T) {
	c := newThirdParty(t, protocol.H004, "A005", StateReady, Config{})
	r := c.upload(painWithNewlines(), 2, "")
	if code(r) != protocol.CodeOK {
		t.Fatalf("upload without OrderID: %s %s", code(r), r.ReportText)
	}
	c.s.WaitAcks()
	orders := c.s.Orders()
	if len(orders) != 1 || !validOrderID(orders[0].OrderID) || r.OrderID != orders[0].OrderID {
		t.Fatalf("bank-assigned OrderID: response %q, orders %+v", r.OrderID, orders)
	}
	r2 := c.upload(painWithNewlines(), 1, "")
	if code(r2) != protocol.CodeOK || r2.OrderID == r.OrderID {
		t.Fatalf("second upload: %s, OrderID %q (first %q)", code(r2), r2.OrderID, r.OrderID)
	}
}

// A schema-invalid request is refused with 091010 EBICS_INVALID_XML even
// when correctly signed. Regression: the simulator ignored unknown
// elements and processed the order.
func TestSchemaInvalidRequest(t *testing.T) {
	for _, v := range []protocol.Version{protocol.H004, protocol.H005} {
		t.Run(string(v), func(t *testing.T) {
			c := newThirdParty(t, v, "A006", StateReady, Config{})
			r := c.base(protocol.KindRequest, map[protocol.Version]string{protocol.H004: "CCT", protocol.H005: "BTU"}[v])
			if v == protocol.H005 {
				r.Params = protocol.OrderParams{ServiceName: "SCT", MsgName: "pain.001"}
				r.DataDigest, r.DigestVersion = make([]byte, 32), "A006"
			} else {
				r.OrderAttrib, r.OrderID = "OZHNN", "A001"
			}
			r.BankAuthHash, r.BankEncHash = c.s.BankKeyHashes(v)
			r.EncKeyHash, r.NumSegments, r.TransactionKey, r.SignatureData = r.BankEncHash, 1, []byte("wrapped"), []byte("sig")
			// control: the same request, valid
			if got := c.post(c.signed(r, nil)); code(got) != protocol.CodeOK {
				t.Fatalf("valid upload init: %s %s", code(got), got.ReportText)
			}
			if v == protocol.H004 {
				r.OrderID = "A002"
			}
			for name, edit := range map[string]func(string) string{
				"unknown element": func(s string) string {
					return strings.Replace(s, "</static>", "<Surprise>1</Surprise></static>", 1)
				},
				"nonce not hex": func(s string) string {
					return strings.Replace(s, "<Nonce>", "<Nonce>ZZ", 1)
				},
			} {
				r.Nonce, r.Timestamp = protocol.NewNonce(), time.Now().UTC()
				got := c.post(c.signed(r, edit))
				if got.TechCode != protocol.CodeInvalidXML {
					t.Errorf("%s: %s %s, want 091010", name, code(got), got.ReportText)
				}
			}
		})
	}
}

// HPB is refused until the bank activated the subscriber (091002
// EBICS_INVALID_USER_OR_USER_STATE), then served. Regression: the
// simulator served HPB to an initialised, not yet activated subscriber.
func TestHPBBeforeActivation(t *testing.T) {
	for _, v := range []protocol.Version{protocol.H004, protocol.H005} {
		t.Run(string(v), func(t *testing.T) {
			c := newThirdParty(t, v, "A006", StateInitialised, Config{ManualActivation: true})
			hpb := func() *protocol.Response {
				return c.post(c.signed(c.base(protocol.KindNoPubKeyDigests, "HPB"), nil))
			}
			if r := hpb(); r.TechCode != protocol.CodeInvalidUserOrState {
				t.Fatalf("HPB before activation: %s %s", code(r), r.ReportText)
			}
			order := c.base(protocol.KindRequest, "HAC")
			order.OrderAttrib = "DZHNN"
			order.BankAuthHash, order.BankEncHash = c.s.BankKeyHashes(v)
			if r := c.post(c.signed(order, nil)); r.TechCode != protocol.CodeInvalidUserState {
				t.Fatalf("order before activation: %s %s", code(r), r.ReportText)
			}
			if err := c.s.Activate("P", "U"); err != nil {
				t.Fatal(err)
			}
			if r := hpb(); code(r) != protocol.CodeOK || r.OrderData == "" {
				t.Fatalf("HPB after activation: %s %s", code(r), r.ReportText)
			}
		})
	}
}

// An abandoned download (no receipt) expires after TxTimeout: its
// document is offered again, and the old transaction is unknown.
// Regression: the document stayed in flight for ever (090005).
func TestAbandonedDownloadOfferedAgain(t *testing.T) {
	c := newThirdParty(t, protocol.H004, "A006", StateReady, Config{TxTimeout: time.Minute, DownloadSegmentSize: 64})
	var mu sync.Mutex
	clock := time.Now()
	c.s.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	noise := make([]byte, 120) // incompressible, so the document needs several segments
	rand.Read(noise)
	content := []byte("<Document>" + base64.StdEncoding.EncodeToString(noise) + "</Document>")
	c.s.AddDocument("P", "HAC", "", content)
	init := func() *protocol.Response {
		r := c.base(protocol.KindRequest, "HAC")
		r.OrderAttrib = "DZHNN"
		r.BankAuthHash, r.BankEncHash = c.s.BankKeyHashes(protocol.H004)
		return c.post(c.signed(r, nil))
	}
	first := init()
	if code(first) != protocol.CodeOK || first.NumSegments < 2 {
		t.Fatalf("first download: %s, %d segments", code(first), first.NumSegments)
	}
	// Abandoned after the first segment; while it is open nothing else is offered.
	if r := init(); code(r) != protocol.CodeNoDownloadData {
		t.Fatalf("while in flight: %s", code(r))
	}
	mu.Lock()
	clock = clock.Add(61 * time.Second) // the bank's timeout passes
	mu.Unlock()
	again := init()
	if code(again) != protocol.CodeOK || again.TransactionID == first.TransactionID {
		t.Fatalf("after expiry: %s %s", code(again), again.ReportText)
	}
	tr := &protocol.Request{Version: protocol.H004, Kind: protocol.KindRequest, HostID: "SIM", TransactionID: first.TransactionID,
		Phase: protocol.PhaseTransfer, SegmentNumber: 2, LastSegment: first.NumSegments == 2}
	if r := c.post(c.signed(tr, nil)); r.TechCode != protocol.CodeTxUnknownTxID {
		t.Fatalf("expired transaction: %s", code(r))
	}
	// The document, downloaded to the end, is the same one.
	key, err := indep.UnwrapKey(tpEnc, again.TransactionKey)
	if err != nil {
		t.Fatal(err)
	}
	segs := []string{again.OrderData}
	for n := 2; n <= again.NumSegments; n++ {
		tr := &protocol.Request{Version: protocol.H004, Kind: protocol.KindRequest, HostID: "SIM", TransactionID: again.TransactionID,
			Phase: protocol.PhaseTransfer, SegmentNumber: n, LastSegment: n == again.NumSegments}
		r := c.post(c.signed(tr, nil))
		if code(r) != protocol.CodeOK {
			t.Fatalf("segment %d: %s", n, code(r))
		}
		segs = append(segs, r.OrderData)
	}
	raw, _ := base64.StdEncoding.DecodeString(strings.Join(segs, ""))
	plain, err := indep.DecryptE002(key, raw)
	if err != nil {
		t.Fatal(err)
	}
	got, err := protocol.Inflate(plain, 1<<20)
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("document offered again differs: %v", err)
	}
}

// With CaptureDir set, every request and response is written in order.
func TestCapture(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cap")
	c := newThirdParty(t, protocol.H005, "A006", StateInitialised, Config{CaptureDir: dir, ManualActivation: true})
	c.post(c.signed(c.base(protocol.KindNoPubKeyDigests, "HPB"), nil))
	for _, f := range []string{"000001-request.xml", "000001-response.xml"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || !bytes.Contains(b, []byte("ebics")) {
			t.Fatalf("%s: %v", f, err)
		}
	}
}

// A download's receipt comes after its last segment: sent earlier it is
// refused (061002) and the transaction stays open, so the client can fetch
// the rest and confirm; then the document counts as delivered.
func TestReceiptBeforeLastSegmentRefused(t *testing.T) {
	c := newThirdParty(t, protocol.H004, "A006", StateReady, Config{DownloadSegmentSize: 64})
	noise := make([]byte, 200) // incompressible: several segments
	rand.Read(noise)
	c.s.AddDocument("P", "HAC", "", []byte("<Document>"+base64.StdEncoding.EncodeToString(noise)+"</Document>"))
	init := func() *protocol.Response {
		r := c.base(protocol.KindRequest, "HAC")
		r.OrderAttrib = "DZHNN"
		r.BankAuthHash, r.BankEncHash = c.s.BankKeyHashes(protocol.H004)
		return c.post(c.signed(r, nil))
	}
	receipt := func(txID string) *protocol.Response {
		r := &protocol.Request{Version: protocol.H004, Kind: protocol.KindRequest, HostID: "SIM", TransactionID: txID,
			Phase: protocol.PhaseReceipt, HasReceipt: true, ReceiptCode: 0}
		return c.post(c.signed(r, nil))
	}
	first := init()
	if code(first) != protocol.CodeOK || first.NumSegments < 3 {
		t.Fatalf("download: %s, %d segments", code(first), first.NumSegments)
	}
	for n := 1; n < first.NumSegments; n++ {
		if n > 1 {
			tr := &protocol.Request{Version: protocol.H004, Kind: protocol.KindRequest, HostID: "SIM", TransactionID: first.TransactionID,
				Phase: protocol.PhaseTransfer, SegmentNumber: n, LastSegment: false}
			if r := c.post(c.signed(tr, nil)); code(r) != protocol.CodeOK {
				t.Fatalf("segment %d: %s", n, code(r))
			}
		}
		if r := receipt(first.TransactionID); r.TechCode != protocol.CodeInvalidRequest {
			t.Fatalf("receipt after segment %d of %d: %s %s, want %s", n, first.NumSegments, code(r), r.ReportText, protocol.CodeInvalidRequest)
		}
	}
	n := first.NumSegments
	tr := &protocol.Request{Version: protocol.H004, Kind: protocol.KindRequest, HostID: "SIM", TransactionID: first.TransactionID,
		Phase: protocol.PhaseTransfer, SegmentNumber: n, LastSegment: true}
	if r := c.post(c.signed(tr, nil)); code(r) != protocol.CodeOK {
		t.Fatalf("last segment: %s", code(r))
	}
	if r := receipt(first.TransactionID); r.TechCode != protocol.CodePostprocessDone {
		t.Fatalf("receipt after the last segment: %s %s", code(r), r.ReportText)
	}
	if r := init(); code(r) != protocol.CodeNoDownloadData {
		t.Fatalf("after the receipt: %s, want nothing more to download", code(r))
	}
}
