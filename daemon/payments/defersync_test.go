package payments

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/acquit/acquit/sdk"
)

// TestNotificationRawCommitDeferred: the raw input of a notification is
// committed without its own fsync (store.RawInput.DeferSync), and every
// path that answers the sender commits again with a flush first (the
// verdict, or the transition with its timeline row), which makes the raw
// input durable against power loss too before the answer. One fsync per
// notification instead of two.
func TestNotificationRawCommitDeferred(t *testing.T) {
	e := newEnv(t, nil)
	type stats interface {
		GroupStats() (int64, int64)
		LazyGroups() int64
	}
	gs, ok := e.st.(stats)
	if !ok {
		t.Fatalf("%T has no group statistics", e.st)
	}
	st := e.start(t, 100)
	e.pay(t, st)
	good := e.sim.decide(t, st.Reference, "00")
	cases := []struct {
		name    string
		channel string
		body    []byte
		want    int
	}{
		{"decides", "automatic", []byte(good.Encode()), 200},
		{"duplicate", "manual", []byte(good.Encode()), 303},
		{"conflict", "automatic", []byte(e.sim.decide(t, st.Reference, "05").Encode()), 200},
		{"forged seal", "automatic", []byte(url.Values{"Data": {good.Get("Data")}, "Seal": {strings.Repeat("ab", 32)}}.Encode()), 0},
		{"oversized", "automatic", []byte("Data=" + strings.Repeat("a", int(e.svc.cfg.MaxBodyBytes)+10)), 0},
		{"not UTF-8", "automatic", []byte("Data=amount%3D1\xff\xfe|x&Seal=00"), 0},
	}
	for _, c := range cases {
		c0, _ := gs.GroupStats()
		l0 := gs.LazyGroups()
		r := e.postBody(t, c.channel, c.body)
		if c.want != 0 && r.code != c.want {
			t.Fatalf("%s: HTTP %d, want %d", c.name, r.code, c.want)
		}
		c1, _ := gs.GroupStats()
		lazy := gs.LazyGroups() - l0
		full := (c1 - c0) - lazy
		if lazy != 1 || full < 1 {
			t.Errorf("%s (HTTP %d): %d commits without fsync, %d with; want the raw input's without, then at least one with before the answer",
				c.name, r.code, lazy, full)
		}
	}
}

// TestApplyFailureKeepsVerifiedInput: a notification that passed
// verification but could not be applied (here the timeline table is gone)
// is answered 200 (stored and verified: the reconciler settles the
// payment), and its raw input gets a verified verdict
// (apply_error), so raw retention keeps the bank's word for the operator
// and the reconciler. Before, it had no verdict and PruneRaw deleted it.
func TestApplyFailureKeepsVerifiedInput(t *testing.T) {
	e := newEnv(t, nil)
	st := e.start(t, 100)
	e.pay(t, st)
	good := e.sim.decide(t, st.Reference, "00")
	if _, err := e.db.Exec(`ALTER TABLE payment_responses RENAME TO payment_responses_gone`); err != nil {
		t.Fatal(err)
	}
	// Stored and verified: answered 200, the reconciler settles it.
	if r := e.post(t, "automatic", good); r.code != 200 {
		t.Fatalf("HTTP %d %q", r.code, r.body)
	}
	rawID, code := e.lastVerdict(t)
	if code != "apply_error" {
		t.Fatalf("verdict %q, want apply_error", code)
	}
	ctx := context.Background()
	if _, err := e.st.PruneRaw(ctx, time.Now().Add(365*24*time.Hour), 0); err != nil {
		t.Fatal(err)
	}
	got, err := e.st.GetRaw(ctx, rawID)
	if err != nil {
		t.Fatalf("verified input %d pruned: %v", rawID, err)
	}
	if v := got.Verdicts[len(got.Verdicts)-1]; !v.Verified || v.Code != "apply_error" {
		t.Fatalf("verdicts %+v", got.Verdicts)
	}
	if _, err := e.db.Exec(`ALTER TABLE payment_responses_gone RENAME TO payment_responses`); err != nil {
		t.Fatal(err)
	}
	if p := e.get(t, st.Reference).Payment; p.State != StatePending {
		t.Fatalf("payment %s after a failed apply", p.State)
	}
}

// TestApplyAndVerdictFailureAnswers500: when the notification cannot be
// applied and its verdict cannot be written either, nothing has flushed
// its raw input (committed with DeferSync) to disk, so the bank is
// answered as if nothing was stored (500, "not stored, retry") and will
// send it again, rather than 200.
func TestApplyAndVerdictFailureAnswers500(t *testing.T) {
	e := newEnv(t, nil)
	st := e.start(t, 100)
	e.pay(t, st)
	good := e.sim.decide(t, st.Reference, "00")
	for _, q := range []string{`ALTER TABLE payment_responses RENAME TO payment_responses_gone`,
		`ALTER TABLE raw_verdicts RENAME TO raw_verdicts_gone`} {
		if _, err := e.db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	r := e.post(t, "automatic", good)
	if r.code != 500 || !strings.Contains(r.body, "not stored") {
		t.Fatalf("HTTP %d %q, want 500 not stored", r.code, r.body)
	}
	for _, q := range []string{`ALTER TABLE payment_responses_gone RENAME TO payment_responses`,
		`ALTER TABLE raw_verdicts_gone RENAME TO raw_verdicts`} {
		if _, err := e.db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	// Sent again, it is applied.
	if r := e.post(t, "automatic", good); r.code != 200 {
		t.Fatalf("the retry: HTTP %d %q", r.code, r.body)
	}
	if p := e.get(t, st.Reference).Payment; p.State != StateAccepted {
		t.Fatalf("payment %s after the retry", p.State)
	}
}

// failingGateway's verification fails with an error that is no refusal
// (verify_error).
type failingGateway struct{ *simGateway }

func (g failingGateway) VerifyNotification(context.Context, sdk.Notification) (*sdk.PaymentResult, error) {
	return nil, errors.New("plugin call: connection reset")
}

// TestUnverifiedAndVerdictFailureAnswers500: the other two paths that
// answer "stored, retry" (503) follow the rule of
// TestApplyAndVerdictFailureAnswers500: a notification whose gateway is
// unavailable, or whose verification failed, is answered 503 when its
// verdict is written (that commit flushes the raw input), one refused is
// answered 400, and each is answered 500 ("not stored, retry") when its
// verdict could not be written.
func TestUnverifiedAndVerdictFailureAnswers500(t *testing.T) {
	e := newEnv(t, nil)
	e.gateways["failing"] = failingGateway{e.gw}
	var logs bytes.Buffer
	e.svc.log = zerolog.New(&logs)
	lookup := e.svc.gateway
	e.svc.gateway = func(name string) (sdk.PaymentGateway, error) {
		if name == "down" {
			return nil, fmt.Errorf("plugin down restarting: %w", ErrUnavailable)
		}
		return lookup(name)
	}
	post := func(gateway string) reply {
		t.Helper()
		return e.postTo(t, gateway, "automatic", []byte("Data=x&Seal=y"))
	}
	for _, c := range []struct {
		gateway, verdict string
		code             int    // the answer when the verdict is written
		log              string // the start of the log message then
		failLog          string // and when the verdict cannot be written
	}{
		{"down", "unavailable", 503, "notification stored, ", "notification not durably stored, "},
		{"failing", "verify_error", 503, "notification stored, ", "notification not durably stored, "},
		// Refused by the plugin (Data is not its format): a refusal's
		// verdict is the commit that makes its raw input durable too.
		{"sim", "malformed", 400, "notification rejected", "notification not durably stored, rejected"},
	} {
		t.Run(c.gateway, func(t *testing.T) {
			if r := post(c.gateway); r.code != c.code {
				t.Fatalf("verdict written: HTTP %d %q, want %d", r.code, r.body, c.code)
			}
			if _, code := e.lastVerdict(t); code != c.verdict {
				t.Fatalf("verdict %q, want %s", code, c.verdict)
			}
			if !strings.Contains(logs.String(), `"message":"`+c.log) {
				t.Fatalf("verdict written: log %s, want %s", logs.String(), c.log)
			}
			logs.Reset()
			if _, err := e.db.Exec(`ALTER TABLE raw_verdicts RENAME TO raw_verdicts_gone`); err != nil {
				t.Fatal(err)
			}
			r := post(c.gateway)
			if _, err := e.db.Exec(`ALTER TABLE raw_verdicts_gone RENAME TO raw_verdicts`); err != nil {
				t.Fatal(err)
			}
			if r.code != 500 || !strings.Contains(r.body, "not stored") {
				t.Fatalf("verdict not written: HTTP %d %q, want 500 not stored", r.code, r.body)
			}
			if l := logs.String(); !strings.Contains(l, `"message":"`+c.failLog) || strings.Contains(l, `"message":"`+c.log) {
				t.Fatalf("verdict not written: log %s, want %s", l, c.failLog)
			}
			logs.Reset()
		})
	}
}
