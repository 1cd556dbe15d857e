package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/transmissions"
	"github.com/acquit/acquit/internal/demo"
	"github.com/acquit/acquit/internal/painfile"
	"github.com/acquit/acquit/plugins/ebics/protocol"
	"github.com/acquit/acquit/plugins/ebics/sim"
)

// The names the bank is configured with (as demo.SetupEbics does).
const (
	ebicsBank    = "demobank"
	ebicsHost    = "ACQUITSIM"
	ebicsPartner = "ACME0001"
	ebicsUser    = "TREAS01"
)

// bankRequest is one EBICS request as the gate in front of the simulator
// classified it.
type bankRequest struct {
	Req *protocol.Request
	// Kind is the order type of the transaction the request belongs to
	// (its initialisation's OrderType or BTU/BTD service name), "" if the
	// gate never saw the initialisation.
	Kind string
	// Upload is true for an upload transaction's requests.
	Upload bool
	// Segments is the transaction's number of segments (upload: the
	// client's NumSegments; download: the bank's answer).
	Segments int
}

// bankGate sits between the daemon's EBICS plugin and the simulator (the
// simulator is its http.Handler, on the gate's own loopback listener). It
// classifies every request and can hold one chosen request until the test
// releases it, so the test can kill -9 the daemon at an exact protocol
// step instead of guessing with timers.
type bankGate struct {
	sim *sim.Sim
	srv *httptest.Server

	mu      sync.Mutex
	kinds   map[string]bankRequest // TransactionID -> its initialisation
	seen    []bankRequest
	hold    func(bankRequest) bool // nil: hold nothing
	forget  map[string]bool        // TransactionIDs the bank answers as unknown
	held    chan bankRequest       // receives the request being held
	release chan bool              // true: forward the held request to the bank; false: drop it
}

var numSegRe = regexp.MustCompile(`<(?:[A-Za-z0-9]+:)?NumSegments>([0-9]+)</`)

var txIDRe = regexp.MustCompile(`<(?:[A-Za-z0-9]+:)?TransactionID>([^<]+)</`)

func newBankGate(t testing.TB, s *sim.Sim) *bankGate {
	g := &bankGate{sim: s, kinds: map[string]bankRequest{}, forget: map[string]bool{}, held: make(chan bankRequest, 1), release: make(chan bool, 1)}
	g.srv = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(func() {
		g.setHold(nil)
		select {
		case g.release <- false: // unblock a request still held
		default:
		}
		g.srv.CloseClientConnections()
		g.srv.Close()
	})
	return g
}

// URL is the EBICS URL the plugin is configured with.
func (g *bankGate) URL() string { return g.srv.URL + "/ebics" }

// setHold installs the predicate choosing the request to hold (once: the
// predicate is cleared when it matches).
func (g *bankGate) setHold(f func(bankRequest) bool) {
	g.mu.Lock()
	g.hold = f
	g.mu.Unlock()
}

// forgetTransaction makes the bank answer every later request of an
// upload or download transaction with 091101 (unknown transaction), even a
// completed one: what a bank does once the transaction timed out.
func (g *bankGate) forgetTransaction(id string) {
	g.mu.Lock()
	g.forget[id] = true
	g.mu.Unlock()
}

// requests returns what the gate saw so far.
func (g *bankGate) requests() []bankRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]bankRequest(nil), g.seen...)
}

func (g *bankGate) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	br := bankRequest{}
	if req, _, err := protocol.ParseRequest(body, 8<<20); err == nil {
		br.Req = req
		g.mu.Lock()
		if req.TransactionID != "" {
			init := g.kinds[req.TransactionID]
			br.Kind, br.Upload, br.Segments = init.Kind, init.Upload, init.Segments
		} else {
			br.Kind = req.OrderType
			if req.Params.ServiceName != "" {
				br.Kind = req.OrderType + ":" + req.Params.ServiceName
			}
			br.Upload = req.NumSegments > 0 && req.TransactionKey != nil
			if br.Upload {
				br.Segments = req.NumSegments
			}
		}
		if g.forget[req.TransactionID] {
			// Ask the bank about a transaction it never had: it answers
			// 091101 EBICS_TX_UNKNOWN_TXID, as after its timeout.
			body = bytes.Replace(body, []byte(req.TransactionID), []byte(protocol.NewTransactionID()), -1)
		}
		g.seen = append(g.seen, br)
		hold := g.hold != nil && g.hold(br)
		if hold {
			g.hold = nil
		}
		g.mu.Unlock()
		if hold {
			g.held <- br
			if forward := <-g.release; !forward {
				// The bank never sees it and the client never gets an answer.
				if hj, ok := w.(http.Hijacker); ok {
					if c, _, err := hj.Hijack(); err == nil {
						c.Close()
						return
					}
				}
				panic(http.ErrAbortHandler)
			}
		}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	g.sim.ServeHTTP(rec, r)
	out := rec.Body.Bytes()
	if br.Req != nil && br.Req.TransactionID == "" && br.Req.Kind == protocol.KindRequest {
		if m := txIDRe.FindSubmatch(out); m != nil {
			if n := numSegRe.FindSubmatch(out); n != nil && !br.Upload {
				br.Segments, _ = strconv.Atoi(string(n[1]))
			}
			g.mu.Lock()
			g.kinds[string(m[1])] = br
			g.mu.Unlock()
		}
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(out)
}

// waitHeld waits until the hold predicate matched a request.
func (g *bankGate) waitHeld(t *testing.T, d time.Duration, what string) bankRequest {
	t.Helper()
	select {
	case br := <-g.held:
		return br
	case <-time.After(d):
		t.Fatalf("timed out after %s waiting for the bank to receive %s", d, what)
		return bankRequest{}
	}
}

// startEbicsBank starts a simulator (cfg completed with the demo's host)
// behind a bankGate and configures the EBICS plugin and bank in h the way
// demo.SetupEbics does, with the ack kinds of the profile's README row.
func startEbicsBank(t testing.TB, h *demo.Harness, profile string, segmentSize int, cfg sim.Config) (*sim.Sim, *bankGate) {
	t.Helper()
	cfg.HostID = ebicsHost
	cfg.RequireCertificates = profile != "de"
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	s.AddSubscriber(ebicsPartner, ebicsUser)
	g := newBankGate(t, s)
	v := protocol.H004
	if profile == "v3" {
		v = protocol.H005
	}
	ah, eh := s.BankKeyHashes(v)
	if err := h.WriteSecret("ebics-pass", "e2e passphrase for the EBICS keys"); err != nil {
		t.Fatal(err)
	}
	h.Template().Ebics = &demo.EbicsData{URL: g.URL(), HostID: ebicsHost, PartnerID: ebicsPartner, UserID: ebicsUser,
		PassFile: h.SecretPath("ebics-pass"), Profile: profile, SegmentSize: segmentSize,
		AuthHash: protocol.FormatHash(ah), EncHash: protocol.FormatHash(eh), BankName: ebicsBank,
		AckKinds: ackKinds(profile), PTKProfile: "en"}
	return s, g
}

// ackKinds is the plugin README's table: PTK exists in EBICS 2.5 only.
func ackKinds(profile string) string {
	if profile == "v3" {
		return "[psr, hac]"
	}
	return "[psr, hac, ptk]"
}

// submitAsync posts a file for upload with wait=true without waiting for
// the answer (the daemon may be killed before it comes).
func submitAsync(h *demo.Harness, path string) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := demo.Upload(context.Background(), h, ebicsBank, path)
		done <- err
	}()
	return done
}

// transmissionByFile finds the transmission recorded for a file name.
func transmissionByFile(t *testing.T, h *demo.Harness, name string) (*transmissions.Transmission, bool) {
	t.Helper()
	var ts []transmissions.Transmission
	if _, err := h.Client().Do(context.Background(), "GET", "/v1/transmissions?limit=1000", nil, &ts); err != nil {
		return nil, false
	}
	for i := range ts {
		if ts[i].FileName == name {
			return &ts[i], true
		}
	}
	return nil, false
}

// describe returns GET /v1/transmissions/{id}.
func describe(t *testing.T, h *demo.Harness, id string) *transmissions.Detail {
	t.Helper()
	var d transmissions.Detail
	if _, err := h.Client().Do(context.Background(), "GET", "/v1/transmissions/"+id, nil, &d); err != nil {
		t.Fatalf("GET /v1/transmissions/%s: %v", id, err)
	}
	return &d
}

// subjectEvents lists the outbox events of a transmission, every state.
func subjectEvents(t *testing.T, h *demo.Harness, id string) []store.Event {
	t.Helper()
	var evs []store.Event
	if _, err := h.Client().Do(context.Background(), "GET", "/v1/events?limit=10000&subject=transmission:"+id, nil, &evs); err != nil {
		t.Fatalf("GET /v1/events: %v", err)
	}
	return evs
}

// eventsOfType lists every outbox event of a type.
func eventsOfType(t *testing.T, h *demo.Harness, typ string) []store.Event {
	t.Helper()
	var evs []store.Event
	if _, err := h.Client().Do(context.Background(), "GET", "/v1/events?limit=10000&type="+typ, nil, &evs); err != nil {
		t.Fatalf("GET /v1/events: %v", err)
	}
	return evs
}

// readPain reads a generated file's transactions by EndToEndId.
func readPain(t *testing.T, path string) ([]byte, map[string]painfile.Tx) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := painfile.Read(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]painfile.Tx{}
	for _, x := range info.Txs {
		m[x.EndToEndID] = x
	}
	return b, m
}

// ordersOf returns the simulator's orders whose document is exactly data.
func ordersOf(s *sim.Sim, data []byte) []sim.Order {
	var out []sim.Order
	for _, o := range s.Orders() {
		if bytes.Equal(o.Data, data) {
			out = append(out, o)
		}
	}
	return out
}

// segmentsOf reads details.segments of a transmission.
func segmentsOf(d *transmissions.Detail) int {
	var v struct {
		Segments int `json:"segments"`
	}
	_ = json.Unmarshal(d.Details, &v)
	return v.Segments
}

func deliveriesFor(rec *recorder, subject, typ string) []delivery {
	var out []delivery
	seen := map[string]bool{}
	for _, d := range rec.all() {
		if d.Subject == subject && (typ == "" || d.Type == typ) && !seen[d.ID] {
			seen[d.ID] = true
			out = append(out, d)
		}
	}
	return out
}

func describeErr(d *transmissions.Detail) string {
	return fmt.Sprintf("state %s, last_error %q, attempts %d", d.State, d.LastError, d.UploadAttempts)
}

// fetchAcks runs the bank's acknowledgement fetch through the admin API
// (POST /v1/banks/{bank}/fetch-acks), as an operator does; kinds "" means
// the bank's configured kinds.
func fetchAcks(h *demo.Harness, kinds string) error {
	p := "/v1/banks/" + ebicsBank + "/fetch-acks"
	if kinds != "" {
		p += "?kinds=" + kinds
	}
	// Like `acquit bank fetch-acks` (30 min), the call sets its own bound:
	// a fetch of a large report is not cut by the client's default 60 s.
	c, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out map[string]string
	_, err := h.Client().Do(c, "POST", p, nil, &out)
	return err
}

// waitStateFetching waits for a transmission state, fetching the
// acknowledgements through the admin API (one run of the fetch-acks job)
// whenever the state is not reached yet: after a kill -9 the fetch-acks
// schedule may be blocked by the dead process's unfinished run
// (TestEbicsIssueFetchScheduleAfterKill9), and some tests fetch only this
// way to apply reports in a known order.
func waitStateFetching(t *testing.T, h *demo.Harness, id string, d time.Duration, want transmissions.State) *transmissions.Detail {
	t.Helper()
	deadline := time.Now().Add(d)
	var last transmissions.Detail
	for time.Now().Before(deadline) {
		if _, err := h.Client().Do(context.Background(), "GET", "/v1/transmissions/"+id, nil, &last); err == nil && last.State == want {
			return &last
		}
		_ = fetchAcks(h, "")
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("transmission %s: %s after %s, want %s", id, describeErr(&last), d, want)
	return nil
}
