package payments

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/acquit/acquit/sdk"
)

// TestNotifyRateLimit (issue 9, item 13): one client address sending more
// than Config.NotifyRate allows gets 429 and nothing is stored for the
// refused requests; the refusals are counted.
func TestNotifyRateLimit(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.NotifyRate, c.NotifyBurst = 0.001, 5 })
	codes := map[int]int{}
	for range 8 {
		codes[e.postBody(t, "automatic", []byte("Data=x&Seal=y")).code]++
	}
	if codes[429] != 3 || codes[400] != 5 {
		t.Fatalf("answers %v, want 5 processed (400) and 3 refused (429)", codes)
	}
	var raws int
	if err := e.db.QueryRow(`SELECT COUNT(*) FROM raw_inputs`).Scan(&raws); err != nil || raws != 5 {
		t.Fatalf("%d raw inputs stored, want 5 (%v)", raws, err)
	}
	if got := testutil.ToFloat64(e.svc.m.rateLimited); got != 3 {
		t.Fatalf("rate_limited_total %v", got)
	}
}

// TestRefusedBodyCapped (issue 9, item 13): a body refused before
// verification (oversized, not UTF-8) cannot be the provider's: only its
// first RefusedBodyKeep bytes are kept, and the verdict says so. A body
// that could be the provider's is kept whole.
func TestRefusedBodyCapped(t *testing.T) {
	e := newEnv(t, nil) // MaxBodyBytes 64 KiB, RefusedBodyKeep 4 KiB
	ctx := context.Background()
	for _, c := range []struct {
		name string
		body []byte
		code int
		keep int
		rej  string
	}{
		{"oversized", []byte("Data=" + strings.Repeat("A", 70<<10)), 413, 4 << 10, "too_large"},
		{"not UTF-8", append([]byte("Data="), bytes.Repeat([]byte{0xff}, 60<<10)...), 400, 4 << 10, "bad_encoding"},
		{"well-formed but forged", []byte("Data=" + strings.Repeat("A", 60<<10) + "&Seal=00"), 400, 60<<10 + 13, ""},
	} {
		r := e.postBody(t, "automatic", c.body)
		if r.code != c.code {
			t.Fatalf("%s: HTTP %d", c.name, r.code)
		}
		rawID, code := e.lastVerdict(t)
		raw, err := e.st.GetRaw(ctx, rawID)
		if err != nil {
			t.Fatal(err)
		}
		if len(raw.Body) != c.keep || !bytes.Equal(raw.Body, c.body[:c.keep]) {
			t.Fatalf("%s: %d bytes kept, want the first %d", c.name, len(raw.Body), c.keep)
		}
		if c.rej != "" && (code != c.rej || !strings.Contains(raw.Verdicts[0].Message, "first 4096 bytes kept")) {
			t.Fatalf("%s: verdict %q %q", c.name, code, raw.Verdicts[0].Message)
		}
	}
}

// slowGateway is the test provider with a verification that outlives the
// request's time budget, as a hung plugin call does.
type slowGateway struct{ *simGateway }

func (g slowGateway) VerifyNotification(ctx context.Context, _ sdk.Notification) (*sdk.PaymentResult, error) {
	<-ctx.Done()
	return nil, fmt.Errorf("plugin call: %w", ctx.Err())
}

// TestVerdictStoredWhenVerificationTimesOut: a notification whose
// verification outlives AutomaticTimeout still gets its verdict
// (verify_error): the verdict is not written with the expired request
// context. Before, the raw input stayed without any verdict ("verdict not
// stored: context deadline exceeded"), indistinguishable from one whose
// process died mid-way; raw retention (issue 9 item 13) prunes both, but
// the operator should see why.
func TestVerdictStoredWhenVerificationTimesOut(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AutomaticTimeout = 200 * time.Millisecond })
	e.gateways["slow"] = slowGateway{e.gw}
	resp, err := e.client.Post(e.pub.URL+"/notify/slow/automatic", "application/x-www-form-urlencoded",
		strings.NewReader("Data=x&Seal=y"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("HTTP %d, want 503 (stored, retry)", resp.StatusCode)
	}
	rawID, code := e.lastVerdict(t)
	if code != "verify_error" {
		t.Fatalf("raw %d: verdict %q, want verify_error", rawID, code)
	}
}
