// Command acquit-plugin-ebics is the EBICS bank transport plugin, started
// by the acquit daemon (hashicorp/go-plugin over gRPC). Logs go to stderr.
package main

import (
	"github.com/acquit/acquit/plugins/ebics"
	"github.com/acquit/acquit/sdk"
	"github.com/acquit/acquit/sdk/pluginrpc"
)

func main() {
	pluginrpc.Serve(sdk.ServeConfig{Transport: ebics.New()})
}
