package hooks

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestDialGuardAddressClasses: which resolved addresses the http module
// may connect to, with and without an allow-list.
func TestDialGuardAddressClasses(t *testing.T) {
	allow, err := ParseHTTPAllow([]string{"127.0.0.1", "10.1.0.0/16"})
	if err != nil {
		t.Fatal(err)
	}
	g := &dialGuard{allow: allow, admin: adminAddrPorts("127.0.0.1:8081")}
	open := &dialGuard{admin: adminAddrPorts(":9000")}
	for _, tc := range []struct {
		g      *dialGuard
		addr   string
		reason string // "" = allowed
	}{
		{g, "169.254.169.254:80", "link_local"},
		{g, "[::ffff:169.254.169.254]:80", "link_local"},
		{g, "[fe80::1]:80", "link_local"},
		{g, "[fd00:ec2::254]:80", "private"},
		{g, "0.0.0.0:80", "unspecified"},
		{g, "239.1.1.1:80", "multicast"},
		{g, "127.0.0.1:8081", "admin"},
		{g, "127.0.0.1:8082", ""},
		{g, "127.0.0.2:8082", "loopback"},
		{g, "[::1]:8082", "loopback"},
		{g, "10.1.2.3:443", ""},
		{g, "10.2.0.1:443", "private"},
		{g, "192.168.1.1:443", "private"},
		{g, "172.16.0.1:443", "private"},
		{g, "100.64.0.1:443", "private"},
		{g, "93.184.216.34:443", ""},
		{g, "[2606:2800:220:1::1]:443", ""},
		{open, "127.0.0.1:9000", "admin"},
		{open, "10.0.0.5:9000", "admin"},
		{open, "127.0.0.1:9001", "loopback"},
	} {
		err := tc.g.check(netip.MustParseAddrPort(tc.addr))
		var r *addrRefusedError
		switch {
		case tc.reason == "" && err != nil:
			t.Errorf("%s refused: %v", tc.addr, err)
		case tc.reason != "" && (!asRefused(err, &r) || r.reason != tc.reason):
			t.Errorf("%s: %v, want refused as %s", tc.addr, err, tc.reason)
		}
	}
	if _, err := ParseHTTPAllow([]string{"not-an-ip"}); err == nil {
		t.Error("bad allow entry accepted")
	}
}

func asRefused(err error, r **addrRefusedError) bool {
	x, ok := err.(*addrRefusedError)
	*r = x
	return ok
}

// TestHTTPModuleRefusesInternalAddresses: real hooks calling http.get on
// the cloud metadata address, the daemon's admin listener (directly, by
// name, through a redirect), and loopback without an allow-list get a
// forbidden error naming the address; nothing reaches the admin listener;
// each refusal is logged and counted; an allowed server still works.
func TestHTTPModuleRefusesInternalAddresses(t *testing.T) {
	var adminHits atomic.Int64
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { adminHits.Add(1) }))
	defer admin.Close()
	shop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/to-admin":
			http.Redirect(w, r, admin.URL+"/v1/events", http.StatusTemporaryRedirect)
		case "/to-metadata":
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/iam/", http.StatusFound)
		default:
			w.Write([]byte("shop ok"))
		}
	}))
	defer shop.Close()
	reg := prometheus.NewRegistry()
	src := map[string]string{"h.lua": `function run(u) local r, err = http.get(u) if not r then return "err: " .. err end return r.body end`}
	e, logs := newTestEngine(t, src, nil, func(o *Options) {
		o.AdminAddr = strings.TrimPrefix(admin.URL, "http://")
		o.Registerer = reg
		o.HTTPAllow = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	_, adminPort, _ := strings.Cut(strings.TrimPrefix(admin.URL, "http://"), ":")
	for _, tc := range []struct{ url, want string }{
		{"http://169.254.169.254/latest/meta-data/", "link-local"},
		{admin.URL + "/v1/events", "admin listener"},
		{"http://localhost:" + adminPort + "/v1/events", "admin listener"},
		{shop.URL + "/to-admin", "admin listener"},
		{shop.URL + "/to-metadata", "link-local"},
	} {
		_, err := e.Call(context.Background(), "h", "run", tc.url)
		he := mustKind(t, err, ErrForbidden)
		if !strings.Contains(he.Message, tc.want) || he.Line != 1 {
			t.Errorf("%s: %v", tc.url, err)
		}
	}
	if n := adminHits.Load(); n != 0 {
		t.Fatalf("the admin listener received %d requests from hooks", n)
	}
	if tr, err := e.Call(context.Background(), "h", "run", shop.URL+"/"); err != nil || tr.Return != "shop ok" {
		t.Fatalf("allowed loopback server: %v %v", tr.Return, err)
	}
	if !strings.Contains(logs.String(), `"message":"hook http request refused"`) || !strings.Contains(logs.String(), `"reason":"link_local"`) {
		t.Errorf("refusals not logged: %s", logs.String())
	}
	for reason, want := range map[string]float64{"link_local": 2, "admin": 3} {
		c, err := e.m.refused.GetMetricWithLabelValues(reason)
		if err != nil || testutil.ToFloat64(c) != want {
			t.Errorf("acquit_hooks_http_refused_total{reason=%q} = %v, want %v", reason, testutil.ToFloat64(c), want)
		}
	}

	// Without an allow-list (the default), loopback is refused too, by
	// address and by name.
	strict, _ := newTestEngine(t, src, nil, func(o *Options) { o.HTTPAllow = nil })
	for _, u := range []string{shop.URL + "/", strings.Replace(shop.URL, "127.0.0.1", "localhost", 1) + "/"} {
		_, err := strict.Call(context.Background(), "h", "run", u)
		if he := mustKind(t, err, ErrForbidden); !strings.Contains(he.Message, "scripts.http_allow") {
			t.Errorf("%s: %v", u, err)
		}
	}
}
