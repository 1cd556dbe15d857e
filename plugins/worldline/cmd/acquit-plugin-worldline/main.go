// Command acquit-plugin-worldline is the Worldline Direct payment gateway
// plugin executable, started by the acquit daemon (hashicorp/go-plugin).
// It logs to stderr only: stdout belongs to the plugin handshake.
package main

import (
	"github.com/acquit/acquit/plugins/worldline"
	"github.com/acquit/acquit/sdk"
	"github.com/acquit/acquit/sdk/pluginrpc"
)

func main() {
	pluginrpc.Serve(sdk.ServeConfig{Gateway: worldline.New()})
}
