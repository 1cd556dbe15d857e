package demo

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/acquit/acquit/daemon/adminclient"
	"github.com/acquit/acquit/daemon/payments"
)

// ForEach runs fn on every item, workers at a time, and returns the first
// error fn returned (after every item ran), or ctx's error.
func ForEach[T any](ctx context.Context, items []T, workers int, fn func(T) error) error {
	jobs := make(chan T)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range jobs {
				if err := fn(it); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, it := range items {
		select {
		case jobs <- it:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// StartPayment asks the daemon for a payment as a shop does: retried every
// 100 ms for up to a minute while the daemon is down or answers 503.
func StartPayment(ctx context.Context, cl *adminclient.Client, req payments.StartRequest) (*payments.Started, error) {
	var lastErr error
	for try := 0; try < 600; try++ {
		var st payments.Started
		_, err := cl.Do(ctx, "POST", "/v1/payments", req, &st)
		if err == nil {
			return &st, nil
		}
		var ae *adminclient.Error
		if errors.As(err, &ae) && ae.Status != http.StatusServiceUnavailable {
			return nil, fmt.Errorf("start payment %s: %w", req.OrderID, err)
		}
		lastErr = err
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return nil, fmt.Errorf("start payment %s: still failing after 60s: %w", req.OrderID, lastErr)
}
