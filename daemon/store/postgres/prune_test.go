package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/acquit/acquit/daemon/store"
	"github.com/acquit/acquit/daemon/store/postgres"
	"github.com/acquit/acquit/internal/pgtest"
)

// TestInstancesPruneRawAtOnce: every instance runs the hourly raw input
// pruning; three running at once on one database delete each refused
// input once in all (no error, no deadlock) and keep the verified ones.
func TestInstancesPruneRawAtOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dsn := pgtest.DSN(t)
	var stores []*postgres.Store
	for i := 0; i < 3; i++ {
		s, err := postgres.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores = append(stores, s)
	}
	old := time.Now().Add(-48 * time.Hour)
	const refused, verified = 600, 20
	for i := 0; i < refused+verified; i++ {
		v := store.Verdict{Code: "bad_seal"}
		if i%((refused+verified)/verified) == 0 {
			v = store.Verdict{Verified: true, Code: "decided"}
		}
		if _, err := stores[0].RecordRaw(ctx, store.RawInput{Source: "atos", Body: []byte(fmt.Sprint("body ", i)),
			ReceivedAt: old, Verdicts: []store.Verdict{v}}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	counts := make([]int, len(stores))
	errs := make([]error, len(stores))
	for i, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			counts[i], errs[i] = s.PruneRaw(ctx, time.Now().Add(-24*time.Hour), 25)
		}()
	}
	wg.Wait()
	total := 0
	for i := range stores {
		if errs[i] != nil {
			t.Fatalf("instance %d: %v", i, errs[i])
		}
		total += counts[i]
	}
	if total != refused {
		t.Fatalf("instances pruned %v = %d in all, want %d", counts, total, refused)
	}
	var left, verdicts, permits int
	if err := stores[1].R.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM raw_inputs), (SELECT COUNT(*) FROM raw_verdicts),
		(SELECT COUNT(*) FROM raw_prune)`).Scan(&left, &verdicts, &permits); err != nil {
		t.Fatal(err)
	}
	if left != verified || verdicts != verified || permits != 0 {
		t.Fatalf("left %d raw inputs, %d verdicts, %d permits; want %d, %d, 0", left, verdicts, permits, verified, verified)
	}
	t.Logf("pruned %v by the three instances", counts)
}
