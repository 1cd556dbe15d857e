package payments

import (
	"context"
	"testing"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/store/postgres"
	"github.com/acquit/acquit/daemon/store/sqlite"
)

// downgradeTo111 puts the two columns migration 112 moved back into the
// payments row, as an acquit older than it kept them, and forgets 112.
func downgradeTo111(t *testing.T, e *env) {
	t.Helper()
	for _, q := range []string{
		`ALTER TABLE payments ADD COLUMN init_raw TEXT NOT NULL DEFAULT '{}'`,
		`ALTER TABLE payments ADD COLUMN start_answer TEXT NOT NULL DEFAULT ''`,
		`UPDATE payments SET init_raw = (SELECT s.init_raw FROM payment_starts s WHERE s.reference = payments.reference),
			start_answer = (SELECT s.start_answer FROM payment_starts s WHERE s.reference = payments.reference)`,
		`DROP TABLE payment_starts`,
		`DELETE FROM schema_migrations WHERE version = 112`,
	} {
		if _, err := e.db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// TestPaymentStartsMigration: payments started by an acquit older than
// migration 112 (start answer and init reply in the payments row) are
// answered the same after the upgrade: a repeated start with the same
// Idempotency-Key, and a start of the same order without one, return the
// first answer, and the init reply is kept word for word. The two columns
// are gone from payments, and a response still decides such a payment.
func TestPaymentStartsMigration(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			old := newEnvOn(t, driver, nil)
			reqs := []StartRequest{
				{OrderID: nextOrder("MIG"), Amount: 4200, Currency: "EUR", SuccessURL: shopOK, FailureURL: shopKO},
				{OrderID: nextOrder("MIG"), Amount: 990, Currency: "EUR", SuccessURL: shopOK, FailureURL: shopKO},
			}
			keys := []string{"mig-key", ""}
			var first []*Started
			var inits []string
			for i, req := range reqs {
				st, err := old.svc.StartIdempotent(ctx, req, keys[i])
				if err != nil {
					t.Fatal(err)
				}
				first = append(first, st)
			}
			downgradeTo111(t, old)
			for _, st := range first {
				var init string
				if err := old.db.QueryRow(old.rebind(`SELECT init_raw FROM payments WHERE reference = ?`), st.Reference).Scan(&init); err != nil {
					t.Fatal(err)
				}
				if init == "" || init == "{}" {
					t.Fatalf("the old layout holds no init reply: %q", init)
				}
				inits = append(inits, init)
			}

			var st store.Store
			var err error
			if driver == "sqlite" {
				st, err = sqlite.Open(ctx, old.st.(*sqlite.Store).Path(), store.WithMigrations(Migrations()))
			} else {
				st, err = postgres.Open(ctx, old.dsn, store.WithMigrations(Migrations()))
			}
			if err != nil {
				t.Fatalf("upgrade: %v", err)
			}
			t.Cleanup(func() { st.Close() })
			svc := New(Deps{Store: st, Logger: old.svc.log, Now: old.clock.Now, Config: old.svc.cfg, Gateway: old.svc.gateway})
			for i, req := range reqs {
				again, err := svc.StartIdempotent(ctx, req, keys[i])
				if err != nil {
					t.Fatalf("start %d again: %v", i, err)
				}
				if !again.Existing || again.Reference != first[i].Reference || again.RedirectURL != first[i].RedirectURL ||
					again.Method != first[i].Method || len(again.Fields) == 0 || again.Fields["reference"] != first[i].Fields["reference"] {
					t.Fatalf("start %d after the upgrade answered %+v, first %+v", i, again, first[i])
				}
				var init string
				if err := old.db.QueryRow(old.rebind(`SELECT init_raw FROM payment_starts WHERE reference = ?`), first[i].Reference).Scan(&init); err != nil {
					t.Fatal(err)
				}
				if init != inits[i] {
					t.Fatalf("init reply %q after the upgrade, was %q", init, inits[i])
				}
			}
			for _, col := range []string{"init_raw", "start_answer"} {
				if _, err := old.db.Exec(`SELECT ` + col + ` FROM payments`); err == nil {
					t.Fatalf("payments.%s still there after migration 112", col)
				}
			}
			// A response decides a payment started before the upgrade.
			old.pay(t, first[1])
			if r := old.post(t, "automatic", old.sim.decide(t, first[1].Reference, "00")); r.code != 200 {
				t.Fatalf("automatic response after the upgrade: HTTP %d %s", r.code, r.body)
			}
			d, err := svc.Get(ctx, first[1].Reference)
			if err != nil {
				t.Fatal(err)
			}
			if d.Payment.State != StateAccepted {
				t.Fatalf("payment started before the upgrade is %s after its response, want accepted", d.Payment.State)
			}
		})
	}
}
