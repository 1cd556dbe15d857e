package pluginrpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/acquit/acquit/sdk"
	"github.com/acquit/acquit/sdk/internal/memhost"
	pluginv1 "github.com/acquit/acquit/sdk/proto/acquit/plugin/v1"
)

// countingHostServer is the daemon's Host server counting the unary calls
// it serves; old serves it as a daemon built before Host.Calls.
type countingHostServer struct {
	*HostGRPCServer
	unary atomic.Int64
	old   bool
}

func (s *countingHostServer) StateGet(ctx context.Context, r *pluginv1.StateGetRequest) (*pluginv1.StateGetResponse, error) {
	s.unary.Add(1)
	return s.HostGRPCServer.StateGet(ctx, r)
}

func (s *countingHostServer) StatePut(ctx context.Context, r *pluginv1.StatePutRequest) (*pluginv1.StatePutResponse, error) {
	s.unary.Add(1)
	return s.HostGRPCServer.StatePut(ctx, r)
}

func (s *countingHostServer) NextSequence(ctx context.Context, r *pluginv1.NextSequenceRequest) (*pluginv1.NextSequenceResponse, error) {
	s.unary.Add(1)
	return s.HostGRPCServer.NextSequence(ctx, r)
}

func (s *countingHostServer) Calls(stream pluginv1.Host_CallsServer) error {
	if s.old {
		return pluginv1.UnimplementedHostServer{}.Calls(stream)
	}
	return s.HostGRPCServer.Calls(stream)
}

// serveHostTest serves a Host on a unix socket, as the daemon does over
// the broker, and returns the plugin's client for it.
func serveHostTest(t *testing.T, old bool) (*HostGRPCClient, *countingHostServer) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "h.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(sdk.MaxStateValueLen + 64<<10))
	hs := &countingHostServer{HostGRPCServer: &HostGRPCServer{Impl: memhost.New()}, old: old}
	pluginv1.RegisterHostServer(srv, hs)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("unix:"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := newHostClient(conn)
	t.Cleanup(c.close)
	return c, hs
}

// useHost runs the Host calls a plugin makes and checks their answers:
// a missing key, a put, a stale put (ErrConflict), a get, a sequence, and
// a refused key (InvalidArgument).
func useHost(t *testing.T, h sdk.Host) {
	t.Helper()
	ctx := context.Background()
	if v, ver, err := h.StateGet(ctx, "k"); err != nil || v != nil || ver != 0 {
		t.Fatalf("missing key: %q %d %v", v, ver, err)
	}
	if ver, err := h.StatePut(ctx, "k", []byte("v1"), 0); err != nil || ver != 1 {
		t.Fatalf("put: %d %v", ver, err)
	}
	if _, err := h.StatePut(ctx, "k", []byte("v2"), 0); !errors.Is(err, sdk.ErrConflict) || !strings.HasPrefix(fmt.Sprint(err), "plugin sdk.Host.StatePut") {
		t.Fatalf("stale put: %v, want ErrConflict named sdk.Host.StatePut", err)
	}
	if v, ver, err := h.StateGet(ctx, "k"); err != nil || string(v) != "v1" || ver != 1 {
		t.Fatalf("get: %q %d %v", v, ver, err)
	}
	if n, err := h.NextSequence(ctx, "s"); err != nil || n != 1 {
		t.Fatalf("sequence: %d %v", n, err)
	}
	var re *RemoteError
	if _, _, err := h.StateGet(ctx, ""); !errors.As(err, &re) || re.Code != codes.InvalidArgument || re.Method != "sdk.Host.StateGet" {
		t.Fatalf("empty key: %v, want InvalidArgument from sdk.Host.StateGet", err)
	}
}

// TestHostCalls: the plugin's Host calls travel on Host.Calls streams (the
// daemon serves no unary Host call), with the answers and typed errors of
// the unary calls, and concurrent calls each get their own answer.
func TestHostCalls(t *testing.T) {
	c, hs := serveHostTest(t, false)
	useHost(t, c)
	var wg sync.WaitGroup
	errs := make([]error, 32)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.NextSequence(context.Background(), "par")
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent call %d: %v", i, err)
		}
	}
	if n, err := c.NextSequence(context.Background(), "par"); err != nil || n != 33 {
		t.Fatalf("after 32 concurrent calls the sequence gives %d, %v; want 33", n, err)
	}
	c.calls.mu.Lock()
	off, idle := c.calls.off, len(c.calls.idle)
	c.calls.mu.Unlock()
	if off || idle < 1 || hs.unary.Load() != 0 {
		t.Fatalf("Host calls did not travel on Host.Calls (off %v, %d idle streams, %d unary calls served)", off, idle, hs.unary.Load())
	}
}

// TestHostCallsFallBackToUnary: against a daemon built before Host.Calls,
// every Host call still works (unary), and the plugin stops trying the
// stream after the first refusal.
func TestHostCallsFallBackToUnary(t *testing.T) {
	c, hs := serveHostTest(t, true)
	useHost(t, c)
	c.calls.mu.Lock()
	off := c.calls.off
	c.calls.mu.Unlock()
	if !off {
		t.Fatal("the plugin kept trying Host.Calls on a daemon without it")
	}
	if n := hs.unary.Load(); n != 6 {
		t.Fatalf("the daemon served %d unary Host calls, want 6 (each call exactly once)", n)
	}
}

// TestHostCallsHostileFrames: frames a plugin built with the sdk would
// never send (an undecodable payload, an unknown method, a refused key,
// an oversized value, a passed deadline) each get an error answer, the
// store is not touched, and the daemon keeps serving the stream.
func TestHostCallsHostileFrames(t *testing.T) {
	c, _ := serveHostTest(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.client.Calls(ctx)
	if err != nil {
		t.Fatal(err)
	}
	exchangeFrames(t, st, []frameCase{
		{"undecodable request", &pluginv1.CallFrame{Id: 1, Method: callStatePut, Payload: []byte{0xff, 0xff, 0xff}}, codes.InvalidArgument},
		{"unknown method", &pluginv1.CallFrame{Id: 2, Method: "Host/StateDelete", Payload: mustMarshal(t, &pluginv1.StateGetRequest{Key: "k"})}, codes.Unimplemented},
		{"a plugin method", &pluginv1.CallFrame{Id: 3, Method: callHealth, Payload: mustMarshal(t, &pluginv1.HealthRequest{})}, codes.Unimplemented},
		{"control characters in the key", &pluginv1.CallFrame{Id: 4, Method: callStatePut, Payload: mustMarshal(t, &pluginv1.StatePutRequest{Key: "a\x00b", Value: []byte("x")})}, codes.InvalidArgument},
		{"oversized value", &pluginv1.CallFrame{Id: 5, Method: callStatePut, Payload: mustMarshal(t, &pluginv1.StatePutRequest{Key: "big", Value: make([]byte, sdk.MaxStateValueLen+1)})}, codes.InvalidArgument},
		{"deadline passed", &pluginv1.CallFrame{Id: 6, Method: callNextSequence, Deadline: timestamppb.New(time.Now().Add(-time.Second)),
			Payload: mustMarshal(t, &pluginv1.NextSequenceRequest{Name: "late"})}, codes.DeadlineExceeded},
		{"good get after them", &pluginv1.CallFrame{Id: 7, Method: callStateGet, Payload: mustMarshal(t, &pluginv1.StateGetRequest{Key: "big"})}, codes.OK},
	})
	// Nothing the refused frames carried reached the store.
	if v, ver, err := c.StateGet(ctx, "big"); err != nil || v != nil || ver != 0 {
		t.Fatalf("refused put stored: %q %d %v", v, ver, err)
	}
	if n, err := c.NextSequence(ctx, "late"); err != nil || n != 1 {
		t.Fatalf("expired call advanced the sequence: next is %d, %v", n, err)
	}
}
