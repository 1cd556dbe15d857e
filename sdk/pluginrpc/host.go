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

// HostGRPCClient is the Host a plugin receives in Configure: each call
// goes back to the daemon over the go-plugin broker.
type HostGRPCClient struct {
	client pluginv1.HostClient
}

var _ sdk.Host = (*HostGRPCClient)(nil)

// StateGet implements Host.
func (c *HostGRPCClient) StateGet(ctx context.Context, key string) ([]byte, int64, error) {
	r, err := c.client.StateGet(ctx, &pluginv1.StateGetRequest{Key: key})
	if err != nil {
		return nil, 0, fromStatus(ctx, "sdk.Host.StateGet", err)
	}
	if !r.GetFound() {
		return nil, 0, nil
	}
	return r.GetValue(), r.GetVersion(), nil
}

// StatePut implements Host.
func (c *HostGRPCClient) StatePut(ctx context.Context, key string, value []byte, version int64) (int64, error) {
	r, err := c.client.StatePut(ctx, &pluginv1.StatePutRequest{Key: key, Value: value, Version: version})
	if err != nil {
		return 0, fromStatus(ctx, "sdk.Host.StatePut", err)
	}
	return r.GetVersion(), nil
}

// NextSequence implements Host.
func (c *HostGRPCClient) NextSequence(ctx context.Context, name string) (int64, error) {
	r, err := c.client.NextSequence(ctx, &pluginv1.NextSequenceRequest{Name: name})
	if err != nil {
		return 0, fromStatus(ctx, "sdk.Host.NextSequence", err)
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
	h := &HostGRPCClient{client: pluginv1.NewHostClient(conn)}
	if err := apply(h); err != nil {
		_ = conn.Close()
		return err
	}
	if d.conn != nil {
		_ = d.conn.Close()
	}
	d.id, d.conn, d.host = id, conn, h
	return nil
}
