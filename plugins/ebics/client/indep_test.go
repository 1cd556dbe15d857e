package client_test

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acquit/acquit/plugins/ebics/client"
	"github.com/acquit/acquit/plugins/ebics/indep"
	"github.com/acquit/acquit/plugins/ebics/protocol"
	"github.com/acquit/acquit/plugins/ebics/sim"
)

// exchange is one HTTP round trip seen on the wire.
type exchange struct{ req, resp []byte }

// recorder is a real loopback HTTP proxy in front of the simulator that
// keeps every request and response body as sent.
type recorder struct {
	mu  sync.Mutex
	log []exchange
}

func (r *recorder) start(t *testing.T, target string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		resp, err := http.Post(target, req.Header.Get("Content-Type"), bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		r.mu.Lock()
		r.log = append(r.log, exchange{body, out})
		r.mu.Unlock()
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		w.Write(out)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/ebics"
}

func (r *recorder) take() []exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.log
	r.log = nil
	return out
}

var (
	reTxKey   = regexp.MustCompile(`<TransactionKey>([^<]+)</TransactionKey>`)
	reSigData = regexp.MustCompile(`<SignatureData[^>]*>([^<]+)</SignatureData>`)
	reOrder   = regexp.MustCompile(`<OrderData>([^<]+)</OrderData>`)
	reSigVal  = regexp.MustCompile(`<SignatureValue>([^<]+)</SignatureValue>`)
	reSigVer  = regexp.MustCompile(`<SignatureVersion>([^<]+)</SignatureVersion>`)
	reOrderID = regexp.MustCompile(`<OrderID>`)
)

func b64d(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func inflate(t *testing.T, b []byte) []byte {
	t.Helper()
	r, err := zlib.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// No self-verification, client side: for each shipped profile (fr: H004
// A005, de: H004 A006, v3: H005 A006) a multi-segment upload and a
// multi-segment download go through a recording proxy, and every message
// is checked with tools acquit did not write: each signed request (the
// client's X002 key) and each signed response (the bank's) verifies with
// xmlsec1; the transaction key unwraps with openssl pkeyutl, the order data
// and the ES container decrypt with openssl enc, and the ES verifies with
// openssl over the file as the profile prepares it (CR, LF, Ctrl-Z left
// out by default; as transmitted with es_strip_crlf: false against a bank
// hashing raw data). The file carries newlines, so a wrong normalisation
// or a wrong A006 input fails here.
func TestWireVerifiedIndependently(t *testing.T) {
	if err := indep.Require(); err != nil {
		t.Fatal(err)
	}
	no := false
	cases := []struct {
		name, prof string
		v          protocol.Version
		cfg        sim.Config
		noStrip    bool
	}{
		{"fr", "fr", protocol.H004, sim.Config{RequireCertificates: true, DownloadSegmentSize: 301}, false},
		{"de", "de", protocol.H004, sim.Config{DownloadSegmentSize: 301}, false},
		{"v3", "v3", protocol.H005, sim.Config{DownloadSegmentSize: 301}, false},
		{"de raw digest", "de", protocol.H004, sim.Config{ESRawDigest: true}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, c.v, c.prof, c.cfg, false)
			var rec recorder
			e.bank.URL = rec.start(t, e.url)
			if c.noStrip {
				e.bank.Profile.ESStripCRLF = &no
			}
			e.cl = e.newClient(t)
			e.onboard(t)
			ctx := context.Background()
			path := writePain(t, e.tmp, "MSG-INDEP-"+c.prof, 120)
			file, _ := os.ReadFile(path)
			if !bytes.Contains(file, []byte("\n")) {
				t.Fatal("test file has no newline: the normalisation would not be exercised")
			}
			res, err := e.cl.Upload(ctx, client.UploadSpec{ID: "IND1", Function: "sct", Path: path})
			if err != nil {
				t.Fatal(err)
			}
			if res.Segments < 2 {
				t.Fatalf("%d segment(s), want several", res.Segments)
			}
			e.sim.WaitAcks()
			d, err := e.cl.Download(ctx, "psr", time.Time{}, time.Time{})
			if err != nil || d == nil {
				t.Fatalf("download: %v %v", d, err)
			}
			if !c.noStrip && d.Segments < 2 {
				t.Fatalf("download in %d segment(s), want several", d.Segments)
			}
			if err := e.cl.Receipt(ctx, d.TransactionID, true); err != nil {
				t.Fatal(err)
			}

			bankAuth := &e.simCfg.BankKeys.Auth.Private.PublicKey
			bankEnc := e.simCfg.BankKeys.Enc.Private
			clientAuth := &e.keys.Auth.Private.PublicKey
			var signedReqs, signedResps int
			var upKey []byte
			var upSegs, dlSegs []string
			var sigData string
			var dlKey []byte
			for _, x := range rec.take() {
				if bytes.Contains(x.req, []byte("AuthSignature")) {
					if err := indep.VerifyX002(x.req, clientAuth); err != nil {
						t.Fatalf("request: %v\n%s", err, x.req)
					}
					signedReqs++
				}
				if bytes.HasPrefix(bytes.TrimSpace(x.resp), []byte("<?xml")) && bytes.Contains(x.resp, []byte("<ebicsResponse")) {
					if err := indep.VerifyX002(x.resp, bankAuth); err != nil {
						t.Fatalf("response: %v\n%s", err, x.resp)
					}
					signedResps++
				}
				// Upload: the transaction key and the segments the client sent.
				if m := reSigData.FindSubmatch(x.req); m != nil {
					k, err := indep.UnwrapKey(bankEnc, b64d(t, string(reTxKey.FindSubmatch(x.req)[1])))
					if err != nil {
						t.Fatal(err)
					}
					upKey, sigData = k, string(m[1])
					if !c.noStrip && (c.v == protocol.H004) != reOrderID.Match(x.req) {
						t.Fatalf("OrderID presence wrong for %s (client_order_id default)", c.v)
					}
				}
				if m := reOrder.FindSubmatch(x.req); m != nil && upKey != nil {
					upSegs = append(upSegs, string(m[1]))
				}
				// Download: the bank's transaction key and segments.
				if m := reTxKey.FindSubmatch(x.resp); m != nil && bytes.Contains(x.resp, []byte("<ebicsResponse")) {
					k, err := indep.UnwrapKey(e.keys.Enc.Private, b64d(t, string(m[1])))
					if err != nil {
						t.Fatal(err)
					}
					dlKey, dlSegs = k, nil
				}
				if m := reOrder.FindSubmatch(x.resp); m != nil && dlKey != nil {
					dlSegs = append(dlSegs, string(m[1]))
				}
			}
			if signedReqs < 5 || signedResps < 4 {
				t.Fatalf("only %d signed requests and %d signed responses seen", signedReqs, signedResps)
			}
			if upKey == nil {
				t.Fatal("no upload initialisation seen")
			}
			// Order data: openssl decrypts what the client sent into the file.
			ct := b64d(t, strings.Join(upSegs, ""))
			plain, err := indep.DecryptE002(upKey, ct)
			if err != nil {
				t.Fatal(err)
			}
			// python3's zlib inflates what openssl decrypted: the client's
			// zlib stream (several deflate workers here) is read by another
			// implementation.
			pz, err := indep.Inflate(plain)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(pz, file) {
				t.Fatal("order data decrypted by openssl and inflated by python3 differs from the file")
			}
			// ES: openssl decrypts the container and verifies the signature.
			sigPlain, err := indep.DecryptE002(upKey, b64d(t, sigData))
			if err != nil {
				t.Fatal(err)
			}
			usd := inflate(t, sigPlain)
			version := string(reSigVer.FindSubmatch(usd)[1])
			sig := b64d(t, string(reSigVal.FindSubmatch(usd)[1]))
			if version != e.bank.Profile.SignatureVersion {
				t.Fatalf("ES version %s", version)
			}
			signedData := indep.StripCRLFEOF(file)
			if c.noStrip {
				signedData = file
			}
			sigPub := &e.keys.Signature.Private.PublicKey
			if err := indep.VerifyES(version, sigPub, signedData, sig); err != nil {
				t.Fatalf("openssl rejects the client's ES: %v", err)
			}
			other := indep.StripCRLFEOF(file)
			if !c.noStrip {
				other = file
			}
			if err := indep.VerifyES(version, sigPub, other, sig); err == nil {
				t.Fatal("ES verified over the other normalisation too")
			}
			// Download: openssl decrypts what the bank sent into what the client returned.
			dct := b64d(t, strings.Join(dlSegs, ""))
			dplain, err := indep.DecryptE002(dlKey, dct)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(inflate(t, dplain), d.Content) {
				t.Fatal("download decrypted by openssl differs from the client's document")
			}
		})
	}
}

// An upload of several deflate blocks (a 4 MB file, 1 MiB blocks), with one
// zlib stream (1 worker) and with parallel workers: the simulator accepts
// it (it decodes and checks the order), and what went on the wire, unwrapped
// and decrypted by openssl and inflated by python3's zlib, is the file.
func TestUploadManyBlocksInflatedIndependently(t *testing.T) {
	if err := indep.Require(); err != nil {
		t.Fatal(err)
	}
	for _, workers := range []int{1, 2, 3} {
		t.Run(string(rune('0'+workers)), func(t *testing.T) {
			e := newEnv(t, protocol.H004, "de", sim.Config{}, false)
			var rec recorder
			e.bank.URL = rec.start(t, e.url)
			e.bank.Profile.SegmentSize = 256 << 10
			cl, err := client.New(e.bank, e.keys, e.host, client.Options{WorkDir: e.tmp, DeflateWorkers: workers})
			if err != nil {
				t.Fatal(err)
			}
			e.cl = cl
			e.onboard(t)
			path := writePain(t, e.tmp, "MSG-BLOCKS", 9000)
			file, _ := os.ReadFile(path)
			if len(file) < 3<<20 {
				t.Fatalf("file of %d bytes: fewer than 3 deflate blocks", len(file))
			}
			res, err := cl.Upload(context.Background(), client.UploadSpec{ID: "BLK", Function: "sct", Path: path})
			if err != nil {
				t.Fatal(err)
			}
			if res.ReturnCode != protocol.CodeOK {
				t.Fatalf("bank answered %s %s", res.ReturnCode, res.ReturnText)
			}
			var key []byte
			var segs []string
			for _, x := range rec.take() {
				if m := reTxKey.FindSubmatch(x.req); m != nil {
					if key, err = indep.UnwrapKey(e.simCfg.BankKeys.Enc.Private, b64d(t, string(m[1]))); err != nil {
						t.Fatal(err)
					}
				}
				if m := reOrder.FindSubmatch(x.req); m != nil && key != nil {
					segs = append(segs, string(m[1]))
				}
			}
			if key == nil || len(segs) != res.Segments {
				t.Fatalf("saw key %v and %d segments, the client sent %d", key != nil, len(segs), res.Segments)
			}
			plain, err := indep.DecryptE002(key, b64d(t, strings.Join(segs, "")))
			if err != nil {
				t.Fatal(err)
			}
			got, err := indep.Inflate(plain)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, file) {
				t.Fatalf("python3 inflates %d bytes, the file has %d", len(got), len(file))
			}
		})
	}
}
