//go:build unix

package pluginrpc

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestOpenNoFollowFIFODoesNotBlock: a plugin can swap its spool file for a
// FIFO between OpenSpooled's Lstat and its open. The open must return (the
// fstat after it refuses the FIFO), not wait for a writer that never comes:
// that would hang the fetch job and its download directory for good.
func TestOpenNoFollowFIFODoesNotBlock(t *testing.T) {
	p := filepath.Join(t.TempDir(), "doc")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		f, err := openNoFollow(p)
		if err == nil {
			fi, serr := f.Stat()
			f.Close()
			if serr == nil && fi.Mode().IsRegular() {
				t.Errorf("a FIFO stats as a regular file")
			}
		}
		done <- err
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		// Unblock the open so the goroutine ends.
		if w, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
		t.Fatal("opening a FIFO in the spool directory blocked (no O_NONBLOCK)")
	}
}
