//go:build unix

package pluginrpc

import (
	"os"
	"syscall"
)

// openNoFollow opens p for reading, failing if its last element is a
// symlink (O_NOFOLLOW).
func openNoFollow(p string) (*os.File, error) {
	return os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
}
