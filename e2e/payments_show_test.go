package e2e

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/payments"
	"github.com/acquit/acquit/internal/demo"
	"github.com/acquit/acquit/plugins/atos/sim"
)

// TestPaymentsShowDecidingCode (issue 9, item 8): a payment refused and
// decided by reconciliation (both responses lost; Sips Office answers 00
// with transactionStatus REFUSED) must not read "decided by:
// reconciliation 00" in `acquit payments show`: Office's 00 only says that
// Office answered. The line names the codes that came with the deciding
// answer, and the explanation names the transaction's status.
func TestPaymentsShowDecidingCode(t *testing.T) {
	c := ctx(t)
	e := newPayEnv(t, sim.Faults{DropAutomatic: 1, CustomerNeverReturns: 1}, func(tp *demo.TemplateData) {
		tp.ReconcileAfter = "1s"
	})
	e.start(c)
	cu := &customer{i: 1, choice: "refused"}
	st, err := e.startPayment(c, cu)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.pay(c, cu, st); err != nil {
		t.Fatal(err)
	}
	var d payments.Detail
	waitFor(t, time.Minute, "the payment decided by reconciliation", func() bool {
		if _, err := e.cl.Do(c, "GET", "/v1/payments/"+url.PathEscape(cu.ref), nil, &d); err != nil {
			t.Fatal(err)
		}
		return d.Payment.State != payments.StatePending
	})
	if d.Payment.State != payments.StateRefused || d.Payment.DecidedChannel != "reconciliation" {
		t.Fatalf("payment %s by %s", d.Payment.State, d.Payment.DecidedChannel)
	}
	out, code := acquitCLI(t, e.h, "payments", "show", cu.ref)
	if code != 0 {
		t.Fatalf("payments show: exit %d\n%s", code, out)
	}
	var decided, why string
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "decided by:"); ok {
			decided = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "why:"); ok {
			why = strings.TrimSpace(v)
		}
	}
	if !strings.HasPrefix(decided, "reconciliation") || strings.Contains(decided, "00") {
		t.Errorf("decided by %q for a refused payment, want reconciliation without Office's 00\n%s", decided, out)
	}
	if !strings.Contains(why, "REFUSED") {
		t.Errorf("why %q does not name the transaction's status\n%s", why, out)
	}
	if d.Payment.ResponseCode == "00" {
		t.Errorf("stored response code 00 for a refused payment")
	}
	t.Logf("payments show:\n%s", out)
	if err := e.h.Stop(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
}
