package pluginrpc

import (
	"context"
	"errors"
	"fmt"
	"sync"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/acquit/acquit/sdk"
	pluginv1 "github.com/acquit/acquit/sdk/proto/acquit/plugin/v1"
)

// commonServer answers the common calls for one kind served by the process.
type commonServer struct {
	impl sdk.Plugin
	host *hostDialer
}

// PluginGRPCServer serves the common Plugin service (Describe, Configure,
// Health, RunJob) inside a plugin process, for every kind the process
// serves: each request names its kind. It is registered once per gRPC
// server, by the first kind added.
type PluginGRPCServer struct {
	pluginv1.UnimplementedPluginServer
	mu    sync.Mutex
	srv   *grpc.Server
	kinds map[sdk.Kind]*commonServer
	calls map[string]callHandler // methods carried by Plugin.Calls (calls.go)
}

// add serves impl's common calls for kind on s.
func (p *PluginGRPCServer) add(s *grpc.Server, kind sdk.Kind, impl sdk.Plugin, broker *plugin.GRPCBroker) {
	p.mu.Lock()
	if p.kinds == nil {
		p.kinds = map[sdk.Kind]*commonServer{}
	}
	p.kinds[kind] = &commonServer{impl: impl, host: &hostDialer{broker: broker}}
	if p.srv != s {
		pluginv1.RegisterPluginServer(s, p)
		p.srv = s
	}
	p.mu.Unlock()
	p.addCall(callHealth, unaryCall("HealthRequest", func() *pluginv1.HealthRequest { return &pluginv1.HealthRequest{} }, p.Health))
}

func (p *PluginGRPCServer) kind(k string) (*commonServer, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.kinds[sdk.Kind(k)]
	if !ok {
		return nil, status.Errorf(codes.Unimplemented, "this plugin process serves no %q", clip(k))
	}
	return c, nil
}

// Describe implements pluginv1.PluginServer.
func (p *PluginGRPCServer) Describe(ctx context.Context, req *pluginv1.DescribeRequest) (r *pluginv1.DescribeResponse, err error) {
	defer recoverToStatus(&err)
	c, err := p.kind(req.GetKind())
	if err != nil {
		return nil, err
	}
	info, err := c.impl.Describe(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return infoToWire(info), nil
}

// Configure implements pluginv1.PluginServer.
func (p *PluginGRPCServer) Configure(ctx context.Context, req *pluginv1.ConfigureRequest) (r *pluginv1.ConfigureResponse, err error) {
	defer recoverToStatus(&err)
	c, err := p.kind(req.GetKind())
	if err != nil {
		return nil, err
	}
	err = c.host.configure(req.GetHostBrokerId(), func(h sdk.Host) error {
		return c.impl.Configure(ctx, req.GetSettings(), h)
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.ConfigureResponse{}, nil
}

// Health implements pluginv1.PluginServer.
func (p *PluginGRPCServer) Health(ctx context.Context, req *pluginv1.HealthRequest) (r *pluginv1.HealthResponse, err error) {
	defer recoverToStatus(&err)
	c, err := p.kind(req.GetKind())
	if err != nil {
		return nil, err
	}
	if err := c.impl.Health(ctx); err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.HealthResponse{}, nil
}

// RunJob implements pluginv1.PluginServer.
func (p *PluginGRPCServer) RunJob(ctx context.Context, req *pluginv1.RunJobRequest) (r *pluginv1.RunJobResponse, err error) {
	defer recoverToStatus(&err)
	c, err := p.kind(req.GetKind())
	if err != nil {
		return nil, err
	}
	jr, ok := c.impl.(sdk.JobRunner)
	if !ok {
		return nil, toStatus(fmt.Errorf("run job %q: %w", req.GetJob(), sdk.ErrUnsupported))
	}
	sum, err := jr.RunJob(ctx, req.GetJob(), req.GetParams())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.RunJobResponse{Summary: sum}, nil
}

// recoverToStatus turns a panic in an implementation into an Internal
// error for that call. The plugin keeps running: a panicking call must not
// take the other calls down with it.
func recoverToStatus(err *error) {
	if r := recover(); r != nil {
		*err = status.Errorf(codes.Internal, "plugin panic: %v", r)
	}
}

// GatewayGRPCServer serves a PaymentGateway's own calls inside the plugin
// process (the common ones are PluginGRPCServer's).
type GatewayGRPCServer struct {
	pluginv1.UnimplementedPaymentGatewayServer
	Impl sdk.PaymentGateway
}

// InitPayment implements pluginv1.PaymentGatewayServer.
func (s *GatewayGRPCServer) InitPayment(ctx context.Context, req *pluginv1.PaymentRequest) (r *pluginv1.PaymentInit, err error) {
	defer recoverToStatus(&err)
	p, err := s.Impl.InitPayment(ctx, paymentRequestFromWire(req))
	if err != nil {
		return nil, toStatus(err)
	}
	if p == nil {
		return nil, status.Error(codes.Internal, "InitPayment returned no result and no error")
	}
	return paymentInitToWire(p), nil
}

// VerifyNotification implements pluginv1.PaymentGatewayServer.
func (s *GatewayGRPCServer) VerifyNotification(ctx context.Context, req *pluginv1.Notification) (r *pluginv1.PaymentResult, err error) {
	defer recoverToStatus(&err)
	n, err := notificationFromWire(req)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	res, err := s.Impl.VerifyNotification(ctx, n)
	if err != nil {
		return nil, toStatus(err)
	}
	if res == nil {
		return nil, status.Error(codes.Internal, "VerifyNotification returned no result and no error")
	}
	return paymentResultToWire(res), nil
}

// QueryTransaction implements pluginv1.PaymentGatewayServer.
func (s *GatewayGRPCServer) QueryTransaction(ctx context.Context, req *pluginv1.TransactionQuery) (r *pluginv1.PaymentResult, err error) {
	defer recoverToStatus(&err)
	res, err := s.Impl.QueryTransaction(ctx, queryFromWire(req))
	if err != nil {
		return nil, toStatus(err)
	}
	if res == nil {
		return nil, status.Error(codes.Internal, "QueryTransaction returned no result and no error")
	}
	return paymentResultToWire(res), nil
}

// TransportGRPCServer serves a BankTransport's own calls inside the plugin
// process (the common ones are PluginGRPCServer's).
type TransportGRPCServer struct {
	pluginv1.UnimplementedBankTransportServer
	Impl sdk.BankTransport
}

// Upload implements pluginv1.BankTransportServer: progress callbacks become
// progress events, then the result is sent as the last event.
func (s *TransportGRPCServer) Upload(req *pluginv1.UploadRequest, stream pluginv1.BankTransport_UploadServer) (err error) {
	defer recoverToStatus(&err)
	ctx := stream.Context()
	var (
		mu      sync.Mutex // the implementation may report from several goroutines
		sendErr error
	)
	progress := func(sent, total int64) {
		mu.Lock()
		defer mu.Unlock()
		if sendErr != nil {
			return
		}
		sendErr = stream.Send(&pluginv1.UploadEvent{Event: &pluginv1.UploadEvent_Progress{
			Progress: &pluginv1.UploadProgress{Sent: sent, Total: total}}})
	}
	res, err := s.Impl.Upload(ctx, uploadRequestFromWire(req), progress)
	if err != nil {
		return toStatus(err)
	}
	if res == nil {
		return status.Error(codes.Internal, "Upload returned no result and no error")
	}
	mu.Lock()
	defer mu.Unlock()
	if sendErr != nil && !errors.Is(sendErr, context.Canceled) {
		return sendErr
	}
	return stream.Send(&pluginv1.UploadEvent{Event: &pluginv1.UploadEvent_Result{Result: uploadResultToWire(res)}})
}

// Download implements pluginv1.BankTransportServer.
func (s *TransportGRPCServer) Download(ctx context.Context, req *pluginv1.DownloadRequest) (r *pluginv1.DownloadResult, err error) {
	defer recoverToStatus(&err)
	dr, err := downloadRequestFromWire(req)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	res, err := s.Impl.Download(ctx, dr)
	if err != nil {
		return nil, toStatus(err)
	}
	if res == nil {
		return nil, status.Error(codes.Internal, "Download returned no result and no error")
	}
	return downloadResultToWire(res), nil
}

// Confirm implements pluginv1.BankTransportServer.
func (s *TransportGRPCServer) Confirm(ctx context.Context, req *pluginv1.ConfirmRequest) (r *pluginv1.ConfirmResponse, err error) {
	defer recoverToStatus(&err)
	if err := s.Impl.Confirm(ctx, req.GetBank(), req.GetDownloadId(), req.GetOk()); err != nil {
		return nil, toStatus(err)
	}
	return &pluginv1.ConfirmResponse{}, nil
}

// Keys implements pluginv1.BankTransportServer.
func (s *TransportGRPCServer) Keys(ctx context.Context, req *pluginv1.KeyRequest) (r *pluginv1.KeyResult, err error) {
	defer recoverToStatus(&err)
	res, err := s.Impl.Keys(ctx, keyRequestFromWire(req))
	if err != nil {
		return nil, toStatus(err)
	}
	if res == nil {
		return nil, status.Error(codes.Internal, "Keys returned no result and no error")
	}
	return keyResultToWire(res), nil
}
