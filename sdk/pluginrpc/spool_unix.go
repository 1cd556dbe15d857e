//go:build unix

package pluginrpc

import (
	"os"
	"syscall"
)

// openNoFollow opens p for reading, failing if its last element is a
// symlink (O_NOFOLLOW). O_NONBLOCK: a FIFO swapped in after the Lstat is
// opened at once (and refused by the fstat check after) instead of
// blocking until a writer comes; regular files ignore the flag.
func openNoFollow(p string) (*os.File, error) {
	return os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
}
