package pluginrpc

import (
	"context"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/acquit/acquit/sdk"
	pluginv1 "github.com/acquit/acquit/sdk/proto/acquit/plugin/v1"
)

// HostGRPCServer serves an Host (the daemon's store, scoped to one
// plugin) to a plugin process. It treats every request as hostile and
// validates keys, names, sizes and versions before touching the store.
type HostGRPCServer struct {
	pluginv1.UnimplementedHostServer
	Impl sdk.Host
}

func checkName(what, s string) error {
	switch {
	case s == "":
		return status.Errorf(codes.InvalidArgument, "empty %s", what)
	case len(s) > sdk.MaxStateKeyLen:
		return status.Errorf(codes.InvalidArgument, "%s longer than %d bytes", what, sdk.MaxStateKeyLen)
	case !utf8.ValidString(s):
		return status.Errorf(codes.InvalidArgument, "%s is not valid UTF-8", what)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return status.Errorf(codes.InvalidArgument, "%s contains control characters", what)
		}
	}
	return nil
}

// StateGet implements pluginv1.HostServer.
func (s *HostGRPCServer) StateGet(ctx context.Context, req *pluginv1.StateGetRequest) (*pluginv1.StateGetResponse, error) {
	if err := checkName("state key", req.GetKey()); err != nil {
		return nil, err
	}
	v, ver, err := s.Impl.StateGet(ctx, req.GetKey())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.StateGetResponse{Value: v, Version: ver, Found: ver != 0}, nil
}

// StatePut implements pluginv1.HostServer.
func (s *HostGRPCServer) StatePut(ctx context.Context, req *pluginv1.StatePutRequest) (*pluginv1.StatePutResponse, error) {
	if err := checkName("state key", req.GetKey()); err != nil {
		return nil, err
	}
	if len(req.GetValue()) > sdk.MaxStateValueLen {
		return nil, status.Errorf(codes.InvalidArgument, "state value of %d bytes exceeds %d", len(req.GetValue()), sdk.MaxStateValueLen)
	}
	if req.GetVersion() < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "negative state version %d", req.GetVersion())
	}
	ver, err := s.Impl.StatePut(ctx, req.GetKey(), req.GetValue(), req.GetVersion())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.StatePutResponse{Version: ver}, nil
}

// NextSequence implements pluginv1.HostServer.
func (s *HostGRPCServer) NextSequence(ctx context.Context, req *pluginv1.NextSequenceRequest) (*pluginv1.NextSequenceResponse, error) {
	if err := checkName("sequence name", req.GetName()); err != nil {
		return nil, err
	}
	v, err := s.Impl.NextSequence(ctx, req.GetName())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.NextSequenceResponse{Value: v}, nil
}

// Calls implements pluginv1.HostServer: Host.Calls, the plugin's Host
// calls over long-lived streams, each answered as its unary call is (the
// same checks, the same errors).
func (s *HostGRPCServer) Calls(stream pluginv1.Host_CallsServer) error {
	return serveCalls(stream, "Host.Calls", s.callHandler)
}

// callHandler returns the handler of a Host.Calls method, or nil.
func (s *HostGRPCServer) callHandler(method string) callHandler {
	switch method {
	case callStateGet:
		return unaryCall("StateGetRequest", func() *pluginv1.StateGetRequest { return &pluginv1.StateGetRequest{} }, s.StateGet)
	case callStatePut:
		return unaryCall("StatePutRequest", func() *pluginv1.StatePutRequest { return &pluginv1.StatePutRequest{} }, s.StatePut)
	case callNextSequence:
		return unaryCall("NextSequenceRequest", func() *pluginv1.NextSequenceRequest { return &pluginv1.NextSequenceRequest{} }, s.NextSequence)
	}
	return nil
}

// HostGRPCClient is the Host a plugin receives in Configure: each call
// goes back to the daemon over the go-plugin broker, on a Host.Calls
// stream (the unary call when the daemon has no Host.Calls).
type HostGRPCClient struct {
	client pluginv1.HostClient
	calls  *callStream
}

var _ sdk.Host = (*HostGRPCClient)(nil)

// newHostClient returns the Host client on conn.
func newHostClient(conn grpc.ClientConnInterface) *HostGRPCClient {
	client := pluginv1.NewHostClient(conn)
	return &HostGRPCClient{client: client, calls: &callStream{open: client.Calls, prefix: "sdk.Host."}}
}

// close ends the client's idle Host.Calls streams.
func (c *HostGRPCClient) close() { c.calls.close() }

// StateGet implements Host.
func (c *HostGRPCClient) StateGet(ctx context.Context, key string) ([]byte, int64, error) {
	r, err := callOrUnary(ctx, c.calls, callStateGet, &pluginv1.StateGetRequest{Key: key}, &pluginv1.StateGetResponse{}, c.client.StateGet)
	if err != nil {
		return nil, 0, err
	}
	if !r.GetFound() {
		return nil, 0, nil
	}
	return r.GetValue(), r.GetVersion(), nil
}

// StatePut implements Host.
func (c *HostGRPCClient) StatePut(ctx context.Context, key string, value []byte, version int64) (int64, error) {
	r, err := callOrUnary(ctx, c.calls, callStatePut, &pluginv1.StatePutRequest{Key: key, Value: value, Version: version}, &pluginv1.StatePutResponse{}, c.client.StatePut)
	if err != nil {
		return 0, err
	}
	return r.GetVersion(), nil
}

// NextSequence implements Host.
func (c *HostGRPCClient) NextSequence(ctx context.Context, name string) (int64, error) {
	r, err := callOrUnary(ctx, c.calls, callNextSequence, &pluginv1.NextSequenceRequest{Name: name}, &pluginv1.NextSequenceResponse{}, c.client.NextSequence)
	if err != nil {
		return 0, err
	}
	return r.GetValue(), nil
}

// hostServing is one Host served by the daemon on a broker id.
type hostServing struct {
	id    uint32
	host  sdk.Host
	srvCh chan *grpc.Server
	once  sync.Once
}

// serveHost starts serving host on a fresh broker id.
func serveHost(broker *plugin.GRPCBroker, host sdk.Host) *hostServing {
	hs := &hostServing{id: broker.NextId(), host: host, srvCh: make(chan *grpc.Server, 1)}
	go broker.AcceptAndServe(hs.id, func(opts []grpc.ServerOption) *grpc.Server {
		opts = append(opts, grpc.MaxRecvMsgSize(sdk.MaxStateValueLen+64<<10))
		opts = append(opts, serverOptions()...)
		s := grpc.NewServer(opts...)
		pluginv1.RegisterHostServer(s, &HostGRPCServer{Impl: host})
		hs.srvCh <- s
		return s
	})
	return hs
}

// stop stops the Host server (once it exists).
func (hs *hostServing) stop() {
	if hs == nil {
		return
	}
	hs.once.Do(func() {
		go func() {
			select {
			case s := <-hs.srvCh:
				s.Stop()
			case <-time.After(30 * time.Second):
			}
		}()
	})
}

// hostDialer is the plugin side: it keeps the connection to the Host the
// daemon offered in the last successful Configure.
type hostDialer struct {
	mu     sync.Mutex
	broker *plugin.GRPCBroker
	id     uint32
	conn   *grpc.ClientConn
	host   *HostGRPCClient
}

// configure dials the host on id (reusing the current connection when the
// id did not change) and runs apply with it; the new connection replaces
// the old one only when apply succeeds.
func (d *hostDialer) configure(id uint32, apply func(sdk.Host) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if id == 0 {
		return apply(nil)
	}
	if id == d.id && d.host != nil {
		return apply(d.host)
	}
	conn, err := d.broker.DialWithOptions(id, DialOptions()...)
	if err != nil {
		return fmt.Errorf("dial host on broker id %d: %w", id, err)
	}
	h := newHostClient(conn)
	if err := apply(h); err != nil {
		h.close()
		_ = conn.Close()
		return err
	}
	if d.conn != nil {
		d.host.close()
		_ = d.conn.Close()
	}
	d.id, d.conn, d.host = id, conn, h
	return nil
}
