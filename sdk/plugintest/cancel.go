package plugintest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/acquit/acquit/sdk"
)

// CancelWait bounds how long checkCancellation waits for each step (the
// call reaching the provider, the call returning after cancel, the plugin
// dropping its provider request).
var CancelWait = 10 * time.Second

// checkCancellation serves a provider that never answers, starts call on a
// plugin configured against it, cancels the call's context once the
// provider holds the plugin's request, and checks that the call returns
// context.Canceled and that the plugin abandons its request: a plugin that
// ignores its context keeps the request open and fails here.
func checkCancellation(t *testing.T, setup func(url string) sdk.Plugin, call func(context.Context, sdk.Plugin) error) {
	t.Helper()
	wait := CancelWait
	if BrokenVariant() != "" && wait > brokenCancelWait {
		wait = brokenCancelWait
	}
	arrived := make(chan struct{}, 64)
	abandoned := make(chan struct{}, 64)
	release := make(chan struct{})
	hole := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The server notices a client hanging up only once the body is read.
		_, _ = io.Copy(io.Discard, r.Body)
		arrived <- struct{}{}
		select {
		case <-r.Context().Done():
			abandoned <- struct{}{}
		case <-release:
		}
	}))
	var once sync.Once
	stop := func() { once.Do(func() { close(release); hole.CloseClientConnections(); hole.Close() }) }
	t.Cleanup(stop)

	p := setup(hole.URL)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- call(ctx, p) }()
	select {
	case <-arrived:
	case err := <-done:
		t.Fatalf("the call returned (%v) without reaching the hanging provider", err)
	case <-time.After(wait):
		t.Fatalf("the call did not reach the hanging provider within %s", wait)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled call: got %v, want context.Canceled", err)
		}
	case <-time.After(wait):
		t.Fatalf("cancelled call still running after %s", wait)
	}
	select {
	case <-abandoned:
	case <-time.After(wait):
		t.Errorf("the plugin ignored the cancellation: its request to the provider was still open %s later", wait)
	}
}
