package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acquit/acquit/plugins/ebics/client"
	"github.com/acquit/acquit/plugins/ebics/keys"
	"github.com/acquit/acquit/plugins/ebics/protocol"
	"github.com/acquit/acquit/plugins/ebics/sim"
)

// post sends raw bytes to the sim and parses the answer.
func post(t *testing.T, url string, body []byte) *protocol.Response {
	t.Helper()
	resp, err := http.Post(url, "text/xml", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r, _, err := protocol.ParseResponse(b, 0)
	if err != nil {
		t.Fatalf("sim answer unparseable: %v\n%s", err, b)
	}
	return r
}

func code(r *protocol.Response) string {
	if r.TechCode != protocol.CodeOK {
		return r.TechCode
	}
	return r.BusinessCode
}

// Bad input sent to the bank: each gets its EBICS code, nothing recorded.
func TestSimRefusesBadRequests(t *testing.T) {
	for _, v := range []protocol.Version{protocol.H004, protocol.H005} {
		t.Run(string(v), func(t *testing.T) {
			e := newEnv(t, v, "", sim.Config{MaxSegmentSize: 2000}, true)
			ah, eh := e.sim.BankKeyHashes(v)
			hac := func() *protocol.Request {
				return &protocol.Request{Version: v, Kind: protocol.KindRequest, HostID: "SIMBANK", Nonce: protocol.NewNonce(), Timestamp: time.Now(),
					PartnerID: "PARTNER1", UserID: "USER1", OrderType: "HAC", OrderAttrib: "DZHNN", BankAuthHash: ah, BankEncHash: eh}
			}
			other := testKeys(t, "OTHER", "OTHER", false, "A006")
			signed := func(r *protocol.Request, k *keys.Set) []byte {
				b, err := r.Marshal(k.Auth.Private)
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			replay := signed(hac(), e.keys)
			if c := code(post(t, e.url, replay)); c != protocol.CodeNoDownloadData {
				t.Fatalf("first send: %s", c)
			}
			// An upload initialisation to test segment checks.
			up := hac()
			up.OrderType, up.OrderID, up.OrderAttrib = "CCT", "Z999", "OZHNN"
			if v == protocol.H005 {
				up.OrderType, up.OrderID, up.Params = "BTU", "", protocol.OrderParams{ServiceName: "SCT", MsgName: "pain.001"}
			}
			up.NumSegments, up.EncKeyHash = 2, eh
			up.TransactionKey, up.SignatureData, up.DataDigest, up.DigestVersion = []byte("x"), []byte("y"), make([]byte, 32), "A006"
			ir := post(t, e.url, signed(up, e.keys))
			if ir.TechCode != protocol.CodeOK || ir.TransactionID == "" {
				t.Fatalf("upload init: %+v", ir)
			}
			seg := func(n int, last bool, data string) []byte {
				return signed(&protocol.Request{Version: v, Kind: protocol.KindRequest, HostID: "SIMBANK", TransactionID: ir.TransactionID,
					Phase: protocol.PhaseTransfer, SegmentNumber: n, LastSegment: last, OrderData: data}, e.keys)
			}
			wrongDigest := hac()
			wrongDigest.BankAuthHash = make([]byte, 32)
			tampered := string(signed(hac(), e.keys))
			tampered = strings.Replace(tampered, "<OrderType>HAC</OrderType>", "<OrderType>PTK</OrderType>", 1)
			tampered = strings.Replace(tampered, "<AdminOrderType>HAC</AdminOrderType>", "<AdminOrderType>PTK</AdminOrderType>", 1)
			cases := []struct {
				name string
				body []byte
				want string
			}{
				{"wrong signature key", signed(hac(), other), protocol.CodeAuthenticationFailed},
				{"tampered after signing", []byte(tampered), protocol.CodeAuthenticationFailed},
				{"replayed nonce", replay, protocol.CodeTxMessageReplay},
				{"stale timestamp", func() []byte { r := hac(); r.Timestamp = time.Now().Add(-3 * time.Hour); return signed(r, e.keys) }(), protocol.CodeTxMessageReplay},
				{"wrong bank key digest", signed(wrongDigest, e.keys), protocol.CodeBankPubkeyUpdate},
				{"doctype", []byte(`<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><ebicsRequest Version="` + string(v) + `"/>`), protocol.CodeInvalidXML},
				{"garbage", []byte("not xml at all"), protocol.CodeInvalidXML},
				{"unknown host", func() []byte { r := hac(); r.HostID = "NOPE"; return signed(r, e.keys) }(), protocol.CodeInvalidHostID},
				{"unknown user", func() []byte { r := hac(); r.UserID = "NOBODY"; return signed(r, e.keys) }(), protocol.CodeUserUnknown},
				{"oversized segment", seg(1, false, strings.Repeat("A", 2004)), protocol.CodeSegmentSizeExceeded},
				{"segment out of order", seg(2, true, "QUJD"), protocol.CodeTxRecoverySync},
				{"segment number exceeded", seg(3, true, "QUJD"), protocol.CodeTxSegmentExceeded},
				{"unknown transaction", signed(&protocol.Request{Version: v, Kind: protocol.KindRequest, HostID: "SIMBANK", TransactionID: protocol.NewTransactionID(), Phase: protocol.PhaseTransfer, SegmentNumber: 1, OrderData: "QQ=="}, e.keys), protocol.CodeTxUnknownTxID},
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					if got := code(post(t, e.url, c.body)); got != c.want {
						t.Fatalf("got %s (%s), want %s", got, protocol.LookupCode(got).Name, c.want)
					}
				})
			}
			// A segment that is not base64 on its own breaks the schema
			// (xs:base64Binary): 091010.
			if c := code(post(t, e.url, seg(1, false, "QUJ"))); c != protocol.CodeInvalidXML {
				t.Fatalf("segment not base64: %s", c)
			}
			// Undecryptable data in the segments: 091113.
			if c := code(post(t, e.url, seg(1, false, "QUJD"))); c != protocol.CodeOK {
				t.Fatalf("segment 1: %s", c)
			}
			if c := code(post(t, e.url, seg(2, true, "QQ=="))); c != protocol.CodeInvalidRequestContnt {
				t.Fatalf("undecryptable order data: %s", c)
			}
			if len(e.sim.Orders()) != 0 {
				t.Fatal("an order was recorded")
			}
		})
	}
}

// A tampered upload segment (valid base64, wrong bytes) is refused.
func TestTamperedUploadSegment(t *testing.T) {
	e := newEnv(t, protocol.H004, "", sim.Config{}, true)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if bytes.Contains(b, []byte("<SegmentNumber lastSegment=\"false\">2</SegmentNumber>")) {
			i := bytes.Index(b, []byte("<OrderData>")) + len("<OrderData>") + 10
			if b[i] == 'A' {
				b[i] = 'B'
			} else {
				b[i] = 'A'
			}
		}
		resp, err := http.Post(e.url, "text/xml", bytes.NewReader(b))
		if err != nil {
			http.Error(w, err.Error(), 502)
			return
		}
		defer resp.Body.Close()
		io.Copy(w, resp.Body)
	}))
	defer proxy.Close()
	e.bank.URL = proxy.URL
	cl := e.newClient(t)
	path := writePain(t, e.tmp, "MSG-TAMPER", 200)
	_, err := cl.Upload(context.Background(), client.UploadSpec{ID: "TAMP", Function: "sct", Path: path})
	// OrderData segments are outside the X002 signature (as in the spec):
	// the bank notices the damage when decrypting/inflating the order.
	if !protocol.HasCode(err, protocol.CodeInvalidOrderData) && !protocol.HasCode(err, protocol.CodeInvalidRequestContnt) {
		t.Fatalf("got %v", err)
	}
	if len(e.sim.Orders()) != 0 {
		t.Fatal("order recorded")
	}
}

// A hostile "bank" answering with entities, forged signatures, truncated
// data: the client returns typed errors, never panics, never stores.
func TestClientRefusesBadResponses(t *testing.T) {
	e := newEnv(t, protocol.H004, "", sim.Config{DownloadSegmentSize: 64}, true)
	rnd := make([]byte, 1500)
	rand.Read(rnd)
	e.sim.AddDocument("PARTNER1", "HAC", "pain.002", []byte(hex.EncodeToString(rnd)))
	mode := ""
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		resp, err := http.Post(e.url, "text/xml", bytes.NewReader(b))
		if err != nil {
			http.Error(w, err.Error(), 502)
			return
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch mode {
		case "doctype":
			out = append([]byte(`<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>`), out[bytes.Index(out, []byte("?>"))+2:]...)
		case "forged":
			out = bytes.Replace(out, []byte("<ReturnCode authenticate=\"true\">000000"), []byte("<ReturnCode authenticate=\"true\">000001"), 1)
			out = bytes.Replace(out, []byte("<NumSegments>"), []byte("<NumSegments>9"), 1)
		case "truncated":
			if i := bytes.Index(out, []byte("</OrderData>")); i > 0 && bytes.Contains(b, []byte("<SegmentNumber")) {
				out = append(out[:i-3:i-3], out[i:]...)
			}
		case "unauthenticated business code":
			// Hide data: business code 090005 outside the signature.
			out = bytes.Replace(out, []byte("<ReturnCode authenticate=\"true\">000000"), []byte("<ReturnCode>090005"), 1)
		case "oversized":
			out = bytes.Repeat([]byte(" "), 20<<20)
		}
		w.Write(out)
	}))
	defer proxy.Close()
	e.bank.URL = proxy.URL
	cl := e.newClient(t)
	ctx := context.Background()
	for _, c := range []struct {
		mode  string
		check func(error) bool
	}{
		{"doctype", func(err error) bool { return errors.Is(err, protocol.ErrDoctype) }},
		{"forged", func(err error) bool { return errors.Is(err, protocol.ErrAuth) }},
		{"truncated", func(err error) bool { var ce *protocol.CryptoError; return errors.As(err, &ce) }}, // OrderData is outside X002: caught at decoding
		{"oversized", func(err error) bool { return errors.Is(err, protocol.ErrTooLarge) }},
		{"unauthenticated business code", func(err error) bool { return errors.Is(err, protocol.ErrAuth) }},
	} {
		t.Run(c.mode, func(t *testing.T) {
			mode = c.mode
			d, err := cl.Download(ctx, "hac", time.Time{}, time.Time{})
			if d != nil || !c.check(err) {
				t.Fatalf("got %v, %v", d, err)
			}
			e.sim.ExpireTransactions()
		})
	}
	mode = ""
	d, err := cl.Download(ctx, "hac", time.Time{}, time.Time{})
	if err != nil || d == nil || d.Segments < 5 {
		t.Fatalf("clean download after attacks: %v %v", d, err)
	}
}

// TestClientRefusesRedirects: a bank answering 307 (or 301/302/308) to
// another address, here a stand-in for the daemon's admin API, is not
// followed: the request fails as a transport error naming the redirect,
// the target never sees the signed request, and the refusals are counted.
func TestClientRefusesRedirects(t *testing.T) {
	e := newEnv(t, protocol.H004, "", sim.Config{}, true)
	var hits atomic.Int64
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "admin", 200)
	}))
	defer admin.Close()
	for _, code := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusFound, http.StatusMovedPermanently} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			bank := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, admin.URL+"/v1/events", code)
			}))
			defer bank.Close()
			e.bank.URL = bank.URL
			cl := e.newClient(t)
			d, err := cl.Download(context.Background(), "hac", time.Time{}, time.Time{})
			var ne *client.NetError
			if d != nil || !errors.As(err, &ne) || !strings.Contains(err.Error(), "redirect refused") {
				t.Fatalf("got %v, %v; want a transport error refusing the redirect", d, err)
			}
			if n := hits.Load(); n != 0 {
				t.Fatalf("the redirect target received %d requests", n)
			}
			if cl.RedirectsRefused() < 1 {
				t.Fatalf("redirects refused = %d", cl.RedirectsRefused())
			}
		})
	}
}
