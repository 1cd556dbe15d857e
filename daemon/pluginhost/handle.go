package pluginhost

import (
	"context"
	"errors"
	"fmt"

	"github.com/acquit/acquit/sdk"
)

// handle calls the live instance of a plugin; it is what Gateway,
// Transport and JobRunner return.
type handle struct{ in *instance }

var _ sdk.JobRunner = (*handle)(nil)

// call runs fn on the live client, bounding ctx by CallTimeout when bounded
// is set and ctx has no deadline, and accounts for the error.
func (h *handle) call(ctx context.Context, method string, bounded bool, fn func(ctx context.Context, raw rawClient) error) error {
	raw, err := h.in.live()
	if err != nil {
		h.count(method, "unavailable")
		return err
	}
	if _, ok := ctx.Deadline(); bounded && !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.in.m.opts.CallTimeout)
		defer cancel()
	}
	err = fn(ctx, raw)
	if err == nil {
		return nil
	}
	err = h.in.classify(err)
	var rej *sdk.RejectError
	var un *UnavailableError
	switch {
	case errors.As(err, &rej):
		h.count(method, "reject")
	case errors.As(err, &un):
		h.count(method, "unavailable")
		return err
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		h.count(method, "canceled")
	default:
		h.count(method, "error")
	}
	return fmt.Errorf("plugin %s %s: %w", h.in.spec.Name, method, err)
}

func (h *handle) count(method, kind string) {
	h.in.m.metrics.rpcErrors.WithLabelValues(h.in.spec.Name, method, kind).Inc()
}

// Describe implements sdk.Plugin: the live instance describes itself.
func (h *handle) Describe(ctx context.Context) (info sdk.Info, err error) {
	err = h.call(ctx, "Describe", true, func(ctx context.Context, raw rawClient) (err error) {
		info, err = raw.Describe(ctx)
		return err
	})
	return info, err
}

// Configure implements sdk.Plugin as Manager.Reconfigure: host is ignored,
// the plugin always gets its store-backed Host.
func (h *handle) Configure(ctx context.Context, settings []byte, _ sdk.Host) error {
	return h.in.m.Reconfigure(ctx, h.in.spec.Name, settings)
}

// Health implements sdk.Plugin.
func (h *handle) Health(ctx context.Context) error {
	return h.call(ctx, "Health", true, func(ctx context.Context, raw rawClient) error { return raw.Health(ctx) })
}

// RunJob implements sdk.JobRunner.
func (h *handle) RunJob(ctx context.Context, job string, params map[string]string) (sum string, err error) {
	err = h.call(ctx, "RunJob", false, func(ctx context.Context, raw rawClient) (err error) {
		sum, err = raw.RunJob(ctx, job, params)
		return err
	})
	return sum, err
}

// gatewayHandle is the sdk.PaymentGateway returned by Manager.Gateway.
type gatewayHandle struct{ handle }

var _ sdk.PaymentGateway = (*gatewayHandle)(nil)

func asGateway(raw rawClient) (sdk.PaymentGateway, error) {
	g, ok := raw.(sdk.PaymentGateway)
	if !ok {
		return nil, fmt.Errorf("%w: live client %T is no gateway", ErrWrongKind, raw)
	}
	return g, nil
}

// InitPayment implements sdk.PaymentGateway.
func (h *gatewayHandle) InitPayment(ctx context.Context, req sdk.PaymentRequest) (res *sdk.PaymentInit, err error) {
	err = h.call(ctx, "InitPayment", true, func(ctx context.Context, raw rawClient) error {
		g, err := asGateway(raw)
		if err == nil {
			res, err = g.InitPayment(ctx, req)
		}
		return err
	})
	return res, err
}

// VerifyNotification implements sdk.PaymentGateway.
func (h *gatewayHandle) VerifyNotification(ctx context.Context, n sdk.Notification) (res *sdk.PaymentResult, err error) {
	err = h.call(ctx, "VerifyNotification", true, func(ctx context.Context, raw rawClient) error {
		g, err := asGateway(raw)
		if err == nil {
			res, err = g.VerifyNotification(ctx, n)
		}
		return err
	})
	return res, err
}

// QueryTransaction implements sdk.PaymentGateway.
func (h *gatewayHandle) QueryTransaction(ctx context.Context, q sdk.TransactionQuery) (res *sdk.PaymentResult, err error) {
	err = h.call(ctx, "QueryTransaction", true, func(ctx context.Context, raw rawClient) error {
		g, err := asGateway(raw)
		if err == nil {
			res, err = g.QueryTransaction(ctx, q)
		}
		return err
	})
	return res, err
}

// transportHandle is the sdk.BankTransport returned by Manager.Transport.
type transportHandle struct{ handle }

var _ sdk.BankTransport = (*transportHandle)(nil)

func asTransport(raw rawClient) (sdk.BankTransport, error) {
	t, ok := raw.(sdk.BankTransport)
	if !ok {
		return nil, fmt.Errorf("%w: live client %T is no transport", ErrWrongKind, raw)
	}
	return t, nil
}

// Upload implements sdk.BankTransport (not bounded by CallTimeout).
func (h *transportHandle) Upload(ctx context.Context, req sdk.UploadRequest, progress func(sent, total int64)) (res *sdk.UploadResult, err error) {
	err = h.call(ctx, "Upload", false, func(ctx context.Context, raw rawClient) error {
		t, err := asTransport(raw)
		if err == nil {
			res, err = t.Upload(ctx, req, progress)
		}
		return err
	})
	return res, err
}

// Download implements sdk.BankTransport (not bounded by CallTimeout).
func (h *transportHandle) Download(ctx context.Context, req sdk.DownloadRequest) (res *sdk.DownloadResult, err error) {
	err = h.call(ctx, "Download", false, func(ctx context.Context, raw rawClient) error {
		t, err := asTransport(raw)
		if err == nil {
			res, err = t.Download(ctx, req)
		}
		return err
	})
	return res, err
}

// Confirm implements sdk.BankTransport.
func (h *transportHandle) Confirm(ctx context.Context, bank, downloadID string, ok bool) error {
	return h.call(ctx, "Confirm", true, func(ctx context.Context, raw rawClient) error {
		t, err := asTransport(raw)
		if err == nil {
			err = t.Confirm(ctx, bank, downloadID, ok)
		}
		return err
	})
}

// Keys implements sdk.BankTransport (not bounded by CallTimeout).
func (h *transportHandle) Keys(ctx context.Context, req sdk.KeyRequest) (res *sdk.KeyResult, err error) {
	err = h.call(ctx, "Keys", false, func(ctx context.Context, raw rawClient) error {
		t, err := asTransport(raw)
		if err == nil {
			res, err = t.Keys(ctx, req)
		}
		return err
	})
	return res, err
}
