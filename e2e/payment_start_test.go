package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/payments"
	"github.com/acquit/acquit/plugins/atos/sim"
)

// postStart sends POST /v1/payments as a shop does and returns the status,
// the answer and the transport error (a killed daemon answers nothing).
func postStart(e *payEnv, req payments.StartRequest, key string) (int, *payments.Started, error) {
	b, _ := json.Marshal(req)
	r, _ := http.NewRequest("POST", "http://"+e.h.AdminAddr+"/v1/payments", bytes.NewReader(b))
	r.Header.Set("Authorization", "Bearer "+e.h.Token)
	r.Header.Set("Content-Type", "application/json")
	if key != "" {
		r.Header.Set("Idempotency-Key", key)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(r)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var st payments.Started
	_ = json.NewDecoder(resp.Body).Decode(&st)
	return resp.StatusCode, &st, nil
}

// TestPaymentStartKilledBetweenCommitAndAnswer: the daemon is killed (SIGKILL,
// as kill -9) after a payment start committed and before the shop got the
// answer; the shop retries after the restart, with and without an
// Idempotency-Key, and gets that payment: one order, one payment, and the
// customer can pay it.
func TestPaymentStartKilledBetweenCommitAndAnswer(t *testing.T) {
	e := newPayEnv(t, sim.Faults{}, nil)
	c := ctx(t)
	for _, key := range []string{"", "shop-retry-key-1"} {
		order := "SOAK-" + strings.ToUpper(strings.TrimPrefix(key, "shop-retry-"))
		if key == "" {
			order = "SOAK-0001243"
		}
		req := payments.StartRequest{OrderID: order, Amount: 4990, Currency: "EUR", SuccessURL: paySuccessURL, FailureURL: payFailureURL}
		e.h.Env = []string{"ACQUIT_CRASH_AT=after-start-commit"}
		e.start(c)
		if code, _, err := postStart(e, req, key); err == nil {
			t.Fatalf("key %q: the daemon answered %d instead of dying after the commit", key, code)
		}
		waitFor(t, 10*time.Second, "daemon dead", func() bool { return e.h.Pid() == 0 || !alive(e.h.Pid()) })
		_ = e.h.Kill9(true) // its plugins too, as systemd's KillMode=control-group
		e.h.Env = nil
		e.start(c)
		code, st, err := postStart(e, req, key)
		if err != nil || code != http.StatusOK || !st.Existing || st.Reference == "" {
			t.Fatalf("key %q: retry after restart: %d %+v %v", key, code, st, err)
		}
		// Concurrent retries too (a shop with several workers): still one.
		var wg sync.WaitGroup
		refs := make(chan string, 8)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, s, err := postStart(e, req, key); err == nil && s != nil {
					refs <- s.Reference
				}
			}()
		}
		wg.Wait()
		close(refs)
		for r := range refs {
			if r != st.Reference {
				t.Fatalf("key %q: a retry answered %s, not %s", key, r, st.Reference)
			}
		}
		var list []payments.Payment
		if _, err := e.cl.Do(c, "GET", "/v1/payments?order_id="+order, nil, &list); err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].Reference != st.Reference || list[0].Attempt != 1 {
			t.Fatalf("key %q: payments of order %s: %+v", key, order, list)
		}
		// The page the retry returned is the one the customer can pay.
		page, err := e.br.Open(c, st.Method, st.RedirectURL, st.Fields)
		if err != nil || page.Refused() {
			t.Fatalf("key %q: the Sips paypage does not take the retried start: %v %+v", key, err, page)
		}
		if err := e.h.Stop(); err != nil {
			t.Fatal(err)
		}
	}
}

// alive reports whether process pid exists (and is not yet reaped).
func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }
