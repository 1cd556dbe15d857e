package adminclient

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// A call with its own deadline (the CLI's fetch-acks allows 30 minutes) is
// not cut by the client's default timeout, which bounds only the calls
// without one. The daemon here answers after 400 ms; the default is
// lowered to 100 ms to stand for the 60 s a fetch-acks of a 20 MiB report
// went past on a loaded machine.
func TestCallerDeadlineOverridesDefaultTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(400 * time.Millisecond)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"summary":"demobank/psr: 1 new"}`))
	}))
	defer srv.Close()
	c := New(srv.URL, "token")
	c.http.Timeout = 100 * time.Millisecond

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out map[string]string
	if _, err := c.Do(ctx, "POST", "/v1/banks/demobank/fetch-acks", nil, &out); err != nil || out["summary"] == "" {
		t.Fatalf("with a deadline of its own: %v %v", out, err)
	}
	_, err := c.Do(context.Background(), "POST", "/v1/banks/demobank/fetch-acks", nil, nil)
	var te interface{ Timeout() bool }
	if err == nil || !errors.As(err, &te) || !te.Timeout() {
		t.Fatalf("without a deadline, the default timeout must apply: %v", err)
	}
}
