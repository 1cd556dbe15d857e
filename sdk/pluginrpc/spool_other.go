//go:build !unix

package pluginrpc

import "os"

// openNoFollow opens p for reading; without O_NOFOLLOW the Lstat before and
// the SameFile check after stand for it.
func openNoFollow(p string) (*os.File, error) { return os.Open(p) }
