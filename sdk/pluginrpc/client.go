package pluginrpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sync"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/acquit/acquit/sdk"
	pluginv1 "github.com/acquit/acquit/sdk/proto/acquit/plugin/v1"
)

// GatewayPlugin is the go-plugin glue for PaymentGateway: Impl is set in
// the plugin process, left nil in the daemon. Common, when set, is shared
// with the other kinds the process serves (Serve does that).
type GatewayPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl   sdk.PaymentGateway
	Common *PluginGRPCServer
}

var _ plugin.GRPCPlugin = (*GatewayPlugin)(nil)

// GRPCServer implements plugin.GRPCPlugin.
func (p *GatewayPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return errors.New("gateway plugin: no implementation to serve")
	}
	if p.Common == nil {
		p.Common = &PluginGRPCServer{}
	}
	p.Common.add(s, sdk.KindPaymentGateway, p.Impl, broker)
	gs := &GatewayGRPCServer{Impl: p.Impl}
	pluginv1.RegisterPaymentGatewayServer(s, gs)
	p.Common.addCall(callVerifyNotification, unaryCall("Notification", func() *pluginv1.Notification { return &pluginv1.Notification{} }, gs.VerifyNotification))
	return nil
}

// GRPCClient implements plugin.GRPCPlugin.
func (p *GatewayPlugin) GRPCClient(ctx context.Context, broker *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &GatewayGRPCClient{client: pluginv1.NewPaymentGatewayClient(c), commonClient: newCommonClient(ctx, sdk.KindPaymentGateway, broker, c)}, nil
}

// TransportPlugin is the go-plugin glue for BankTransport: Impl is set in
// the plugin process, left nil in the daemon. Common, when set, is shared
// with the other kinds the process serves (Serve does that).
type TransportPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl   sdk.BankTransport
	Common *PluginGRPCServer
}

var _ plugin.GRPCPlugin = (*TransportPlugin)(nil)

// GRPCServer implements plugin.GRPCPlugin.
func (p *TransportPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return errors.New("transport plugin: no implementation to serve")
	}
	if p.Common == nil {
		p.Common = &PluginGRPCServer{}
	}
	p.Common.add(s, sdk.KindBankTransport, p.Impl, broker)
	pluginv1.RegisterBankTransportServer(s, &TransportGRPCServer{Impl: p.Impl})
	return nil
}

// GRPCClient implements plugin.GRPCPlugin.
func (p *TransportPlugin) GRPCClient(ctx context.Context, broker *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &TransportGRPCClient{client: pluginv1.NewBankTransportClient(c), commonClient: newCommonClient(ctx, sdk.KindBankTransport, broker, c)}, nil
}

// PluginMap is the plugin set the daemon passes to go-plugin's
// ClientConfig.Plugins; dispense PluginNameGateway or PluginNameTransport.
func PluginMap() plugin.PluginSet {
	return plugin.PluginSet{
		PluginNameGateway:   &GatewayPlugin{},
		PluginNameTransport: &TransportPlugin{},
	}
}

// PluginName returns the PluginMap key of a kind.
func PluginName(k sdk.Kind) (string, error) {
	switch k {
	case sdk.KindPaymentGateway:
		return PluginNameGateway, nil
	case sdk.KindBankTransport:
		return PluginNameTransport, nil
	}
	return "", fmt.Errorf("unknown plugin kind %q", k)
}

// commonClient is the daemon side of the common Plugin service for one
// kind, and the Host currently served to the plugin for that kind.
type commonClient struct {
	rpc    pluginv1.PluginClient
	calls  *callStream // Plugin.Calls, for Health and VerifyNotification
	kind   string
	broker *plugin.GRPCBroker
	done   <-chan struct{} // closed by go-plugin when the process exits
	mu     sync.Mutex
	host   *hostServing
}

func newCommonClient(ctx context.Context, kind sdk.Kind, broker *plugin.GRPCBroker, c *grpc.ClientConn) commonClient {
	rpc := pluginv1.NewPluginClient(c)
	return commonClient{rpc: rpc, calls: &callStream{open: rpc.Calls}, kind: string(kind), broker: broker, done: ctx.Done()}
}

// Describe implements sdk.Plugin.
func (c *commonClient) Describe(ctx context.Context) (sdk.Info, error) {
	r, err := c.rpc.Describe(ctx, &pluginv1.DescribeRequest{Kind: c.kind}, callOpts...)
	if err != nil {
		return sdk.Info{}, fromStatus(ctx, "Describe", err)
	}
	return infoFromWire(r)
}

// Configure implements sdk.Plugin: host is served to the plugin over the
// go-plugin broker for as long as this configuration is in force.
func (c *commonClient) Configure(ctx context.Context, settings []byte, host sdk.Host) error {
	return c.configure(ctx, host, func(id uint32) error {
		_, err := c.rpc.Configure(ctx, &pluginv1.ConfigureRequest{Kind: c.kind, Settings: settings, HostBrokerId: id}, callOpts...)
		return fromStatus(ctx, "Configure", err)
	})
}

// Health implements sdk.Plugin.
func (c *commonClient) Health(ctx context.Context) error {
	_, err := callOrUnary(ctx, c.calls, callHealth, &pluginv1.HealthRequest{Kind: c.kind}, &pluginv1.HealthResponse{}, c.rpc.Health)
	return err
}

// RunJob implements sdk.JobRunner; it returns sdk.ErrUnsupported when the
// plugin offers no jobs.
func (c *commonClient) RunJob(ctx context.Context, job string, params map[string]string) (string, error) {
	r, err := c.rpc.RunJob(ctx, &pluginv1.RunJobRequest{Kind: c.kind, Job: job, Params: params}, callOpts...)
	if err != nil {
		return "", fromStatus(ctx, "RunJob", err)
	}
	return r.GetSummary(), nil
}

// Close stops serving the Host to the plugin.
func (c *commonClient) Close() { c.close() }

// Done is closed when the plugin process has exited (nil when unknown).
func (c *commonClient) Done() <-chan struct{} { return c.done }

// configure serves host (unless it is already served) and calls rpc with
// its broker id. The previous Host server is stopped only once the plugin
// accepted the new configuration.
func (c *commonClient) configure(ctx context.Context, host sdk.Host, rpc func(id uint32) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if host == nil {
		return rpc(0)
	}
	if c.host != nil && sameHost(c.host.host, host) {
		return rpc(c.host.id)
	}
	hs := serveHost(c.broker, host)
	if err := rpc(hs.id); err != nil {
		hs.stop()
		return err
	}
	c.host.stop()
	c.host = hs
	return nil
}

// sameHost compares two hosts without panicking on non-comparable
// dynamic types.
func sameHost(a, b sdk.Host) bool {
	ta, tb := reflect.TypeOf(a), reflect.TypeOf(b)
	if ta != tb || !ta.Comparable() {
		return false
	}
	return a == b
}

func (c *commonClient) close() {
	c.calls.close()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.host.stop()
	c.host = nil
}

var callOpts = []grpc.CallOption{grpc.MaxCallRecvMsgSize(MaxMessageSize)}

// GatewayGRPCClient is the daemon's PaymentGateway for a gateway plugin
// process. It also implements JobRunner; RunJob returns ErrUnsupported when
// the plugin does not.
type GatewayGRPCClient struct {
	commonClient
	client pluginv1.PaymentGatewayClient
}

var (
	_ sdk.PaymentGateway = (*GatewayGRPCClient)(nil)
	_ sdk.JobRunner      = (*GatewayGRPCClient)(nil)
)

// InitPayment implements PaymentGateway.
func (c *GatewayGRPCClient) InitPayment(ctx context.Context, req sdk.PaymentRequest) (*sdk.PaymentInit, error) {
	r, err := c.client.InitPayment(ctx, paymentRequestToWire(req), callOpts...)
	if err != nil {
		return nil, fromStatus(ctx, "InitPayment", err)
	}
	return paymentInitFromWire(r), nil
}

// VerifyNotification implements PaymentGateway.
func (c *GatewayGRPCClient) VerifyNotification(ctx context.Context, n sdk.Notification) (*sdk.PaymentResult, error) {
	r, err := callOrUnary(ctx, c.calls, callVerifyNotification, notificationToWire(n), &pluginv1.PaymentResult{}, c.client.VerifyNotification)
	if err != nil {
		return nil, err
	}
	res, err := paymentResultFromWire(r)
	if err != nil {
		return nil, fmt.Errorf("plugin VerifyNotification: %w", err)
	}
	return res, nil
}

// QueryTransaction implements PaymentGateway.
func (c *GatewayGRPCClient) QueryTransaction(ctx context.Context, q sdk.TransactionQuery) (*sdk.PaymentResult, error) {
	r, err := c.client.QueryTransaction(ctx, queryToWire(q), callOpts...)
	if err != nil {
		return nil, fromStatus(ctx, "QueryTransaction", err)
	}
	res, err := paymentResultFromWire(r)
	if err != nil {
		return nil, fmt.Errorf("plugin QueryTransaction: %w", err)
	}
	return res, nil
}

// TransportGRPCClient is the daemon's BankTransport for a transport
// plugin process. It also implements JobRunner; RunJob returns
// ErrUnsupported when the plugin does not.
type TransportGRPCClient struct {
	commonClient
	client pluginv1.BankTransportClient
}

var (
	_ sdk.BankTransport = (*TransportGRPCClient)(nil)
	_ sdk.JobRunner     = (*TransportGRPCClient)(nil)
)

// ErrNoUploadResult is returned when an upload stream ends without a
// result event.
var ErrNoUploadResult = errors.New("upload stream ended without a result")

// Upload implements BankTransport; progress may be nil.
func (c *TransportGRPCClient) Upload(ctx context.Context, req sdk.UploadRequest, progress func(sent, total int64)) (*sdk.UploadResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.client.Upload(ctx, uploadRequestToWire(req), callOpts...)
	if err != nil {
		return nil, fromStatus(ctx, "Upload", err)
	}
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("plugin Upload %s: %w", req.TransmissionID, ErrNoUploadResult)
		}
		if err != nil {
			return nil, fromStatus(ctx, "Upload", err)
		}
		switch e := ev.GetEvent().(type) {
		case *pluginv1.UploadEvent_Progress:
			if progress != nil {
				progress(e.Progress.GetSent(), e.Progress.GetTotal())
			}
		case *pluginv1.UploadEvent_Result:
			return uploadResultFromWire(e.Result), nil
		default:
			return nil, fmt.Errorf("plugin Upload %s: %w: empty event", req.TransmissionID, ErrBadResult)
		}
	}
}

// Download implements BankTransport.
func (c *TransportGRPCClient) Download(ctx context.Context, req sdk.DownloadRequest) (*sdk.DownloadResult, error) {
	r, err := c.client.Download(ctx, downloadRequestToWire(req), callOpts...)
	if err != nil {
		return nil, fromStatus(ctx, "Download", err)
	}
	return downloadResultFromWire(r), nil
}

// Confirm implements BankTransport.
func (c *TransportGRPCClient) Confirm(ctx context.Context, bank, downloadID string, ok bool) error {
	_, err := c.client.Confirm(ctx, &pluginv1.ConfirmRequest{Bank: bank, DownloadId: downloadID, Ok: ok}, callOpts...)
	return fromStatus(ctx, "Confirm", err)
}

// Keys implements BankTransport.
func (c *TransportGRPCClient) Keys(ctx context.Context, req sdk.KeyRequest) (*sdk.KeyResult, error) {
	r, err := c.client.Keys(ctx, keyRequestToWire(req), callOpts...)
	if err != nil {
		return nil, fromStatus(ctx, "Keys", err)
	}
	return keyResultFromWire(r), nil
}
