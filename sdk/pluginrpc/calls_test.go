package pluginrpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	spb "google.golang.org/genproto/googleapis/rpc/status"

	"github.com/acquit/acquit/sdk"
	pluginv1 "github.com/acquit/acquit/sdk/proto/acquit/plugin/v1"
)

// echoGateway answers VerifyNotification with the notification's body
// after its first byte as the reference, after the delay that byte asks for
// (in milliseconds), or, when it is 0xff, once gate is closed; it counts
// its Health calls.
type echoGateway struct {
	mu     sync.Mutex
	health int
	gate   chan struct{}
}

func (g *echoGateway) Describe(context.Context) (sdk.Info, error) {
	return sdk.Info{Name: "echo", Version: "1", Kind: sdk.KindPaymentGateway, ConfigSchema: `{}`}, nil
}
func (g *echoGateway) Configure(context.Context, []byte, sdk.Host) error { return nil }
func (g *echoGateway) Health(context.Context) error {
	g.mu.Lock()
	g.health++
	g.mu.Unlock()
	return nil
}
func (g *echoGateway) InitPayment(context.Context, sdk.PaymentRequest) (*sdk.PaymentInit, error) {
	return nil, sdk.ErrUnsupported
}
func (g *echoGateway) VerifyNotification(ctx context.Context, n sdk.Notification) (*sdk.PaymentResult, error) {
	wait := time.After(time.Duration(n.Body[0]) * time.Millisecond)
	if n.Body[0] == 0xff {
		wait = nil
	}
	select {
	case <-wait:
	case <-g.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &sdk.PaymentResult{Reference: string(n.Body[1:]), Outcome: sdk.OutcomeAccepted}, nil
}
func (g *echoGateway) QueryTransaction(context.Context, sdk.TransactionQuery) (*sdk.PaymentResult, error) {
	return nil, sdk.ErrUnsupported
}

// oldPluginServer is the common service of a plugin built before
// Plugin.Calls existed: Health only, Calls unimplemented.
type oldPluginServer struct {
	pluginv1.UnimplementedPluginServer
	p *PluginGRPCServer
}

func (o oldPluginServer) Health(ctx context.Context, r *pluginv1.HealthRequest) (*pluginv1.HealthResponse, error) {
	return o.p.Health(ctx, r)
}

// closingPluginServer is the common service of a live plugin that ends
// its Calls streams: while closing is set, a stream that receives a frame
// ends (its handler returns) without answering it.
type closingPluginServer struct {
	*PluginGRPCServer
	closing atomic.Bool
	closed  atomic.Int64
}

func (c *closingPluginServer) Calls(stream pluginv1.Plugin_CallsServer) error {
	return c.PluginGRPCServer.Calls(closingStream{stream, c})
}

// closingStream makes the Calls loop see the end of the stream instead
// of a frame received while closing is set.
type closingStream struct {
	pluginv1.Plugin_CallsServer
	c *closingPluginServer
}

func (s closingStream) Recv() (*pluginv1.CallFrame, error) {
	f, err := s.Plugin_CallsServer.Recv()
	if err == nil && s.c.closing.Load() {
		s.c.closed.Add(1)
		return nil, io.EOF
	}
	return f, err
}

// serveEcho serves an echoGateway over gRPC on a unix socket, as a plugin
// process would (without go-plugin: no broker is needed here), and
// returns the daemon's client for it and the server (stopped at the
// test's end). old serves it as a plugin without Plugin.Calls.
func serveEcho(t *testing.T, old bool) (*GatewayGRPCClient, *echoGateway, *grpc.Server) {
	t.Helper()
	var common pluginv1.PluginServer
	if old {
		common = oldPluginServer{}
	}
	return serveEchoWith(t, common)
}

// serveEchoWith is serveEcho with the common service served by common
// (wrapping the real one, which it is given), or the real one when nil.
func serveEchoWith(t *testing.T, common pluginv1.PluginServer) (*GatewayGRPCClient, *echoGateway, *grpc.Server) {
	t.Helper()
	impl := &echoGateway{gate: make(chan struct{})}
	sock := filepath.Join(t.TempDir(), "p.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	real := &PluginGRPCServer{}
	switch c := common.(type) {
	case nil:
	case oldPluginServer:
		c.p = real
		common = c
	case *closingPluginServer:
		c.PluginGRPCServer = real
	}
	if common != nil {
		// Register the wrapping common service first: add then sees the
		// server as taken and only records the kind.
		real.srv = srv
		pluginv1.RegisterPluginServer(srv, common)
	}
	gp := &GatewayPlugin{Impl: impl, Common: real}
	if err := gp.GRPCServer(nil, srv); err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("unix:"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c, err := gp.GRPCClient(context.Background(), nil, conn)
	if err != nil {
		t.Fatal(err)
	}
	gc := c.(*GatewayGRPCClient)
	t.Cleanup(gc.Close)
	return gc, impl, srv
}

// TestCallsConcurrentOutOfOrder: 64 calls in flight at once on Plugin.Calls
// streams, each caller gets its own answer, and the 56 fast calls all
// complete while the 8 slow ones (held in the plugin until a gate opens)
// are still waiting: a slow call does not hold up a fast one.
func TestCallsConcurrentOutOfOrder(t *testing.T) {
	g, impl, _ := serveEcho(t, false)
	ctx := context.Background()
	const n = 64
	errs := make([]error, n)
	var fast, slow sync.WaitGroup
	for i := 0; i < n; i++ {
		wait, wg := byte(1), &fast
		if i%8 == 0 {
			wait, wg = 0xff, &slow // answered once the gate opens
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ref := fmt.Sprint("ref-", i)
			res, err := g.VerifyNotification(ctx, sdk.Notification{Body: append([]byte{wait}, ref...)})
			switch {
			case err != nil:
				errs[i] = err
			case res.Reference != ref:
				errs[i] = fmt.Errorf("call %d got the answer for %q", i, res.Reference)
			}
		}()
	}
	fastDone := make(chan struct{})
	go func() { fast.Wait(); close(fastDone) }()
	select {
	case <-fastDone:
	case <-time.After(30 * time.Second): // a hang guard, not a speed bound
		t.Fatal("the fast calls did not complete while the slow ones were held: held up behind them")
	}
	close(impl.gate)
	slow.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("call %d: %v", i, err)
		}
	}
	g.calls.mu.Lock()
	idle, off := len(g.calls.idle), g.calls.off
	g.calls.mu.Unlock()
	if off || idle < 9 {
		t.Fatalf("the calls did not travel on Plugin.Calls streams (off %v, %d idle streams after 64 concurrent calls, 8 of them held together)", off, idle)
	}
}

// TestCallsFallBackToUnary: against a plugin built before Plugin.Calls,
// Health and VerifyNotification still work (unary), and the daemon stops
// trying the stream after the first refusal.
func TestCallsFallBackToUnary(t *testing.T) {
	g, impl, _ := serveEcho(t, true)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if err := g.Health(ctx); err != nil {
			t.Fatalf("Health on an old plugin: %v", err)
		}
		res, err := g.VerifyNotification(ctx, sdk.Notification{Body: []byte("\x00R1")})
		if err != nil || res.Reference != "R1" {
			t.Fatalf("VerifyNotification on an old plugin: %v, %v", res, err)
		}
	}
	g.calls.mu.Lock()
	off := g.calls.off
	g.calls.mu.Unlock()
	if !off {
		t.Fatal("the daemon kept trying Plugin.Calls on a plugin without it")
	}
	impl.mu.Lock()
	health := impl.health
	impl.mu.Unlock()
	if health != 3 {
		t.Fatalf("the plugin saw %d Health calls, want 3 (each exactly once)", health)
	}
}

// TestCallsStreamClosedByLivePlugin: a live plugin that ends the Calls
// stream a call travels on (without answering it) fails that call as
// Unavailable, at once, not as a hang or a typed plugin error; the
// closed stream is not reused, and the next calls work on fresh streams
// once the plugin answers again, without falling back to unary.
func TestCallsStreamClosedByLivePlugin(t *testing.T) {
	cs := &closingPluginServer{}
	g, _, _ := serveEchoWith(t, cs)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.Health(ctx); err != nil {
		t.Fatal(err)
	}
	cs.closing.Store(true)
	for i := 0; i < 2; i++ {
		_, err := g.VerifyNotification(ctx, sdk.Notification{Body: []byte("\x00R1")})
		var re *RemoteError
		if !errors.As(err, &re) || !re.Unavailable() {
			t.Fatalf("call %d on a stream the plugin closed: %v (%T), want Unavailable", i, err, err)
		}
	}
	if n := cs.closed.Load(); n != 2 {
		t.Fatalf("the plugin closed %d streams, want 2 (one per call: a closed stream is not reused)", n)
	}
	cs.closing.Store(false)
	for i := 0; i < 3; i++ {
		res, err := g.VerifyNotification(ctx, sdk.Notification{Body: []byte("\x00R2")})
		if err != nil || res.Reference != "R2" {
			t.Fatalf("call %d once the plugin answers again: %v, %v", i, res, err)
		}
	}
	g.calls.mu.Lock()
	off := g.calls.off
	g.calls.mu.Unlock()
	if off {
		t.Fatal("a closed stream made the daemon fall back to unary calls")
	}
}

// TestCallsUnknownMethod: a method the plugin does not carry on Calls is
// answered Unimplemented, which the daemon reads as sdk.ErrUnsupported,
// and the stream stays usable.
func TestCallsUnknownMethod(t *testing.T) {
	g, _, _ := serveEcho(t, false)
	ctx := context.Background()
	err := g.calls.call(ctx, "PaymentGateway/Refund", &pluginv1.HealthRequest{}, &pluginv1.HealthResponse{})
	if !errors.Is(err, sdk.ErrUnsupported) {
		t.Fatalf("unknown method: %v, want ErrUnsupported", err)
	}
	err = g.Health(ctx)
	g.calls.mu.Lock()
	off := g.calls.off
	g.calls.mu.Unlock()
	if err != nil || off {
		t.Fatalf("Health after an unknown method: %v (off %v)", err, off)
	}
}

// TestCallsPluginGone: when the plugin's server goes away, a call in
// flight and the next ones fail as Unavailable (what the supervisor
// restarts a plugin on), not as a hang or a typed plugin error.
func TestCallsPluginGone(t *testing.T) {
	g, _, srv := serveEcho(t, false)
	if err := g.Health(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := g.VerifyNotification(context.Background(), sdk.Notification{Body: []byte("\xffslow")})
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	srv.Stop() // closes the connections: the process is gone
	var re *RemoteError
	select {
	case err := <-done:
		if !errors.As(err, &re) || !re.Unavailable() {
			t.Fatalf("call in flight when the plugin went away: %v (%T), want Unavailable", err, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("call in flight hangs after the plugin went away")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.Health(ctx); !errors.As(err, &re) || !re.Unavailable() {
		t.Fatalf("Health after the plugin went away: %v (%T), want Unavailable", err, err)
	}
}

// TestCallsHostileFrames: frames a daemon would never send (an
// undecodable payload, an unknown method) get an error answer, and the
// plugin keeps serving the stream.
func TestCallsHostileFrames(t *testing.T) {
	g, _, _ := serveEcho(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := g.rpc.Calls(ctx)
	if err != nil {
		t.Fatal(err)
	}
	health := mustMarshal(t, &pluginv1.HealthRequest{Kind: string(sdk.KindPaymentGateway)})
	exchangeFrames(t, st, []frameCase{
		{"undecodable notification", &pluginv1.CallFrame{Id: 1, Method: callVerifyNotification, Payload: []byte{0xff, 0xff, 0xff}}, codes.InvalidArgument},
		{"unknown method", &pluginv1.CallFrame{Id: 2, Method: "Plugin/Shutdown", Payload: health}, codes.Unimplemented},
		{"unknown kind", &pluginv1.CallFrame{Id: 3, Method: callHealth, Payload: mustMarshal(t, &pluginv1.HealthRequest{Kind: "rootkit"})}, codes.Unimplemented},
		{"deadline passed", &pluginv1.CallFrame{Id: 4, Method: callVerifyNotification, Deadline: timestamppb.New(time.Now().Add(-time.Second)),
			Payload: mustMarshal(t, &pluginv1.Notification{Body: []byte("\x05R")})}, codes.DeadlineExceeded},
		{"good Health after them", &pluginv1.CallFrame{Id: 5, Method: callHealth, Payload: health}, codes.OK},
	})
}

// frameCase is a frame sent on a raw Calls stream and the status its
// answer must carry.
type frameCase struct {
	name string
	f    *pluginv1.CallFrame
	want codes.Code
}

// exchangeFrames sends each case's frame on st in turn and checks that
// its answer names the frame and carries the wanted status.
func exchangeFrames(t *testing.T, st grpc.BidiStreamingClient[pluginv1.CallFrame, pluginv1.CallFrame], cases []frameCase) {
	t.Helper()
	for _, tc := range cases {
		if err := st.Send(tc.f); err != nil {
			t.Fatalf("%s: send: %v", tc.name, err)
		}
		ans, err := st.Recv()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := codes.OK
		if len(ans.GetStatus()) > 0 {
			got = statusCode(t, ans.GetStatus())
		}
		if got != tc.want || ans.GetId() != tc.f.GetId() {
			t.Errorf("%s: answer %d with %v, want %d with %v", tc.name, ans.GetId(), got, tc.f.GetId(), tc.want)
		}
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func statusCode(t *testing.T, b []byte) codes.Code {
	t.Helper()
	var sp spb.Status
	if err := proto.Unmarshal(b, &sp); err != nil {
		t.Fatal(err)
	}
	return status.FromProto(&sp).Code()
}
