package sqlite_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/store/sqlite"
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

// TestLargeBodyLetsOtherWritersIn: while a 64 MiB downloaded document is
// stored, another writer (a payment callback's raw input, recorded in its
// own transaction) never waits long for SQLite's single writer. When the
// whole body went into one transaction (before core migration 008) a
// callback waited for all of it: about 700 ms for 64 MiB on a quiet
// machine, more under load. Now the body takes one short transaction per
// 1 MiB chunk and the callback gets in between.
//
// This is a latency bound, measured in the test's own process; the bound
// (300 ms) is generous, for a loaded machine: a chunk takes about 10 ms.
func TestLargeBodyLetsOtherWritersIn(t *testing.T) {
	if testing.Short() {
		t.Skip("stores 64 MiB")
	}
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "acquit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	body, sum := bigBody(64 << 20)
	const bound = 300 * time.Millisecond

	// The reader signals its first read: the store then holds (old code)
	// or takes turns with (new code) the writer.
	var started atomic.Bool
	done := make(chan error, 1)
	go func() {
		_, err := s.RecordRawStream(ctx, store.RawInput{Source: "bank:bnp", Channel: "download:psr", Method: "DOWNLOAD",
			SHA256: sum, Size: int64(len(body))}, &signalReader{r: bytes.NewReader(body), first: &started})
		done <- err
	}()
	for !started.Load() {
		time.Sleep(time.Millisecond)
	}
	var (
		worst  time.Duration
		writes int
	)
	for finished := false; !finished; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			finished = true
			continue
		default:
		}
		t0 := time.Now()
		if _, err := s.RecordRaw(ctx, store.RawInput{Source: "atos", Channel: "automatic", Method: "POST",
			Path: "/notify/atos/automatic", Body: []byte(fmt.Sprintf("Data=callback-%d", writes))}); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(t0); d > worst {
			worst = d
		}
		writes++
		time.Sleep(2 * time.Millisecond)
	}
	t.Logf("%d callback writes while 64 MiB was stored; the longest waited %v (bound %v)", writes, worst, bound)
	if worst > bound {
		t.Fatalf("a callback write waited %v for the writer while a 64 MiB document was stored, want at most %v", worst, bound)
	}
}

// signalReader sets first at its first Read.
type signalReader struct {
	r     io.Reader
	first *atomic.Bool
}

func (s *signalReader) Read(p []byte) (int, error) {
	s.first.Store(true)
	return s.r.Read(p)
}

// stallReader yields its bytes, then writes the marker file and blocks
// forever once after bytes have been read.
type stallReader struct {
	r      io.Reader
	after  int
	read   int
	marker string
}

func (s *stallReader) Read(p []byte) (int, error) {
	if s.read >= s.after {
		if err := os.WriteFile(s.marker, []byte("stalled"), 0o600); err != nil {
			return 0, err
		}
		select {}
	}
	if len(p) > s.after-s.read {
		p = p[:s.after-s.read]
	}
	n, err := s.r.Read(p)
	s.read += n
	return n, err
}

// TestLargeBodyKilledMidway kills -9 a process in the middle of storing a
// large document, after some of its chunks were committed: after the
// restart no raw input is visible (the document is not stored), the
// orphan chunks are there but are no document; the sweep leaves them while
// they might still be written (idle less than store.RawBodyIdle), deletes
// them all once idle; the fetch retried stores the document once, whole.
func TestLargeBodyKilledMidway(t *testing.T) {
	body, sum := bigBody(8*store.RawChunkSize + 123)
	in := store.RawInput{Source: "bank:bnp", Channel: "download:psr", Method: "DOWNLOAD", Path: "big.xml", SHA256: sum, Size: int64(len(body))}
	if path := os.Getenv("ACQUIT_BIGBODY_CHILD"); path != "" {
		s, err := sqlite.Open(context.Background(), path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		_, err = s.RecordRawStream(context.Background(), in,
			&stallReader{r: bytes.NewReader(body), after: 5*store.RawChunkSize + 10, marker: path + ".stalled"})
		fmt.Println("done", err)
		os.Exit(0)
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "acquit.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestLargeBodyKilledMidway$")
	cmd.Env = append(os.Environ(), "ACQUIT_BIGBODY_CHILD="+path)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := os.Stat(path + ".stalled"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the child did not reach the middle of the body in 2 minutes: %s", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if bytes.Contains(out.Bytes(), []byte("done")) {
		t.Fatalf("the child finished before the kill: %s", out.String())
	}

	s, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	count := func(q string) int64 {
		t.Helper()
		var n int64
		if err := s.R.QueryRowContext(ctx, q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(`SELECT COUNT(*) FROM raw_inputs`); n != 0 {
		t.Fatalf("%d raw inputs after the kill: a half-written document is visible", n)
	}
	orphans := count(`SELECT COUNT(*) FROM raw_body_chunks`)
	if orphans != 5 {
		t.Fatalf("%d chunks committed before the kill, want the 5 read whole", orphans)
	}
	// Fresh: could be a writer of another instance still at work.
	if n, err := s.SweepRawBodies(ctx, time.Now().Add(-store.RawBodyIdle)); err != nil || n != 0 {
		t.Fatalf("sweep of a body written just now: %d, %v; want it left alone", n, err)
	}
	// Once idle for store.RawBodyIdle (the clock moved on), it is swept.
	if n, err := s.SweepRawBodies(ctx, time.Now().Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("sweep of the orphan: %d, %v; want 1", n, err)
	}
	if n := count(`SELECT (SELECT COUNT(*) FROM raw_body_chunks) + (SELECT COUNT(*) FROM raw_bodies)`); n != 0 {
		t.Fatalf("%d orphan rows left after the sweep", n)
	}
	// The fetch retried: stored once, whole.
	id, err := s.RecordRawStream(ctx, in, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if n := count(`SELECT COUNT(*) FROM raw_inputs`); n != 1 {
		t.Fatalf("%d raw inputs after the retry, want 1", n)
	}
	rc, size, err := s.OpenRawBody(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	back, err := io.ReadAll(rc)
	if err != nil || size != int64(len(body)) || !bytes.Equal(back, body) {
		t.Fatalf("the retried document reads back %d bytes (size %d), equal %v, %v", len(back), size, bytes.Equal(back, body), err)
	}
	t.Logf("killed with %d of 9 chunks written: no document visible; swept once idle; the retry stored it once", orphans)
}
