package sqlite_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/store/sqlite"
	"github.com/acquit/acquit/daemon/store/storetest"
)

// bigBody is n deterministic bytes and their SHA-256.
func bigBody(n int) ([]byte, string) {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + i>>13)
	}
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:])
}

// TestLargeBodyLetsOtherWritersIn: while a downloaded document is being
// stored, another writer (a payment callback's raw input, in its own
// transaction) gets SQLite's single writer between the body's chunks.
// The body's reader stops after 3 MiB and waits for a callback write to
// commit before it gives more. When the whole body went into one
// transaction (before core migration 008), that write waited for the
// body's transaction, which waited for the reader: the reader gives up
// after a minute and the test fails. This checks an order of events, not
// a duration.
func TestLargeBodyLetsOtherWritersIn(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "acquit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	body, sum := bigBody(8 << 20)
	callback := make(chan error, 1)
	r := &gateReader{r: bytes.NewReader(body), after: 3 << 20, gate: func() error {
		go func() {
			_, err := s.RecordRaw(ctx, store.RawInput{Source: "atos", Channel: "automatic", Method: "POST",
				Path: "/notify/atos/automatic", Body: []byte("Data=callback")})
			callback <- err
		}()
		select {
		case err := <-callback:
			return err
		case <-time.After(time.Minute):
			return errors.New("the callback's write did not get the writer while the body was being stored")
		}
	}}
	id, err := s.RecordRawStream(ctx, store.RawInput{Source: "bank:bnp", Channel: "download:psr", Method: "DOWNLOAD",
		SHA256: sum, Size: int64(len(body))}, r)
	if err != nil {
		t.Fatal(err)
	}
	if !r.opened {
		t.Fatal("the body was stored without reaching the gate")
	}
	rc, n, err := s.OpenRawBody(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil || n != int64(len(body)) || !bytes.Equal(got, body) {
		t.Fatalf("stored body: %d bytes (announced %d), equal %v, %v", len(got), n, bytes.Equal(got, body), err)
	}
}

// gateReader reads r, and once after bytes were read calls gate before
// giving more (its error ends the read).
type gateReader struct {
	r      io.Reader
	after  int64
	read   int64
	gate   func() error
	opened bool
}

func (g *gateReader) Read(p []byte) (int, error) {
	if !g.opened && g.read >= g.after {
		g.opened = true
		if err := g.gate(); err != nil {
			return 0, err
		}
	}
	if !g.opened && g.read+int64(len(p)) > g.after {
		p = p[:g.after-g.read]
	}
	n, err := g.r.Read(p)
	g.read += int64(n)
	return n, err
}

// TestLargeBodyKilledMidway: storetest.KilledMidBody on SQLite (a kill -9
// after 5 of 9 chunks; no document visible, orphans swept once idle, the
// retry stores it once).
func TestLargeBodyKilledMidway(t *testing.T) {
	dir := t.TempDir()
	storetest.KilledMidBody(t, "TestLargeBodyKilledMidway", "ACQUIT_BIGBODY_CHILD", filepath.Join(dir, "acquit.db"), dir,
		func(path string) (store.Store, error) { return sqlite.Open(context.Background(), path) })
}
