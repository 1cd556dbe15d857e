package plugintest

import (
	"github.com/acquit/acquit/sdk"
	"github.com/acquit/acquit/sdk/internal/memhost"
)

// MemHost is an in-memory sdk.Host with the versioning of the daemon's
// store-backed one (versions start at 1, 0 means absent, StatePut with a
// stale version is sdk.ErrConflict, sequences start at 1). It does not
// check key names and sizes (sdk.MaxStateKeyLen, MaxStateValueLen) itself:
// offered to a plugin in Configure through ServeGateway or ServeTransport,
// it is reached through the same wire layer (pluginrpc.HostGRPCServer)
// that checks them in the daemon. It is safe for concurrent use.
type MemHost = memhost.Host

var _ sdk.Host = (*MemHost)(nil)

// NewMemHost returns an empty MemHost.
func NewMemHost() *MemHost { return memhost.New() }
