package sqlite_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/store/sqlite"
)

// BenchmarkRecordRaw measures raw inputs recorded per second (each its own
// synchronous=FULL transaction, as a bank notification is).
func BenchmarkRecordRaw(b *testing.B) {
	s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	body := []byte("Data=amount=1000|currencyCode=978|merchantId=011223344550000|transactionReference=ABC123|responseCode=00&Seal=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.RecordRaw(context.Background(), store.RawInput{Source: "atos", Channel: "automatic", Method: "POST",
			Path: "/atos/auto", Headers: map[string][]string{"Content-Type": {"application/x-www-form-urlencoded"}}, Body: body,
			Verdicts: []store.Verdict{{Code: "received", Subject: fmt.Sprint(i)}}}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClaimComplete measures one claim + one completion per event with
// a backlog of 1000 events over 50 subjects.
func BenchmarkClaimComplete(b *testing.B) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	fill := func(n int) {
		if err := s.InTx(ctx, func(tx store.Tx) error {
			for i := 0; i < n; i++ {
				if _, err := tx.Emit(ctx, store.NewEvent{Type: "t", Subject: fmt.Sprintf("s%d", i%50)}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	fill(1000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%500 == 0 {
			b.StopTimer()
			fill(500)
			b.StartTimer()
		}
		evs, err := s.ClaimEvents(ctx, "w", 1, time.Minute, time.Now())
		if err != nil || len(evs) != 1 {
			b.Fatalf("claim: %v %d", err, len(evs))
		}
		if err := s.CompleteEvent(ctx, evs[0].ID, "w"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecordRawStream stores a 64 MiB body streamed into raw_body_chunks
// (64 rows of 1 MiB, one short transaction each, SHA-256 checked on the way): the
// store's share of a large download, and how long it holds the writer.
func BenchmarkRecordRawStream(b *testing.B) {
	s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	body := make([]byte, 64<<20)
	for i := range body {
		body[i] = byte(i * 31)
	}
	sum := sha256.Sum256(body)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.RecordRawStream(context.Background(), store.RawInput{Source: "bank:bench", Channel: "download:psr",
			SHA256: hex.EncodeToString(sum[:]), Size: int64(len(body))}, bytes.NewReader(body)); err != nil {
			b.Fatal(err)
		}
	}
}
