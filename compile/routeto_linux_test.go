package compile

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/pfcarp/pfcarp/nft/nfttest"
)

// addRoute adds dst via gw to ns's main table.
func addRoute(t *testing.T, ns *nfttest.NS, dst, gw string) {
	t.Helper()
	err := ns.Do(func() error {
		_, n, err := net.ParseCIDR(dst)
		if err != nil {
			return err
		}
		return netlink.RouteAdd(&netlink.Route{Dst: n, Gw: net.ParseIP(gw)})
	})
	if err != nil {
		t.Fatalf("route %s via %s: %v", dst, gw, err)
	}
}

// route-to sends a connection, all its packets in the rule's direction,
// to the target instead of the routing table's next hop.
func TestKernelRouteTo(t *testing.T) {
	b := newBed(t)
	anycast := netip.MustParsePrefix("203.0.113.5/32")
	b.s1.AddrUp(t, "s0", anycast)
	b.s2.AddrUp(t, "s0", anycast)
	b.s1.Serve(t, netip.MustParseAddrPort("203.0.113.5:80"), "s1")
	b.s2.Serve(t, netip.MustParseAddrPort("203.0.113.5:80"), "s2")
	addRoute(t, b.router, "203.0.113.5/32", "198.51.100.20") // the main table: s1
	b.load(t, "pass all\n")
	if got, err := b.get(clientA, "203.0.113.5:80"); err != nil || got != "s1" {
		t.Fatalf("without route-to: %q, %v (want s1, the routing table's)", got, err)
	}
	b.load(t, `
pass all
pass in on eth0 proto tcp to 203.0.113.5 port 80 route-to (eth3 198.51.100.150)
`)
	for i := 0; i < 3; i++ {
		if got, err := b.get(clientA, "203.0.113.5:80"); err != nil || got != "s2" {
			t.Fatalf("route-to (eth3 198.51.100.150), connection %d: %q, %v (want s2)", i, got, err)
		}
	}
	if err := b.conn.Delete(); err != nil {
		t.Fatal(err)
	}
	if rules := pfcarpRules(t, b.router); len(rules) != 0 {
		t.Fatalf("routing rules left after Delete: %v", rules)
	}
}

// reply-to sends the replies of a connection to this host back through
// the target, not by the routing table.
func TestKernelReplyTo(t *testing.T) {
	b := newBed(t)
	src := netip.MustParseAddr("203.0.113.9")
	b.s2.AddrUp(t, "s0", netip.PrefixFrom(src, 32))
	serveEcho(t, b.router, "198.51.100.129:9000")
	addRoute(t, b.router, "203.0.113.9/32", "198.51.100.20") // replies would go to s1
	try := func() error {
		c, err := dial(b.s2, src, "198.51.100.129:9000", time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		return echo(c, time.Second)
	}
	b.load(t, "pass all\n")
	if err := try(); err == nil {
		t.Fatal("the connection worked without reply-to: the test's routes are wrong")
	}
	b.load(t, `
pass all
pass in on eth3 proto tcp to port 9000 reply-to (eth3 198.51.100.150)
`)
	if err := try(); err != nil {
		t.Fatalf("reply-to (eth3 198.51.100.150): %v", err)
	}
}

// A route-to to an interface the host does not have is refused before
// anything changes.
func TestKernelRouteToMissingInterface(t *testing.T) {
	b := newBed(t)
	b.load(t, "block in on eth0 proto tcp to port 80\n")
	rs := ruleset(t, "pass in on eth0 proto tcp to port 80 route-to (pfrfnone0 198.51.100.2)\n")
	prog, err := Compile(rs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = b.conn.Load(prog)
	if err == nil || !strings.Contains(err.Error(), "pfrfnone0") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("Load: %v, want the missing interface named and nothing changed", err)
	}
	if _, err := b.client.Get(clientA, netip.MustParseAddrPort("198.51.100.20:80"), time.Second); err == nil {
		t.Fatal("the old ruleset (block) is gone")
	}
}
