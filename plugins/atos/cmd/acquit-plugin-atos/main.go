// Command acquit-plugin-atos is the Atos / Worldline Sips payment gateway
// plugin executable, started by the acquit daemon (hashicorp/go-plugin).
// It logs to stderr only: stdout belongs to the plugin handshake.
package main

import (
	"github.com/acquit/acquit/plugins/atos"
	"github.com/acquit/acquit/sdk"
	"github.com/acquit/acquit/sdk/pluginrpc"
)

func main() {
	pluginrpc.Serve(sdk.ServeConfig{Gateway: atos.New()})
}
