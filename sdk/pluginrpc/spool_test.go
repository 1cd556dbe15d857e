package pluginrpc

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/acquit/acquit/sdk"
)

// OpenSpooled opens only a regular file directly in the spool directory,
// of the announced size; everything else is a *SpoolError with its reason.
func TestOpenSpooledRefusals(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "spool")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	body := []byte("<Document/>")
	sum := sha256.Sum256(body)
	hexSum := hex.EncodeToString(sum[:])
	write := func(p string) string {
		if err := os.WriteFile(p, body, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write(filepath.Join(dir, "good.xml"))
	outside := write(filepath.Join(root, "outside.xml"))
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	nested := write(filepath.Join(dir, "sub", "nested.xml"))
	link := filepath.Join(dir, "link.xml")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	doc := func(p string, mod func(*sdk.Document)) sdk.Document {
		d := sdk.Document{Path: p, Size: int64(len(body)), SHA256: hexSum}
		if mod != nil {
			mod(&d)
		}
		return d
	}
	f, err := OpenSpooled(dir, doc(good, nil), 1<<20)
	if err != nil {
		t.Fatalf("good document: %v", err)
	}
	f.Close()
	for _, c := range []struct {
		name, reason string
		d            sdk.Document
	}{
		{"outside the spool dir", SpoolNotInDir, doc(outside, nil)},
		{"dot-dot out of it", SpoolNotInDir, doc(dir+"/../outside.xml", nil)},
		{"relative", SpoolNotInDir, doc("good.xml", nil)},
		{"in a sub-directory", SpoolNotInDir, doc(nested, nil)},
		{"the spool dir itself", SpoolNotInDir, doc(dir, nil)},
		{"a symlink in the spool dir", SpoolNotRegular, doc(link, nil)},
		{"a directory", SpoolNotRegular, doc(filepath.Join(dir, "sub"), nil)},
		{"missing", SpoolNotRegular, doc(filepath.Join(dir, "missing.xml"), nil)},
		{"truncated (shorter than announced)", SpoolSize, doc(good, func(d *sdk.Document) { d.Size++ })},
		{"longer than announced", SpoolSize, doc(good, func(d *sdk.Document) { d.Size-- })},
		{"over the limit", SpoolTooLarge, doc(good, func(d *sdk.Document) { d.Size = 2 << 20 })},
		{"path and content", SpoolBadFields, doc(good, func(d *sdk.Document) { d.Content = body })},
		{"no digest", SpoolBadFields, doc(good, func(d *sdk.Document) { d.SHA256 = "" })},
		{"negative size", SpoolBadFields, doc(good, func(d *sdk.Document) { d.Size = -1 })},
		{"no path", SpoolBadFields, doc("", nil)},
	} {
		f, err := OpenSpooled(dir, c.d, 1<<20)
		if err == nil {
			f.Close()
			t.Errorf("%s: opened, want refusal %s", c.name, c.reason)
			continue
		}
		if r, ok := IsSpoolError(err); !ok || r != c.reason {
			t.Errorf("%s: %v (reason %q), want %s", c.name, err, r, c.reason)
		}
	}
}
