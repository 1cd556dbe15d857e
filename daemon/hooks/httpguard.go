package hooks

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
)

// errAddressRefused marks a connection the http module refused to open.
var errAddressRefused = errors.New("address refused")

// addrRefusedError is a refused dial: the address and why.
type addrRefusedError struct {
	addr   netip.AddrPort
	reason string // metric label: link_local, admin, loopback, private, unspecified, multicast
	msg    string
}

func (e *addrRefusedError) Error() string {
	return fmt.Sprintf("connection to %s refused: %s", e.addr, e.msg)
}

func (e *addrRefusedError) Unwrap() error { return errAddressRefused }

// dialGuard decides, at dial time (after DNS resolution, for every
// redirect too), which addresses the http module may connect to:
//
//   - never: link-local (169.254.0.0/16, fe80::/10: cloud metadata
//     services), unspecified, multicast, and the daemon's own admin
//     listener;
//   - loopback and private ranges (127.0.0.0/8, ::1, 10/8, 172.16/12,
//     192.168/16, 100.64/10, fc00::/7) only when an HTTPAllow prefix covers
//     them;
//   - any other (public) address.
type dialGuard struct {
	allow   []netip.Prefix
	admin   []netip.AddrPort // the admin listener; an unspecified IP stands for every local address
	refused *prometheus.CounterVec
}

var sharedAddrSpace = netip.MustParsePrefix("100.64.0.0/10")

// check returns nil when addr may be dialled.
func (g *dialGuard) check(addr netip.AddrPort) error {
	ip := addr.Addr().Unmap()
	addr = netip.AddrPortFrom(ip, addr.Port())
	refuse := func(reason, msg string) error {
		if g.refused != nil {
			g.refused.WithLabelValues(reason).Inc()
		}
		return &addrRefusedError{addr: addr, reason: reason, msg: msg}
	}
	for _, a := range g.admin {
		if a.Port() == addr.Port() && (a.Addr().Unmap() == ip || a.Addr().IsUnspecified() && (ip.IsLoopback() || ip.IsPrivate())) {
			return refuse("admin", "it is the daemon's admin listener (never reachable from hooks)")
		}
	}
	switch {
	case ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast():
		return refuse("link_local", "link-local addresses (169.254.0.0/16, fe80::/10: cloud metadata services) are never reachable from hooks")
	case ip.IsUnspecified():
		return refuse("unspecified", "the unspecified address is not reachable from hooks")
	case ip.IsMulticast():
		return refuse("multicast", "multicast addresses are not reachable from hooks")
	}
	local := ""
	switch {
	case ip.IsLoopback():
		local = "loopback"
	case ip.IsPrivate() || sharedAddrSpace.Contains(ip):
		local = "private"
	}
	if local == "" {
		return nil
	}
	for _, p := range g.allow {
		if p.Contains(ip) {
			return nil
		}
	}
	return refuse(local, fmt.Sprintf("%s addresses are reachable from hooks only when listed in scripts.http_allow", local))
}

// control is a net.Dialer Control function: it sees the resolved address
// of each connection just before it is made.
func (g *dialGuard) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("dial %s %s: %w", network, address, errAddressRefused)
	}
	return g.check(ap)
}

// ParseHTTPAllow parses scripts.http_allow entries: CIDR prefixes
// ("127.0.0.1/32", "10.0.0.0/8") or single addresses.
func ParseHTTPAllow(entries []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if p, err := netip.ParsePrefix(e); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(e)
		if err != nil {
			return nil, fmt.Errorf("http allow entry %q: want an address or a CIDR prefix (127.0.0.1, 10.0.0.0/8)", e)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// adminAddrPorts resolves the admin listener's host:port (unix sockets and
// unparsable values give nothing; "localhost" gives both loopbacks).
func adminAddrPorts(addr string) []netip.AddrPort {
	if addr == "" || strings.HasPrefix(addr, "unix:") {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	pn, err := netip.ParseAddrPort(net.JoinHostPort("0.0.0.0", port))
	if err != nil {
		return nil
	}
	var ips []netip.Addr
	switch {
	case host == "":
		ips = []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()}
	case strings.EqualFold(host, "localhost"):
		ips = []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}
	default:
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return nil
		}
		ips = []netip.Addr{ip}
	}
	out := make([]netip.AddrPort, 0, len(ips))
	for _, ip := range ips {
		out = append(out, netip.AddrPortFrom(ip, pn.Port()))
	}
	return out
}
