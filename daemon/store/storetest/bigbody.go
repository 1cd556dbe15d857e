package storetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/store"
)

// killBodyOnce is the document of KilledMidBody: 8 chunks and a bit,
// made only by the tests that use it.
var killBodyOnce = sync.OnceValue(func() []byte { return rawBody(8*store.RawChunkSize + 123) })

// killInput is the raw input KilledMidBody stores.
func killInput() store.RawInput {
	killBody := killBodyOnce()
	return store.RawInput{Source: "bank:bnp", Channel: "download:psr", Method: "DOWNLOAD", Path: "big.xml",
		SHA256: sha(killBody), Size: int64(len(killBody))}
}

// stallReader yields after bytes of r, then writes the marker file and
// blocks forever.
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

// KilledMidBody kills -9 a process (this test binary, run again as
// testName with env set to target) in the middle of storing a large
// document, after 5 of its 9 chunks were committed. After the restart
// (open(target) again): no raw input is visible, the 5 orphan chunks are
// there; SweepRawBodies leaves them while they might still be written
// (idle less than store.RawBodyIdle) and deletes them once idle; the fetch
// retried stores the document once, whole. Call it first thing in the
// test: in the child it stores and never returns.
func KilledMidBody(t *testing.T, testName, env, target, markerDir string, open func(target string) (store.Store, error)) {
	killBody := killBodyOnce()
	marker := markerDir + "/stalled"
	if os.Getenv(env) != "" {
		s, err := open(os.Getenv(env))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		_, err = s.RecordRawStream(context.Background(), killInput(),
			&stallReader{r: bytes.NewReader(killBody), after: 5*store.RawChunkSize + 10, marker: os.Getenv(env + "_MARKER")})
		fmt.Println("done", err)
		os.Exit(0)
	}
	ctx := context.Background()
	s, err := open(target)
	must(t, err)
	must(t, s.Close())
	cmd := exec.Command(os.Args[0], "-test.run=^"+testName+"$")
	cmd.Env = append(os.Environ(), env+"="+target, env+"_MARKER="+marker)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	must(t, cmd.Start())
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := os.Stat(marker); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the child did not reach the middle of the body in 2 minutes: %s", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	must(t, cmd.Process.Signal(syscall.SIGKILL))
	cmd.Wait()
	if bytes.Contains(out.Bytes(), []byte("done")) {
		t.Fatalf("the child finished before the kill: %s", out.String())
	}

	s, err = open(target)
	must(t, err)
	defer s.Close()
	if n := countRows(t, s, `SELECT COUNT(*) FROM raw_inputs`); n != 0 {
		t.Fatalf("%d raw inputs after the kill: a half-written document is visible", n)
	}
	orphans := countRows(t, s, `SELECT COUNT(*) FROM raw_body_chunks`)
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
	if n := countRows(t, s, `SELECT (SELECT COUNT(*) FROM raw_body_chunks) + (SELECT COUNT(*) FROM raw_bodies)`); n != 0 {
		t.Fatalf("%d orphan rows left after the sweep", n)
	}
	// The fetch retried: stored once, whole.
	id, err := s.RecordRawStream(ctx, killInput(), bytes.NewReader(killBody))
	must(t, err)
	if n := countRows(t, s, `SELECT COUNT(*) FROM raw_inputs`); n != 1 {
		t.Fatalf("%d raw inputs after the retry, want 1", n)
	}
	rc, size, err := s.OpenRawBody(ctx, id)
	must(t, err)
	back, err := io.ReadAll(rc)
	if err != nil || size != int64(len(killBody)) || !bytes.Equal(back, killBody) {
		t.Fatalf("the retried document reads back %d bytes (size %d), equal %v, %v", len(back), size, bytes.Equal(back, killBody), err)
	}
	t.Logf("%s: killed with %d of 9 chunks written: no document visible; swept once idle; the retry stored it once", s.Driver(), orphans)
}
