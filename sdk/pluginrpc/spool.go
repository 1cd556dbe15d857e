package pluginrpc

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/acquit/acquit/sdk"
)

// Reasons of a SpoolError (also the daemon's metric label values).
const (
	SpoolNotInDir   = "outside_spool"   // Path is not a file directly in the spool directory
	SpoolNotRegular = "not_regular"     // a symlink, a directory, a device...
	SpoolSize       = "size_mismatch"   // the file's length is not Document.Size
	SpoolTooLarge   = "too_large"       // Document.Size is over DownloadRequest.MaxSize
	SpoolBadFields  = "bad_document"    // Path with Content, no SHA-256, negative size...
	SpoolDigest     = "sha256_mismatch" // the bytes read do not hash to Document.SHA256 (found while reading)
)

// SpoolError is why a document handed over by path (sdk.Document.Path) was
// refused.
type SpoolError struct {
	Reason string // one of the Spool* constants
	Detail string
}

// Error implements error.
func (e *SpoolError) Error() string {
	return "spooled document refused (" + e.Reason + "): " + e.Detail
}

func spoolErr(reason, format string, args ...any) error {
	return &SpoolError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// OpenSpooled opens the file of a document a plugin handed over by path,
// after checking what sdk.Document promises: Path names a regular file
// (not a symlink) directly in dir, of exactly d.Size bytes (at most max when
// max > 0), and d.SHA256 is a SHA-256 in hex. The file is opened without
// following symlinks and checked again once open, so a file swapped in
// between is refused too. The digest itself can only be checked while
// reading: that is the caller's part (SpoolDigest). Refusals are
// *SpoolError.
func OpenSpooled(dir string, d sdk.Document, max int64) (*os.File, error) {
	if d.Path == "" {
		return nil, spoolErr(SpoolBadFields, "no path")
	}
	if len(d.Content) != 0 {
		return nil, spoolErr(SpoolBadFields, "both a path and %d bytes of content", len(d.Content))
	}
	if sum := strings.ToLower(d.SHA256); len(sum) != 64 || !isHex(sum) {
		return nil, spoolErr(SpoolBadFields, "sha256 %.80q is not a hex SHA-256", d.SHA256)
	}
	if d.Size < 0 {
		return nil, spoolErr(SpoolBadFields, "size %d", d.Size)
	}
	if max > 0 && d.Size > max {
		return nil, spoolErr(SpoolTooLarge, "%d bytes, the limit is %d", d.Size, max)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("spool dir: %w", err)
	}
	p := filepath.Clean(d.Path)
	if !filepath.IsAbs(p) || filepath.Dir(p) != dir || p != d.Path {
		return nil, spoolErr(SpoolNotInDir, "%.200q is not a file directly in %s", d.Path, dir)
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, spoolErr(SpoolNotRegular, "%v", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, spoolErr(SpoolNotRegular, "%s is a %s, not a regular file", filepath.Base(p), fi.Mode().Type())
	}
	f, err := openNoFollow(p)
	if err != nil {
		return nil, spoolErr(SpoolNotRegular, "%v", err)
	}
	ofi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("spooled document: %w", err)
	}
	if !ofi.Mode().IsRegular() || !os.SameFile(fi, ofi) {
		f.Close()
		return nil, spoolErr(SpoolNotRegular, "%s changed while it was opened", filepath.Base(p))
	}
	if ofi.Size() != d.Size {
		f.Close()
		return nil, spoolErr(SpoolSize, "%s has %d bytes, the plugin announced %d", filepath.Base(p), ofi.Size(), d.Size)
	}
	return f, nil
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// IsSpoolError reports whether err is a *SpoolError and returns its reason.
func IsSpoolError(err error) (string, bool) {
	var se *SpoolError
	if errors.As(err, &se) {
		return se.Reason, true
	}
	return "", false
}
