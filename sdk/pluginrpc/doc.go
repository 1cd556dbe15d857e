// Package pluginrpc is the plumbing under the sdk: the go-plugin handshake,
// the gRPC shims on both sides of the plugin boundary, the conversions
// between sdk types and their acquit.plugin.v1 messages, and the error
// mapping that keeps *sdk.RejectError, sdk.ErrConflict and
// sdk.ErrUnsupported recognisable across the wire.
//
// A plugin's main calls Serve; the daemon (daemon/pluginhost) starts plugins
// with Handshake and PluginMap and talks to them through GatewayGRPCClient
// and TransportGRPCClient, serving them the Host with HostGRPCServer.
// Health and VerifyNotification travel on Plugin.Calls, long-lived streams
// reused call after call (calls.go), falling back to their unary RPCs for
// a plugin that does not serve it; the plugin's Host calls travel the same
// way on Host.Calls.
//
// It is a sub-package of sdk rather than sdk/internal because the daemon
// imports it, and it is not folded into sdk because it imports sdk (its
// types) while sdk must stay readable by a plugin author in one sitting:
// that is also why Serve lives here and not in sdk (sdk importing pluginrpc
// would be an import cycle).
package pluginrpc
