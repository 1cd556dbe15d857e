package pluginrpc

import (
	"github.com/acquit/acquit/sdk"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// Names under which the plugin kinds are registered in the go-plugin
// PluginSet.
const (
	PluginNameGateway   = "payment_gateway"
	PluginNameTransport = "bank_transport"
)

// MagicCookieKey and MagicCookieValue let a plugin executable recognise that
// it was started by the acquit daemon. They are not a security measure: a
// plugin started by hand prints a friendly message and exits.
const (
	MagicCookieKey   = "ACQUIT_PLUGIN_MAGIC_COOKIE"
	MagicCookieValue = "5b1f0c9a7e3d4f2a8c6b0e1d9a7f3c5e-acquit-bank-plugin"
)

// Handshake is the go-plugin handshake shared by the daemon and plugins.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  sdk.ProtocolVersion,
	MagicCookieKey:   MagicCookieKey,
	MagicCookieValue: MagicCookieValue,
}

// MaxMessageSize is the largest gRPC message either side accepts (a
// downloaded statement file or key letter travels in one message).
const MaxMessageSize = 64 << 20

// windowSize is the static HTTP/2 flow-control window of every plugin
// connection (stream and connection). Setting it turns off gRPC's dynamic
// window estimation, which otherwise sends a PING with data frames to
// measure the bandwidth-delay product: on a unix socket there is no delay
// to measure, and the pings cost wake-ups on both sides of every call.
// 4 MiB keeps large messages (downloaded files) streaming without waiting
// for window updates.
const windowSize = 4 << 20

// DialOptions are the gRPC options of the daemon's connection to a plugin
// (and of a plugin's connection to the Host): message size limits and the
// static flow-control window.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageSize), grpc.MaxCallSendMsgSize(MaxMessageSize)),
		grpc.WithInitialWindowSize(windowSize),
		grpc.WithInitialConnWindowSize(windowSize),
	}
}

// serverOptions are the gRPC options of both servers (the plugin's and
// the daemon's Host): the static flow-control window, see windowSize.
func serverOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.InitialWindowSize(windowSize), grpc.InitialConnWindowSize(windowSize)}
}
