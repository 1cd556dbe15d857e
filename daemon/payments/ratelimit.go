package payments

import (
	"sync"
	"time"
)

// clientLimiter is a token bucket per client address for the public
// notification routes: rate tokens per second, up to burst. Buckets idle
// long enough to be full again are dropped, so memory is bounded by the
// addresses active in the last burst/rate seconds (and by maxClients).
type clientLimiter struct {
	rate  float64
	burst float64

	mu      sync.Mutex
	buckets map[string]*bucket
	sweep   time.Time
	// logged is when each address was last logged as limited (one line
	// per address per minute, not one per refused request).
	logged map[string]time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

// maxClients bounds the buckets kept; past it, idle ones are swept first
// and, if still full, the new address is limited (an attack from many
// addresses cannot grow memory without bound).
const maxClients = 100_000

func newClientLimiter(rate float64, burst int) *clientLimiter {
	if rate <= 0 {
		return nil
	}
	if burst < 1 {
		burst = 1
	}
	return &clientLimiter{rate: rate, burst: float64(burst), buckets: map[string]*bucket{}, logged: map[string]time.Time{}}
}

// allow takes a token for addr; log says whether this refusal should be
// logged (the first for addr in a minute).
func (l *clientLimiter) allow(addr string, now time.Time) (ok, log bool) {
	if l == nil {
		return true, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	if now.Sub(l.sweep) > full || len(l.buckets) >= maxClients {
		for k, b := range l.buckets {
			if now.Sub(b.at) >= full {
				delete(l.buckets, k)
			}
		}
		for k, at := range l.logged {
			if now.Sub(at) >= time.Minute {
				delete(l.logged, k)
			}
		}
		l.sweep = now
	}
	b := l.buckets[addr]
	if b == nil {
		if len(l.buckets) >= maxClients {
			return false, false
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[addr] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return true, false
	}
	if at, seen := l.logged[addr]; seen && now.Sub(at) < time.Minute {
		return false, false
	}
	l.logged[addr] = now
	return false, true
}
