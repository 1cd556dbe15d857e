package pluginrpc

import (
	"github.com/acquit/acquit/sdk"
	plugin "github.com/hashicorp/go-plugin"
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
