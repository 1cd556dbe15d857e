package pluginhost

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/acquit/acquit/daemon/store/sqlite"
	"github.com/acquit/acquit/sdk"
)

// TestSQLiteHostSurvivesDaemonRestart: with the real SQLite store behind
// the Host, what a plugin stored is there for a new plugin process started
// by a new Manager on a reopened database.
func TestSQLiteHostSurvivesDaemonRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "acquit.db")
	run := func(f func(g sdk.PaymentGateway)) {
		st, err := sqlite.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = st.Close() }()
		m, err := New(Options{State: st, Logger: zerolog.Nop(), HealthInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := m.Stop(ctx); err != nil {
				t.Error(err)
			}
		}()
		if err := m.Start(ctx, gatewaySpec("atos")); err != nil {
			t.Fatal(err)
		}
		g, err := m.Gateway("atos")
		if err != nil {
			t.Fatal(err)
		}
		f(g)
	}
	run(func(g sdk.PaymentGateway) {
		if _, err := g.InitPayment(ctx, sdk.PaymentRequest{Reference: "REF0001", Amount: 1250, Currency: "EUR"}); err != nil {
			t.Fatal(err)
		}
		if _, err := g.VerifyNotification(ctx, notification(t, "accepted.form")); err != nil {
			t.Fatal(err)
		}
	})
	run(func(g sdk.PaymentGateway) {
		q, err := g.QueryTransaction(ctx, sdk.TransactionQuery{Reference: "REF0001"})
		if err != nil || q.Outcome != sdk.OutcomeAccepted || q.Amount != 1250 {
			t.Fatalf("after restart: %+v %v", q, err)
		}
		// The SQLite store's conflict is the plugin's sdk.ErrConflict.
		if _, err := g.InitPayment(ctx, sdk.PaymentRequest{Reference: "REF0001", Amount: 1, Currency: "EUR"}); !errors.Is(err, sdk.ErrConflict) {
			t.Fatalf("duplicate: %v", err)
		}
		// Sequences continue across restarts and are never reused: 1 went
		// to REF0001, 2 to the refused duplicate.
		init, err := g.InitPayment(ctx, sdk.PaymentRequest{Reference: "REF0002", Amount: 1, Currency: "EUR"})
		if err != nil || init.Raw["transaction"] != "3" {
			t.Fatalf("second payment: %+v %v", init, err)
		}
	})
}
