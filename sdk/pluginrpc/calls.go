package pluginrpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pluginv1 "github.com/acquit/acquit/sdk/proto/acquit/plugin/v1"
)

// Plugin.Calls carries the small, frequent calls (Health,
// VerifyNotification) over one long-lived gRPC stream per plugin client:
// a unary gRPC call opens an HTTP/2 stream, sends and parses headers and
// trailers, and starts a handler goroutine, which on a unix socket costs
// about as much as the call itself (docs/benchmarks.md, plugin RPC). Each
// call is a request frame with an id and the protobuf-encoded request,
// answered by a frame with the same id and the encoded response, or the
// call's gRPC status exactly as the unary call would return it, so the
// daemon turns both into the same typed errors (fromStatus). A daemon
// talking to a plugin built before Calls existed gets Unimplemented on the
// stream and uses the unary calls from then on.

// Methods carried by Plugin.Calls.
const (
	callHealth             = "Plugin/Health"
	callVerifyNotification = "PaymentGateway/VerifyNotification"
)

// callHandler runs one call carried by Plugin.Calls on the plugin side.
type callHandler func(ctx context.Context, payload []byte) (proto.Message, error)

// addCall makes method available on Plugin.Calls.
func (p *PluginGRPCServer) addCall(method string, h callHandler) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.calls == nil {
		p.calls = map[string]callHandler{}
	}
	p.calls[method] = h
}

func (p *PluginGRPCServer) callHandler(method string) callHandler {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[method]
}

// Calls implements pluginv1.PluginServer: each request frame runs in its
// own goroutine, so a slow call does not hold up the others, and its
// answer is sent when it returns. A cancel frame cancels the call's
// context; when the stream ends every call still running is cancelled.
func (p *PluginGRPCServer) Calls(stream pluginv1.Plugin_CallsServer) error {
	ctx := stream.Context()
	var (
		sendMu   sync.Mutex
		mu       sync.Mutex
		inflight = map[uint64]context.CancelFunc{}
		wg       sync.WaitGroup
	)
	defer func() {
		mu.Lock()
		for _, cancel := range inflight {
			cancel()
		}
		mu.Unlock()
		wg.Wait()
	}()
	send := func(f *pluginv1.CallFrame) {
		sendMu.Lock()
		defer sendMu.Unlock()
		_ = stream.Send(f) // a broken stream ends the Recv loop below
	}
	for {
		f, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		id := f.GetId()
		if f.GetCancel() {
			mu.Lock()
			if cancel := inflight[id]; cancel != nil {
				cancel()
			}
			mu.Unlock()
			continue
		}
		var (
			cctx   context.Context
			cancel context.CancelFunc
		)
		if d := f.GetDeadline(); d != nil {
			cctx, cancel = context.WithDeadline(ctx, d.AsTime())
		} else {
			cctx, cancel = context.WithCancel(ctx)
		}
		mu.Lock()
		if _, dup := inflight[id]; dup {
			mu.Unlock()
			cancel()
			send(answerFrame(id, nil, status.Errorf(codes.InvalidArgument, "call id %d already in flight", id)))
			continue
		}
		inflight[id] = cancel
		mu.Unlock()
		h := p.callHandler(f.GetMethod())
		method := f.GetMethod()
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg, err := runCall(cctx, h, method, f.GetPayload())
			cancel()
			mu.Lock()
			delete(inflight, id)
			mu.Unlock()
			send(answerFrame(id, msg, err))
		}()
	}
}

// runCall runs h, turning a missing method into Unimplemented and a panic
// into Internal, as the unary server does.
func runCall(ctx context.Context, h callHandler, method string, payload []byte) (msg proto.Message, err error) {
	defer recoverToStatus(&err)
	if h == nil {
		return nil, status.Errorf(codes.Unimplemented, "Plugin.Calls does not carry %q", clip(method))
	}
	return h(ctx, payload)
}

// answerFrame encodes a call's outcome: the response, or its status.
func answerFrame(id uint64, msg proto.Message, err error) *pluginv1.CallFrame {
	f := &pluginv1.CallFrame{Id: id}
	if err == nil {
		if f.Payload, err = proto.Marshal(msg); err == nil {
			return f
		}
		err = status.Errorf(codes.Internal, "encode answer: %v", err)
	}
	f.Payload = nil
	if f.Status, err = proto.Marshal(status.Convert(err).Proto()); err != nil {
		f.Status, _ = proto.Marshal(status.New(codes.Internal, "encode status").Proto())
	}
	return f
}

// callStream is the daemon's side of Plugin.Calls for one plugin client:
// the stream is opened at the first call and opened again after it broke.
type callStream struct {
	rpc  pluginv1.PluginClient
	next atomic.Uint64
	mu   sync.Mutex
	cur  *callConn // nil until opened, or after it broke
	// off: the plugin does not serve Calls (built before it existed);
	// every call then goes the unary way.
	off    bool
	closed bool
}

// callConn is one opened Calls stream and the calls waiting on it.
type callConn struct {
	st      pluginv1.Plugin_CallsClient
	cancel  context.CancelFunc
	sendMu  sync.Mutex
	mu      sync.Mutex
	waiting map[uint64]chan callResult
	err     error // set when the stream broke: later calls fail with it
}

type callResult struct {
	f   *pluginv1.CallFrame
	err error // the stream broke before the answer
}

// errCallsOff tells the caller to use the unary call.
var errCallsOff = errors.New("plugin does not serve Plugin.Calls")

func (c *callStream) conn() (*callConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.off || c.closed {
		return nil, errCallsOff
	}
	if c.cur != nil {
		return c.cur, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	st, err := c.rpc.Calls(ctx, callOpts...)
	if err != nil {
		cancel()
		if status.Code(err) == codes.Unimplemented {
			c.off = true
			return nil, errCallsOff
		}
		return nil, err
	}
	cc := &callConn{st: st, cancel: cancel, waiting: map[uint64]chan callResult{}}
	c.cur = cc
	go c.read(cc)
	return cc, nil
}

// read delivers the answers of cc until it breaks, then fails the calls
// still waiting on it.
func (c *callStream) read(cc *callConn) {
	for {
		f, err := cc.st.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = status.Error(codes.Unavailable, "plugin closed the call stream")
			}
			c.mu.Lock()
			if c.cur == cc {
				c.cur = nil
			}
			if status.Code(err) == codes.Unimplemented {
				c.off = true
			}
			c.mu.Unlock()
			cc.cancel()
			cc.mu.Lock()
			cc.err = err
			for id, ch := range cc.waiting {
				ch <- callResult{err: err}
				delete(cc.waiting, id)
			}
			cc.mu.Unlock()
			return
		}
		cc.mu.Lock()
		ch := cc.waiting[f.GetId()]
		delete(cc.waiting, f.GetId())
		cc.mu.Unlock()
		if ch != nil {
			ch <- callResult{f: f}
		}
	}
}

// close ends the stream; later calls use the unary way.
func (c *callStream) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.cur != nil {
		c.cur.cancel()
		c.cur = nil
	}
}

// call makes one call over Plugin.Calls and decodes the answer into resp.
// It returns errCallsOff when the plugin does not serve Calls, and then
// nothing was sent that the plugin acted on. Other errors are the call's,
// converted as for the unary call.
func (c *callStream) call(ctx context.Context, method string, req, resp proto.Message) error {
	wire := method
	method = method[strings.LastIndexByte(method, '/')+1:] // as the unary call names it in errors
	if err := ctx.Err(); err != nil {
		return fromStatus(ctx, method, status.FromContextError(err).Err())
	}
	payload, err := proto.Marshal(req)
	if err != nil {
		return fmt.Errorf("plugin %s: encode: %w", method, err)
	}
	cc, err := c.conn()
	if err != nil {
		if errors.Is(err, errCallsOff) {
			return err
		}
		return fromStatus(ctx, method, err)
	}
	id := c.next.Add(1)
	ch := make(chan callResult, 1)
	cc.mu.Lock()
	if cc.err != nil {
		err := cc.err
		cc.mu.Unlock()
		return c.broken(ctx, method, err)
	}
	cc.waiting[id] = ch
	cc.mu.Unlock()
	f := &pluginv1.CallFrame{Id: id, Method: wire, Payload: payload}
	if d, ok := ctx.Deadline(); ok {
		f.Deadline = timestamppb.New(d)
	}
	cc.sendMu.Lock()
	err = cc.st.Send(f)
	cc.sendMu.Unlock()
	if err != nil && !errors.Is(err, io.EOF) {
		// io.EOF: the stream broke, and read delivers the reason.
		cc.mu.Lock()
		delete(cc.waiting, id)
		cc.mu.Unlock()
		return fromStatus(ctx, method, err)
	}
	select {
	case r := <-ch:
		if r.err != nil {
			return c.broken(ctx, method, r.err)
		}
		if len(r.f.GetStatus()) > 0 {
			var sp spb.Status
			if err := proto.Unmarshal(r.f.GetStatus(), &sp); err != nil {
				return &RemoteError{Method: method, Code: codes.Internal, Message: "undecodable status: " + err.Error()}
			}
			return fromStatus(ctx, method, status.FromProto(&sp).Err())
		}
		if err := proto.Unmarshal(r.f.GetPayload(), resp); err != nil {
			return &RemoteError{Method: method, Code: codes.Internal, Message: "undecodable answer: " + err.Error()}
		}
		return nil
	case <-ctx.Done():
		cc.mu.Lock()
		delete(cc.waiting, id)
		cc.mu.Unlock()
		cc.sendMu.Lock()
		_ = cc.st.Send(&pluginv1.CallFrame{Id: id, Cancel: true})
		cc.sendMu.Unlock()
		return fromStatus(ctx, method, status.FromContextError(ctx.Err()).Err())
	}
}

// broken is the error of a call whose stream broke: errCallsOff when the
// plugin turned out not to serve Calls (the call never ran there),
// otherwise the stream's error as the unary call would have reported it.
func (c *callStream) broken(ctx context.Context, method string, err error) error {
	if status.Code(err) == codes.Unimplemented {
		return errCallsOff
	}
	return fromStatus(ctx, method, err)
}
