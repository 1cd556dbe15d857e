package pluginrpc

import (
	"context"
	"errors"
	"fmt"

	"github.com/acquit/acquit/sdk"
	pluginv1 "github.com/acquit/acquit/sdk/proto/acquit/plugin/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// RemoteError is any other error returned across the plugin boundary: it
// carries the gRPC code and the remote message.
type RemoteError struct {
	Method  string
	Code    codes.Code
	Message string
}

// Error implements error.
func (e *RemoteError) Error() string {
	return fmt.Sprintf("plugin %s: %s: %s", e.Method, e.Code, e.Message)
}

// Unavailable reports whether the error means the other process could not be
// reached (it died, or the connection broke) rather than that it answered
// with an error.
func (e *RemoteError) Unavailable() bool { return e.Code == codes.Unavailable }

// Error kinds carried in pluginv1.ErrorInfo.
const (
	errKindReject      = "reject"
	errKindConflict    = "conflict"
	errKindUnsupported = "unsupported"
)

// toStatus converts an error from an implementation into a gRPC status
// error, keeping typed errors recognisable on the other side.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && !isTyped(err) {
		// Already a status (e.g. from a nested call): pass it on.
		return err
	}
	var rej *sdk.RejectError
	switch {
	case errors.As(err, &rej):
		return withInfo(codes.InvalidArgument, err.Error(), &pluginv1.ErrorInfo{Kind: errKindReject, Code: rej.Code, Message: rej.Message})
	case errors.Is(err, sdk.ErrConflict):
		return withInfo(codes.Aborted, err.Error(), &pluginv1.ErrorInfo{Kind: errKindConflict, Message: err.Error()})
	case errors.Is(err, sdk.ErrUnsupported):
		return withInfo(codes.Unimplemented, err.Error(), &pluginv1.ErrorInfo{Kind: errKindUnsupported, Message: err.Error()})
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Unknown, err.Error())
}

func isTyped(err error) bool {
	var rej *sdk.RejectError
	return errors.As(err, &rej) || errors.Is(err, sdk.ErrConflict) || errors.Is(err, sdk.ErrUnsupported)
}

func withInfo(c codes.Code, msg string, info *pluginv1.ErrorInfo) error {
	st, err := status.New(c, msg).WithDetails(info)
	if err != nil {
		return status.Error(c, msg)
	}
	return st.Err()
}

// maxRemoteMessage bounds the remote error text kept in a RemoteError or
// RejectError: the other side is not trusted to be brief.
const maxRemoteMessage = 4096

func clip(s string) string {
	if len(s) > maxRemoteMessage {
		return s[:maxRemoteMessage] + "...(truncated)"
	}
	return s
}

// fromStatus converts an error returned by a gRPC call back into the typed
// error it stood for. ctx is the caller's context: when it is done, its
// error is returned so that errors.Is(err, context.Canceled) holds.
func fromStatus(ctx context.Context, method string, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("plugin %s: %w", method, err)
	}
	for _, d := range st.Details() {
		info, ok := d.(*pluginv1.ErrorInfo)
		if !ok {
			continue
		}
		switch info.GetKind() {
		case errKindReject:
			return &sdk.RejectError{Code: clip(info.GetCode()), Message: clip(info.GetMessage())}
		case errKindConflict:
			return fmt.Errorf("plugin %s: %w", method, sdk.ErrConflict)
		case errKindUnsupported:
			return fmt.Errorf("plugin %s: %w", method, sdk.ErrUnsupported)
		}
	}
	switch st.Code() {
	case codes.Canceled:
		if ctx.Err() != nil {
			return fmt.Errorf("plugin %s: %w", method, ctx.Err())
		}
		// The caller did not cancel: the connection was torn down under
		// the call (the other process died or is being killed).
		return &RemoteError{Method: method, Code: codes.Unavailable, Message: "call canceled by the other side: " + clip(st.Message())}
	case codes.DeadlineExceeded:
		return fmt.Errorf("plugin %s: %w", method, context.DeadlineExceeded)
	case codes.Unimplemented:
		return fmt.Errorf("plugin %s: %w: %s", method, sdk.ErrUnsupported, clip(st.Message()))
	}
	return &RemoteError{Method: method, Code: st.Code(), Message: clip(st.Message())}
}
