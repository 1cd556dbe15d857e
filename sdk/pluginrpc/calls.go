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
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pluginv1 "github.com/acquit/acquit/sdk/proto/acquit/plugin/v1"
)

// Plugin.Calls carries the small, frequent calls (Health,
// VerifyNotification) over long-lived gRPC streams: a unary gRPC call opens
// an HTTP/2 stream, sends and parses headers and trailers, and starts a
// handler goroutine, which on a unix socket costs about as much as the
// round trip itself (docs/benchmarks.md, plugin RPC). A stream carries one
// call at a time: the daemon sends a request frame (method, the
// protobuf-encoded request, its deadline) and the plugin answers with the
// encoded response, or with the call's gRPC status exactly as the unary
// call would return it, so the daemon turns both into the same typed
// errors (fromStatus). The daemon keeps idle streams for the next calls
// and opens another when all are busy; a caller that gives up cancels its
// stream, which cancels the call in the plugin. A plugin built before
// Calls existed answers Unimplemented, and the daemon uses the unary calls
// for it from then on.

// Host.Calls is the same the other way, for the plugin's calls back to the
// daemon's Host (state and sequences), which a webhook's verification may
// make on every notification.

// Methods carried by Plugin.Calls and Host.Calls.
const (
	callHealth             = "Plugin/Health"
	callVerifyNotification = "PaymentGateway/VerifyNotification"
	callStateGet           = "Host/StateGet"
	callStatePut           = "Host/StatePut"
	callNextSequence       = "Host/NextSequence"
)

// frameStream is one end of a Calls stream, either service's.
type frameStream interface {
	Send(*pluginv1.CallFrame) error
	Recv() (*pluginv1.CallFrame, error)
	Context() context.Context
}

// callHandler runs one call carried by a Calls stream on the answering
// side (the plugin's for Plugin.Calls, the daemon's for Host.Calls).
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

// unaryCall carries a unary server method on Plugin.Calls: the payload is
// decoded into a new request (what (named) means in the error of an
// undecodable one) and handed to method, whose answer and error are those
// of the unary call.
func unaryCall[Req, Resp proto.Message](named string, newReq func() Req, method func(context.Context, Req) (Resp, error)) callHandler {
	return func(ctx context.Context, payload []byte) (proto.Message, error) {
		req := newReq()
		if err := proto.Unmarshal(payload, req); err != nil {
			return nil, status.Error(codes.InvalidArgument, named+": "+err.Error())
		}
		return method(ctx, req)
	}
}

func (p *PluginGRPCServer) callHandler(method string) callHandler {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[method]
}

// Calls implements pluginv1.PluginServer: the frames of one stream are
// answered in turn, each call running with the stream's context (cancelled
// when the daemon gives up on it) and the frame's deadline.
func (p *PluginGRPCServer) Calls(stream pluginv1.Plugin_CallsServer) error {
	return serveCalls(stream, "Plugin.Calls", p.callHandler)
}

// serveCalls answers the frames of one Calls stream in turn, finding each
// method's handler with lookup (service names the stream in errors).
func serveCalls(stream frameStream, service string, lookup func(method string) callHandler) error {
	ctx := stream.Context()
	for {
		f, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		cctx, cancel := ctx, context.CancelFunc(func() {})
		if d := f.GetDeadline(); d != nil {
			cctx, cancel = context.WithDeadline(ctx, d.AsTime())
		}
		var msg proto.Message
		if err = cctx.Err(); err != nil {
			// Given up already (deadline passed, stream cancelled): not run.
			err = status.FromContextError(err).Err()
		} else {
			msg, err = runCall(cctx, lookup(f.GetMethod()), service, f.GetMethod(), f.GetPayload())
		}
		cancel()
		if err := stream.Send(answerFrame(f.GetId(), msg, err)); err != nil {
			return err
		}
	}
}

// runCall runs h, turning a missing method into Unimplemented and a panic
// into Internal, as the unary server does.
func runCall(ctx context.Context, h callHandler, service, method string, payload []byte) (msg proto.Message, err error) {
	defer recoverToStatus(&err)
	if h == nil {
		return nil, status.Errorf(codes.Unimplemented, "%s does not carry %q", service, clip(method))
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

// maxIdleCallStreams bounds the idle streams a client keeps for reuse.
const maxIdleCallStreams = 64

// callStream is the calling side of a Calls stream (the daemon's of
// Plugin.Calls for one plugin client, the plugin's of Host.Calls): a pool
// of idle streams, each carrying one call at a time.
type callStream struct {
	// open opens one more stream (the generated client's Calls).
	open func(ctx context.Context, opts ...grpc.CallOption) (grpc.BidiStreamingClient[pluginv1.CallFrame, pluginv1.CallFrame], error)
	// prefix is put before the method's name in errors ("sdk.Host." for
	// the Host's, nothing for the plugin's, as the unary calls name them).
	prefix string
	next   atomic.Uint64
	mu     sync.Mutex
	idle   []*callConn
	// off: the other side does not serve Calls (built before it
	// existed); every call then goes the unary way.
	off    bool
	closed bool
}

// callConn is one opened Calls stream.
type callConn struct {
	st     grpc.BidiStreamingClient[pluginv1.CallFrame, pluginv1.CallFrame]
	cancel context.CancelFunc
}

// errCallsOff tells the caller to use the unary call.
var errCallsOff = errors.New("the other side does not serve Calls")

// get returns an idle stream, or opens one.
func (c *callStream) get() (*callConn, error) {
	c.mu.Lock()
	if c.off || c.closed {
		c.mu.Unlock()
		return nil, errCallsOff
	}
	if n := len(c.idle); n > 0 {
		cc := c.idle[n-1]
		c.idle[n-1] = nil
		c.idle = c.idle[:n-1]
		c.mu.Unlock()
		return cc, nil
	}
	c.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := c.open(ctx, callOpts...)
	if err != nil {
		cancel()
		return nil, err
	}
	return &callConn{st: st, cancel: cancel}, nil
}

// put gives a stream whose call completed back to the pool.
func (c *callStream) put(cc *callConn) {
	c.mu.Lock()
	if c.closed || c.off || len(c.idle) >= maxIdleCallStreams {
		c.mu.Unlock()
		cc.cancel()
		return
	}
	c.idle = append(c.idle, cc)
	c.mu.Unlock()
}

// close ends the idle streams; later calls use the unary way.
func (c *callStream) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, cc := range c.idle {
		cc.cancel()
	}
	c.idle = nil
}

// call makes one call over Plugin.Calls and decodes the answer into resp.
// It returns errCallsOff when the plugin does not serve Calls; the plugin
// then did not run the call. Other errors are the call's, converted as for
// the unary call.
func (c *callStream) call(ctx context.Context, method string, req, resp proto.Message) error {
	wire := method
	method = c.name(method)
	if err := ctx.Err(); err != nil {
		return fromStatus(ctx, method, status.FromContextError(err).Err())
	}
	payload, err := proto.Marshal(req)
	if err != nil {
		return fmt.Errorf("plugin %s: encode: %w", method, err)
	}
	f := &pluginv1.CallFrame{Id: c.next.Add(1), Method: wire, Payload: payload}
	if d, ok := ctx.Deadline(); ok {
		f.Deadline = timestamppb.New(d)
	}
	cc, err := c.get()
	if err != nil {
		if errors.Is(err, errCallsOff) {
			return err
		}
		return fromStatus(ctx, method, err)
	}
	// The caller giving up cancels the stream, and so the call in the
	// plugin; the stream is then not reused.
	stop := context.AfterFunc(ctx, cc.cancel)
	ans, err := cc.exchange(f)
	if !stop() {
		cc.cancel()
		return fromStatus(ctx, method, status.FromContextError(ctx.Err()).Err())
	}
	if err != nil {
		cc.cancel()
		if status.Code(err) == codes.Unimplemented {
			c.mu.Lock()
			c.off = true
			c.mu.Unlock()
			return errCallsOff
		}
		return fromStatus(ctx, method, err)
	}
	if ans.GetId() != f.GetId() {
		cc.cancel()
		return &RemoteError{Method: method, Code: codes.Internal, Message: fmt.Sprintf("answer for call %d, want %d", ans.GetId(), f.GetId())}
	}
	c.put(cc)
	if len(ans.GetStatus()) > 0 {
		var sp spb.Status
		if err := proto.Unmarshal(ans.GetStatus(), &sp); err != nil {
			return &RemoteError{Method: method, Code: codes.Internal, Message: "undecodable status: " + err.Error()}
		}
		return fromStatus(ctx, method, status.FromProto(&sp).Err())
	}
	if err := proto.Unmarshal(ans.GetPayload(), resp); err != nil {
		return &RemoteError{Method: method, Code: codes.Internal, Message: "undecodable answer: " + err.Error()}
	}
	return nil
}

// name is method as its unary call is named in errors ("Health",
// "sdk.Host.StateGet").
func (c *callStream) name(method string) string {
	return c.prefix + method[strings.LastIndexByte(method, '/')+1:]
}

// callOrUnary makes one call on c's streams or, when the other side does
// not serve them, with its unary RPC; either way the errors are those of
// the unary call, named as it names them.
func callOrUnary[Req, Resp proto.Message](ctx context.Context, c *callStream, method string, req Req, resp Resp,
	unary func(context.Context, Req, ...grpc.CallOption) (Resp, error)) (Resp, error) {
	err := c.call(ctx, method, req, resp)
	if !errors.Is(err, errCallsOff) {
		return resp, err
	}
	r, err := unary(ctx, req, callOpts...)
	return r, fromStatus(ctx, c.name(method), err)
}

// exchange sends f and reads its answer. A stream that ended gives the
// reason as Recv reports it (Send only says io.EOF).
func (cc *callConn) exchange(f *pluginv1.CallFrame) (*pluginv1.CallFrame, error) {
	if err := cc.st.Send(f); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	ans, err := cc.st.Recv()
	if errors.Is(err, io.EOF) {
		err = status.Error(codes.Unavailable, "plugin closed the call stream")
	}
	return ans, err
}
