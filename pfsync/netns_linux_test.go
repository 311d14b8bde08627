package pfsync

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// testNS is an anonymous network namespace owned by a test; it vanishes
// when the handle is closed (cleanup) and nothing else holds it.
type testNS struct {
	name string
	h    netns.NsHandle
}

// newNS creates a fresh namespace, never connected to the host's.
func newNS(t testing.TB, name string) *testNS {
	t.Helper()
	var h netns.NsHandle
	err := inThread(func() error {
		orig, err := netns.Get()
		if err != nil {
			return err
		}
		defer orig.Close()
		h, err = netns.New()
		if err != nil {
			return err
		}
		return netns.Set(orig)
	})
	if err != nil {
		t.Fatalf("netns %s: %v", name, err)
	}
	n := &testNS{name: name, h: h}
	t.Cleanup(func() { h.Close() })
	n.do(t, func() error { // lo up
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	})
	return n
}

// inThread runs fn on a locked OS thread that is discarded afterwards, so
// a namespace switch can never leak into other goroutines.
func inThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		errc <- fn()
	}()
	return <-errc
}

// do runs fn inside the namespace.
func (n *testNS) do(t testing.TB, fn func() error) {
	t.Helper()
	if err := n.run(fn); err != nil {
		t.Fatalf("in netns %s: %v", n.name, err)
	}
}

func (n *testNS) run(fn func() error) error {
	return inThread(func() error {
		if err := netns.Set(n.h); err != nil {
			return err
		}
		return fn()
	})
}

func (n *testNS) sysctl(t testing.TB, key, value string) {
	t.Helper()
	p := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
	n.do(t, func() error { return os.WriteFile(p, []byte(value), 0o644) })
}

// link joins a (ifA in a) and b (ifB in b) with a veth pair and gives each
// end its addresses.
func link(t testing.TB, a *testNS, ifA, addrA string, b *testNS, ifB, addrB string) {
	t.Helper()
	a.do(t, func() error {
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: ifA}, PeerName: ifB}
		if err := netlink.LinkAdd(v); err != nil {
			return fmt.Errorf("veth %s-%s: %w", ifA, ifB, err)
		}
		peer, err := netlink.LinkByName(ifB)
		if err != nil {
			return err
		}
		return netlink.LinkSetNsFd(peer, int(b.h))
	})
	a.do(t, func() error { return addrUp(ifA, addrA) })
	b.do(t, func() error { return addrUp(ifB, addrB) })
}

func addrUp(ifname, addr string) error {
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return err
	}
	if addr != "" {
		a, err := netlink.ParseAddr(addr)
		if err != nil {
			return err
		}
		a.Flags = unix.IFA_F_NODAD
		if err := netlink.AddrAdd(l, a); err != nil {
			return fmt.Errorf("%s %s: %w", ifname, addr, err)
		}
	}
	return netlink.LinkSetUp(l)
}

// setLink sets a link up or down ("pull the cable").
func setLink(ifname string, up bool) error {
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return err
	}
	if up {
		return netlink.LinkSetUp(l)
	}
	return netlink.LinkSetDown(l)
}

// routeVia replaces the route to dst with one through gw on dev.
func routeVia(dst, gw, dev string) error {
	l, err := netlink.LinkByName(dev)
	if err != nil {
		return err
	}
	_, d, err := net.ParseCIDR(dst)
	if err != nil {
		return err
	}
	return netlink.RouteReplace(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: d, Gw: net.ParseIP(gw)})
}

// waitOperUp polls (with a deadline) until ifname is operationally up.
func waitOperUp(ifname string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, err := netlink.LinkByName(ifname)
		if err != nil {
			return err
		}
		if st := l.Attrs().OperState; st == netlink.OperUp {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("%s not up after 10 s (%v)", ifname, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// natRouter loads, into the namespace's own nftables, a redirect of
// vip:vport to backend (DNAT, as pf's rdr) and a source NAT of traffic to
// the backend onto snat with a port range (so ports are translated too):
// the translations a pfcarp balancer holds in conntrack.
func natRouter(t testing.TB, n *testNS, vip netip.AddrPort, backend netip.AddrPort, snat netip.Addr, portLo, portHi uint16) {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(n.h)))
	if err != nil {
		t.Fatal(err)
	}
	tb := c.AddTable(&nftables.Table{Name: "pfsync_test", Family: nftables.TableFamilyIPv4})
	pre := c.AddChain(&nftables.Chain{Name: "pre", Table: tb, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest})
	post := c.AddChain(&nftables.Chain{Name: "post", Table: tb, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
	b16 := func(v uint16) []byte { return []byte{byte(v >> 8), byte(v)} }
	c.AddRule(&nftables.Rule{Table: tb, Chain: pre, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: vip.Addr().AsSlice()},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b16(vip.Port())},
		&expr.Immediate{Register: 1, Data: backend.Addr().AsSlice()},
		&expr.Immediate{Register: 2, Data: b16(backend.Port())},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}})
	c.AddRule(&nftables.Rule{Table: tb, Chain: post, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: backend.Addr().AsSlice()},
		&expr.Immediate{Register: 1, Data: snat.AsSlice()},
		&expr.Immediate{Register: 2, Data: b16(portLo)},
		&expr.Immediate{Register: 3, Data: b16(portHi)},
		&expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, RegProtoMax: 3, Specified: true},
	}})
	if err := c.Flush(); err != nil {
		t.Fatalf("nftables nat in %s (needs nf_tables with nat): %v", n.name, err)
	}
}
