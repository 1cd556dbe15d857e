package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/acquit/acquit/daemon/payments"
	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/internal/demo"
	"github.com/acquit/acquit/plugins/atos/sim"
	"github.com/acquit/acquit/plugins/atos/sips"
)

// sipsFields decodes the Data of a Sips response form.
func sipsFields(t *testing.T, v url.Values) map[string]string {
	t.Helper()
	pf := &sips.PostForm{Data: v.Get("Data"), Encode: v.Get("Encode")}
	data, err := pf.DecodedData()
	if err != nil {
		t.Fatal(err)
	}
	f, err := sips.ParseData(data)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// withData returns a copy of the form with Data re-encoded from f and the
// original Seal kept (a tampered response).
func withData(t *testing.T, v url.Values, f map[string]string) url.Values {
	t.Helper()
	data, err := sips.EncodeData(f)
	if err != nil {
		t.Fatal(err)
	}
	out := url.Values{}
	for k, x := range v {
		out[k] = append([]string(nil), x...)
	}
	pf := &sips.PostForm{Data: data, Encode: v.Get("Encode")}
	if pf.Encode != "" {
		// Only the plain form is used in these tests' configuration.
		t.Fatalf("unexpected Encode %q", pf.Encode)
	}
	out.Set("Data", data)
	return out
}

// resealed seals f with the given key version and key, as someone holding
// (or guessing) a key would.
func resealed(t *testing.T, v url.Values, f map[string]string, keyVersion, key string) url.Values {
	t.Helper()
	acc := &sips.Account{MerchantID: f["merchantId"], Keys: map[string]string{keyVersion: key}, Algorithm: sips.HMACSHA256}
	pf, err := sips.BuildPost(acc, keyVersion, f, v.Get("Encode"), v.Get("InterfaceVersion"))
	if err != nil {
		t.Fatal(err)
	}
	return pf.Values()
}

func with(f map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(f))
	for a, b := range f {
		out[a] = b
	}
	out[k] = v
	return out
}

// chunkedReader hides the length of its body so that the request goes out
// chunked, without Content-Length.
type chunkedReader struct{ r io.Reader }

func (c chunkedReader) Read(p []byte) (int, error) { return c.r.Read(p) }

// TestPaymentsHostileNotifications posts forged, tampered, replayed,
// oversized and malformed notifications to the real daemon's public
// listener about a pending payment B (and a decided payment A): each gets
// the documented answer (400 with the reject code, 413, 200 for a sealed
// mismatch or duplicate, the neutral page on the manual URL), the matching
// acquit_* counter on /metrics goes up by one, and B stays pending with no
// decision until its genuine response comes.
func TestPaymentsHostileNotifications(t *testing.T) {
	c := ctx(t)
	e := newPayEnv(t, sim.Faults{DropAutomatic: 1}, func(tp *demo.TemplateData) {
		tp.ReconcileAfter = "10m" // B must stay pending during the test
	})
	e.start(c)
	cs := []*customer{{i: 1, choice: "accepted"}, {i: 2, choice: "accepted"}}
	for _, cu := range cs {
		st, err := e.startPayment(c, cu)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.pay(c, cu, st); err != nil {
			t.Fatal(err)
		}
		if !cu.manual.Returns {
			t.Fatal("the simulator gave no manual form")
		}
	}
	a, b := cs[0], cs[1]
	rd := &redirects{}
	e.goBack(c, a, rd) // A is decided by its manual response
	if rd.ok != 1 {
		t.Fatalf("A's return: %v", rd.bad)
	}
	aF, bF := sipsFields(t, a.manual.Fields), sipsFields(t, b.manual.Fields)
	pub := "http://" + e.h.PublicAddr
	auto, manual := pub+"/notify/atos/automatic", pub+"/notify/atos/manual"
	big := "Data=" + strings.Repeat("A", 70<<10) + "&Seal=00"

	cases := []struct {
		name       string
		url        string
		body       func() io.Reader
		length     bool // send Content-Length
		wantStatus int
		wantBody   string
		wantLoc    string   // manual: Location prefix ("" = none)
		metric     []string // counter and label substrings that must grow by 1
	}{
		{"forged seal (wrong key)", auto, form(resealed(t, b.manual.Fields, bF, "1", "not-the-merchant-key")), true,
			400, "bad_seal", "", []string{"acquit_payments_rejects_total", `code="bad_seal"`}},
		{"unknown keyVersion", auto, form(resealed(t, b.manual.Fields, bF, "9", payKey)), true,
			400, "unknown_key_version", "", []string{"acquit_payments_rejects_total", `code="unknown_key_version"`}},
		{"amount changed, seal kept", auto, form(withData(t, b.manual.Fields, with(bF, "amount", "1"))), true,
			400, "bad_seal", "", []string{"acquit_payments_rejects_total", `code="bad_seal"`}},
		{"amount changed and resealed with the merchant key", auto, form(resealed(t, b.manual.Fields, with(bF, "amount", "1"), "1", payKey)), true,
			200, "OK", "", []string{"acquit_payments_notifications_total", `verdict="mismatch"`, `channel="automatic"`}},
		{"A's response with B's reference, seal kept", auto, form(withData(t, a.manual.Fields, with(aF, "transactionReference", b.prov))), true,
			400, "bad_seal", "", []string{"acquit_payments_rejects_total", `code="bad_seal"`}},
		{"replay of A's old response", auto, form(a.manual.Fields), true,
			200, "OK", "", []string{"acquit_payments_notifications_total", `verdict="duplicate"`, `channel="automatic"`}},
		{"oversized body with Content-Length", auto, str(big), true,
			413, "too large", "", []string{"acquit_http_body_too_large_total"}},
		{"oversized body, chunked", auto, str(big), false,
			413, "oversized", "", []string{"acquit_payments_rejects_total", `code="too_large"`}},
		{"Data not UTF-8", auto, form(url.Values{"Data": {"amount=1\xff|merchantId=" + payMerchantID}, "Seal": {"00"}}), true,
			400, "bad_encoding", "", []string{"acquit_payments_rejects_total", `code="bad_encoding"`}},
		{"garbage form", auto, str("Data=%zz&&Seal"), true,
			400, "rejected", "", []string{"acquit_payments_notifications_total", `verdict="rejected"`, `channel="automatic"`}},
		{"unknown gateway (not stored)", pub + "/notify/nosuch/automatic", form(b.manual.Fields), true,
			404, "unknown gateway", "", []string{"acquit_payments_rejects_total", `code="unknown_gateway"`}},
		{"manual: forged seal", manual, form(resealed(t, b.manual.Fields, bF, "1", "not-the-merchant-key")), true,
			200, "being confirmed", "", []string{"acquit_payments_rejects_total", `code="bad_seal"`}},
		{"manual: replay of A's old response", manual, form(a.manual.Fields), true,
			303, "", paySuccessURL, []string{"acquit_payments_notifications_total", `verdict="duplicate"`, `channel="manual"`}},
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := metricValue(e.metrics(c), tc.metric[0], tc.metric[1:]...)
			body := tc.body()
			if !tc.length {
				body = chunkedReader{body}
			}
			req, err := http.NewRequestWithContext(c, "POST", tc.url, body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus || !strings.Contains(string(got), tc.wantBody) {
				t.Errorf("answer %d %q, want %d containing %q", resp.StatusCode, clipBytes(got, 200), tc.wantStatus, tc.wantBody)
			}
			if loc := resp.Header.Get("Location"); (tc.wantLoc == "" && loc != "") || !strings.HasPrefix(loc, tc.wantLoc) {
				t.Errorf("Location %q, want %q", loc, tc.wantLoc)
			}
			after := metricValue(e.metrics(c), tc.metric[0], tc.metric[1:]...)
			if after != before+1 {
				t.Errorf("%v: %v before, %v after; want one more", tc.metric, before, after)
			}
			e.checkState(c, t, b.ref, payments.StatePending)
			e.checkState(c, t, a.ref, payments.StateAccepted)
		})
	}

	// B's timeline holds only the sealed mismatch; rejected inputs name
	// no payment.
	var d payments.Detail
	if _, err := e.cl.Do(c, "GET", "/v1/payments/"+b.ref, nil, &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Timeline) != 1 || d.Timeline[0].Verdict != payments.VerdictMismatch {
		t.Errorf("B's timeline after the hostile inputs: %+v", d.Timeline)
	}
	// B's genuine response still decides it, once.
	e.goBack(c, b, rd)
	if rd.ok != 2 || len(rd.bad) > 0 {
		t.Fatalf("B's genuine return: %d ok, %v", rd.ok, rd.bad)
	}
	e.checkState(c, t, b.ref, payments.StateAccepted)
	for _, cu := range cs {
		mismatches := 0
		if cu == b {
			mismatches = 1
		}
		for typ, want := range map[string]int{"payment.accepted": 1, "payment.conflict": 0, "payment.mismatch": mismatches} {
			var evs []store.Event
			if _, err := e.cl.Do(c, "GET", "/v1/events?limit=100&type="+typ+"&subject=payment:"+cu.ref, nil, &evs); err != nil {
				t.Fatal(err)
			}
			if len(evs) != want {
				t.Errorf("payment %s: %d %s events, want %d", cu.ref, len(evs), typ, want)
			}
		}
	}
	if err := e.h.Stop(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
}

func form(v url.Values) func() io.Reader {
	s := v.Encode()
	return func() io.Reader { return strings.NewReader(s) }
}

func str(s string) func() io.Reader {
	return func() io.Reader { return bytes.NewReader([]byte(s)) }
}

// checkState asserts a payment's stored state (and, for pending, that no
// channel decided it).
func (e *payEnv) checkState(ctx context.Context, t *testing.T, ref string, want payments.State) {
	t.Helper()
	var d payments.Detail
	if _, err := e.cl.Do(ctx, "GET", "/v1/payments/"+url.PathEscape(ref), nil, &d); err != nil {
		t.Fatal(err)
	}
	if d.Payment.State != want || (want == payments.StatePending && d.Payment.DecidedChannel != "") {
		t.Errorf("payment %s is %s (decided by %q, version %s), want %s", ref, d.Payment.State, d.Payment.DecidedChannel,
			strconv.FormatInt(d.Payment.Version, 10), want)
	}
}
