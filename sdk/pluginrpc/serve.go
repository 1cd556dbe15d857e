package pluginrpc

import (
	"fmt"
	"os"

	"github.com/acquit/acquit/sdk"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// pluginSet builds the go-plugin set served for cfg.
func pluginSet(cfg sdk.ServeConfig) (plugin.PluginSet, error) {
	set := plugin.PluginSet{}
	common := &PluginGRPCServer{} // one Plugin service for every kind served
	if cfg.Gateway != nil {
		set[PluginNameGateway] = &GatewayPlugin{Impl: cfg.Gateway, Common: common}
	}
	if cfg.Transport != nil {
		set[PluginNameTransport] = &TransportPlugin{Impl: cfg.Transport, Common: common}
	}
	if len(set) == 0 {
		return nil, fmt.Errorf("pluginrpc.Serve: neither Gateway nor Transport is set")
	}
	return set, nil
}

// Serve serves the plugin to the daemon that started this process and
// returns when the daemon is done with it. Call it from main; a process
// started by hand (without the handshake cookie) prints an explanation and
// exits with status 1.
func Serve(cfg sdk.ServeConfig) {
	set, err := pluginSet(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = sdk.NewLogger("plugin")
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         set,
		GRPCServer:      newGRPCServer,
		Logger:          logger,
	})
}

func newGRPCServer(opts []grpc.ServerOption) *grpc.Server {
	opts = append(opts, grpc.MaxRecvMsgSize(MaxMessageSize), grpc.MaxSendMsgSize(MaxMessageSize))
	opts = append(opts, serverOptions()...)
	return grpc.NewServer(opts...)
}
