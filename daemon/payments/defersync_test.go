package payments

import (
	"net/url"
	"strings"
	"testing"
)

// TestNotificationRawCommitDeferred: the raw input of a notification is
// committed without its own fsync (store.RawInput.DeferSync), and every
// path that answers the sender commits again with a flush first (the
// verdict, or the transition with its timeline row), which makes the raw
// input durable against power loss too before the answer. One fsync per
// notification instead of two.
func TestNotificationRawCommitDeferred(t *testing.T) {
	e := newEnv(t, nil)
	type stats interface {
		GroupStats() (int64, int64)
		LazyGroups() int64
	}
	gs, ok := e.st.(stats)
	if !ok {
		t.Fatalf("%T has no group statistics", e.st)
	}
	st := e.start(t, 100)
	e.pay(t, st)
	good := e.sim.decide(t, st.Reference, "00")
	cases := []struct {
		name    string
		channel string
		body    []byte
		want    int
	}{
		{"decides", "automatic", []byte(good.Encode()), 200},
		{"duplicate", "manual", []byte(good.Encode()), 303},
		{"conflict", "automatic", []byte(e.sim.decide(t, st.Reference, "05").Encode()), 200},
		{"forged seal", "automatic", []byte(url.Values{"Data": {good.Get("Data")}, "Seal": {strings.Repeat("ab", 32)}}.Encode()), 0},
		{"oversized", "automatic", []byte("Data=" + strings.Repeat("a", int(e.svc.cfg.MaxBodyBytes)+10)), 0},
		{"not UTF-8", "automatic", []byte("Data=amount%3D1\xff\xfe|x&Seal=00"), 0},
	}
	for _, c := range cases {
		c0, _ := gs.GroupStats()
		l0 := gs.LazyGroups()
		r := e.postBody(t, c.channel, c.body)
		if c.want != 0 && r.code != c.want {
			t.Fatalf("%s: HTTP %d, want %d", c.name, r.code, c.want)
		}
		c1, _ := gs.GroupStats()
		lazy := gs.LazyGroups() - l0
		full := (c1 - c0) - lazy
		if lazy != 1 || full < 1 {
			t.Errorf("%s (HTTP %d): %d commits without fsync, %d with; want the raw input's without, then at least one with before the answer",
				c.name, r.code, lazy, full)
		}
	}
}
