package client_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/acquit/acquit/plugins/ebics/client"
	"github.com/acquit/acquit/plugins/ebics/protocol"
	"github.com/acquit/acquit/plugins/ebics/sim"
)

// Concurrent uploads on one client: distinct files each make one order;
// the same file uploaded concurrently makes one order.
func TestConcurrentUploads(t *testing.T) {
	e := newEnv(t, protocol.H004, "", sim.Config{}, true)
	cl := e.newClient(t) // fresh: bank keys loaded lazily by the racing calls
	paths := []string{writePain(t, e.tmp, "MSG-C1", 80), writePain(t, e.tmp, "MSG-C2", 80), writePain(t, e.tmp, "MSG-C3", 80)}
	var wg sync.WaitGroup
	results := make([]*client.UploadResult, 6)
	errs := make([]error, 6)
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			id := fmt.Sprint("C", i%3) // each id twice
			results[i], errs[i] = cl.Upload(context.Background(), client.UploadSpec{ID: id, Function: "sct", Path: paths[i%3]})
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
	}
	if n := len(e.sim.Orders()); n != 3 {
		t.Fatalf("%d orders, want 3", n)
	}
	ids := map[string]bool{}
	for i := 0; i < 3; i++ {
		if results[i].OrderID != results[i+3].OrderID {
			t.Fatalf("same file, two order ids: %s %s", results[i].OrderID, results[i+3].OrderID)
		}
		ids[results[i].OrderID] = true
	}
	if len(ids) != 3 {
		t.Fatalf("order ids reused: %v", ids)
	}
}
