package payments

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
)

// adminStart posts a start to the admin API as a shop does.
func (e *env) adminStart(t *testing.T, req StartRequest, key string) (int, *Started, string) {
	t.Helper()
	b, _ := json.Marshal(req)
	r, _ := http.NewRequest("POST", e.adm.URL+"/v1/payments", bytes.NewReader(b))
	r.Header.Set("Content-Type", "application/json")
	if key != "" {
		r.Header.Set("Idempotency-Key", key)
	}
	resp, err := e.client.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	var st Started
	_ = json.Unmarshal(buf.Bytes(), &st)
	return resp.StatusCode, &st, buf.String()
}

func (e *env) countPayments(t *testing.T, order string) int {
	t.Helper()
	var n int
	if err := e.db.QueryRow(e.rebind(`SELECT COUNT(*) FROM payments WHERE order_id = ?`), order).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestStartIdempotent: the rules of POST /v1/payments for a shop that
// retries, on both drivers.
func TestStartIdempotent(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			e := newEnvOn(t, driver, nil)
			order := nextOrder("IDEM")
			req := StartRequest{OrderID: order, Amount: 1000, Currency: "EUR", SuccessURL: shopOK, FailureURL: shopKO}

			// 1. A new start: 201, attempt 1.
			code, first, body := e.adminStart(t, req, "key-1")
			if code != http.StatusCreated || first.Attempt != 1 || first.Existing || first.Reference == "" {
				t.Fatalf("first start: %d %s", code, body)
			}
			// 2. Same key, same body (the shop never got the answer): the first
			// answer again, same redirect data.
			code, again, body := e.adminStart(t, req, "key-1")
			if code != http.StatusOK || !again.Existing || again.Reference != first.Reference ||
				again.RedirectURL != first.RedirectURL || fmt.Sprint(again.Fields) != fmt.Sprint(first.Fields) {
				t.Fatalf("same key: %d %s\nfirst %+v", code, body, first)
			}
			// 3. Same key, another body: 409, nothing created.
			other := req
			other.Amount = 2000
			if code, _, body := e.adminStart(t, other, "key-1"); code != http.StatusConflict {
				t.Fatalf("same key, other body: %d %s", code, body)
			}
			// 4. No key, same order, payment pending: the existing payment.
			code, noKey, body := e.adminStart(t, req, "")
			if code != http.StatusOK || noKey.Reference != first.Reference {
				t.Fatalf("same order without key: %d %s", code, body)
			}
			// 5. Same order, another amount, while pending: 409.
			if code, _, body := e.adminStart(t, other, ""); code != http.StatusConflict {
				t.Fatalf("same order, other amount: %d %s", code, body)
			}
			// 6. A malformed key is the caller's error.
			if code, _, body := e.adminStart(t, req, "key with spaces"); code != http.StatusBadRequest {
				t.Fatalf("bad key: %d %s", code, body)
			}
			if n := e.countPayments(t, order); n != 1 {
				t.Fatalf("%d payments for one order, want 1", n)
			}
			// 7. The customer is refused: a new start is a second attempt of the
			// same order, and a retry of that start is answered with it.
			e.pay(t, first)
			if r := e.post(t, "automatic", e.sim.decide(t, first.Reference, "05")); r.code != 200 {
				t.Fatalf("automatic response: %+v", r)
			}
			if d := e.get(t, first.Reference); d.Payment.State != StateRefused {
				t.Fatalf("after 05: %s", d.Payment.State)
			}
			code, second, body := e.adminStart(t, req, "key-2")
			if code != http.StatusCreated || second.Attempt != 2 || second.Reference == first.Reference {
				t.Fatalf("start after refusal: %d %s", code, body)
			}
			if code, again, _ := e.adminStart(t, req, "key-2"); code != http.StatusOK || again.Reference != second.Reference || again.Attempt != 2 {
				t.Fatalf("retry of the second attempt: %d %+v", code, again)
			}
			// key-1 still answers the first attempt (the refused one).
			if _, again, _ := e.adminStart(t, req, "key-1"); again.Reference != first.Reference {
				t.Fatalf("key-1 now answers %s", again.Reference)
			}
			d := e.get(t, second.Reference)
			if len(d.Attempts) != 2 || d.Attempts[0].Reference != first.Reference || d.Attempts[1].Attempt != 2 {
				t.Fatalf("attempts of the order: %+v", d.Attempts)
			}
			if n := e.countPayments(t, order); n != 2 {
				t.Fatalf("%d payments, want 2 attempts", n)
			}
		})
	}
}

// TestStartRaceTwoInstances: 20 concurrent starts of one order through two
// services sharing one database (two daemons on PostgreSQL; on SQLite two
// services on one file) make exactly one payment, and every caller gets it.
func TestStartRaceTwoInstances(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			e := newEnvOn(t, driver, nil)
			second := New(Deps{Store: e.st, Logger: e.svc.log, Registerer: nil, Now: e.clock.Now, Config: e.svc.cfg, Gateway: e.svc.gateway})
			svcs := []*Service{e.svc, second}
			if driver == "postgres" {
				// A second store: its own connection pool, as another daemon.
				st2 := reopen(t, e)
				svcs[1] = New(Deps{Store: st2, Logger: e.svc.log, Now: e.clock.Now, Config: e.svc.cfg, Gateway: e.svc.gateway})
			}
			for _, withKey := range []bool{false, true} {
				order := nextOrder("RACE")
				req := StartRequest{OrderID: order, Amount: 4200, Currency: "EUR", SuccessURL: shopOK, FailureURL: shopKO}
				var wg sync.WaitGroup
				refs := make([]string, 20)
				errs := make([]error, 20)
				for i := range 20 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						key := ""
						if withKey {
							key = "race-" + order
						}
						st, err := svcs[i%2].StartIdempotent(context.Background(), req, key)
						errs[i] = err
						if st != nil {
							refs[i] = st.Reference
						}
					}()
				}
				wg.Wait()
				for i, err := range errs {
					if err != nil {
						t.Fatalf("start %d: %v", i, err)
					}
					if refs[i] != refs[0] {
						t.Fatalf("start %d answered %s, start 0 %s", i, refs[i], refs[0])
					}
				}
				if n := e.countPayments(t, order); n != 1 {
					t.Fatalf("key=%v: %d payments for one order, want 1", withKey, n)
				}
			}
		})
	}
}

// TestStartErrorsAreTyped: the HTTP layer tells a reused key and a held
// order from an outage.
func TestStartErrorsAreTyped(t *testing.T) {
	e := newEnv(t, nil)
	req := StartRequest{OrderID: nextOrder("T"), Amount: 100, Currency: "EUR", SuccessURL: shopOK, FailureURL: shopKO}
	if _, err := e.svc.StartIdempotent(context.Background(), req, "k"); err != nil {
		t.Fatal(err)
	}
	req2 := req
	req2.Amount = 101
	if _, err := e.svc.StartIdempotent(context.Background(), req2, "k"); !errors.Is(err, ErrIdempotencyMismatch) {
		t.Fatalf("reused key: %v", err)
	}
	if _, err := e.svc.StartIdempotent(context.Background(), req2, ""); !errors.Is(err, ErrOrderHeld) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("held order: %v", err)
	}
}
