package payments

import (
	"bytes"
	"context"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/store/sqlite"
	"github.com/acquit/acquit/sdk"
)

// TestRejectionLogCarriesRemoteAddr: the warning logged for a refused
// notification names the client address (as the stored raw input does),
// so an operator can tell a probing client from a misconfigured bank.
func TestRejectionLogCarriesRemoteAddr(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "acquit.db"), store.WithMigrations(Migrations()))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var logs bytes.Buffer
	svc := New(Deps{Store: st, Logger: zerolog.New(&logs), Config: Config{DefaultGateway: "sim", MaxBodyBytes: 1 << 16},
		Gateway: func(string) (sdk.PaymentGateway, error) { return nil, nil }})
	r := httptest.NewRequest("POST", "/notify/sim/automatic", strings.NewReader("Data=\xff\xfe"))
	r.RemoteAddr = "203.0.113.9:51234"
	res, err := svc.HandleNotification(context.Background(), "sim", sdk.ChannelAutomatic, r)
	if err != nil || res.Verdict != VerdictRejected {
		t.Fatalf("%+v %v", res, err)
	}
	if !strings.Contains(logs.String(), `"message":"notification rejected"`) || !strings.Contains(logs.String(), `"remote":"203.0.113.9"`) {
		t.Fatalf("rejection log without the remote address: %s", logs.String())
	}
}
