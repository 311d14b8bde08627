package vip

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/pfcarp/pfcarp/internal/testenv"
)

// twoHosts builds two namespaces joined by a veth pair named eth0 on both
// sides, with 192.0.2.1/24 on a and 192.0.2.2/24 on b, and removes them when
// the test ends.
func twoHosts(t *testing.T) (a, b netns.NsHandle) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	defer netns.Set(orig)
	var names [2]string
	var hs [2]netns.NsHandle
	for i := range hs {
		names[i] = fmt.Sprintf("pfvip-%d-%d", os.Getpid(), i)
		h, err := netns.NewNamed(names[i])
		if err != nil {
			t.Fatalf("create namespace: %v", err)
		}
		hs[i] = h
		name := names[i]
		t.Cleanup(func() { h.Close(); netns.DeleteNamed(name) })
		lo, _ := netlink.LinkByName("lo")
		netlink.LinkSetUp(lo)
	}
	// Now in hs[1]; create the pair here and move one end to hs[0].
	la := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "pfva"}, PeerName: "eth0"}
	if err := netlink.LinkAdd(la); err != nil {
		t.Fatalf("veth: %v", err)
	}
	if err := netlink.LinkSetNsFd(la, int(hs[0])); err != nil {
		t.Fatal(err)
	}
	setup := func(h netns.NsHandle, old, addr string) {
		if err := netns.Set(h); err != nil {
			t.Fatal(err)
		}
		l, err := netlink.LinkByName(old)
		if err != nil {
			t.Fatal(err)
		}
		if old != "eth0" {
			netlink.LinkSetName(l, "eth0")
		}
		a, _ := netlink.ParseAddr(addr)
		if err := netlink.AddrAdd(l, a); err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	setup(hs[0], "pfva", "192.0.2.1/24")
	setup(hs[1], "eth0", "192.0.2.2/24")
	return hs[0], hs[1]
}

// in runs f with the calling goroutine's thread in namespace h.
func in(t *testing.T, h netns.NsHandle, f func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	if err := netns.Set(h); err != nil {
		t.Fatal(err)
	}
	defer netns.Set(orig)
	f()
}

func TestAddAnnounceRemove(t *testing.T) {
	testenv.RequireRoot(t)
	a, b := twoHosts(t)
	v4 := netip.MustParsePrefix("192.0.2.51/24")
	v6 := netip.MustParsePrefix("2001:db8::51/64")

	// A listener on b's side of the cable, opened inside b.
	var c *arp.Client
	in(t, b, func() {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		if c, err = arp.Dial(ifi); err != nil {
			t.Fatal(err)
		}
	})
	defer c.Close()
	var icmp net.PacketConn
	in(t, b, func() {
		var err error
		if icmp, err = net.ListenPacket("ip6:ipv6-icmp", "::"); err != nil {
			t.Fatal(err)
		}
	})
	defer icmp.Close()
	// Wait for link-local addresses so the NA can be sent.
	in(t, a, func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			l, _ := netlink.LinkByName("eth0")
			addrs, _ := netlink.AddrList(l, netlink.FAMILY_V6)
			ok := false
			for _, x := range addrs {
				if x.IP.IsLinkLocalUnicast() && x.Flags&0x40 == 0 { // not tentative
					ok = true
				}
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no usable link-local address on eth0")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	o := NewOwner("eth0", nil)
	in(t, a, func() {
		if err := o.Add([]netip.Prefix{v4, v6}); err != nil {
			t.Fatalf("Add: %v", err)
		}
		for _, p := range []netip.Prefix{v4, v6} {
			if ok, err := o.Has(p.Addr()); err != nil || !ok {
				t.Fatalf("Has(%v) = %v, %v after Add", p, ok, err)
			}
		}
		// Adding twice is not an error (a MASTER re-asserting itself).
		if err := o.Add([]netip.Prefix{v4}); err != nil {
			t.Fatalf("second Add: %v", err)
		}
	})

	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		p, _, err := c.Read()
		if err != nil {
			t.Fatalf("no gratuitous ARP for %v seen on the peer: %v", v4.Addr(), err)
		}
		if p.Operation == arp.OperationRequest && p.SenderIP == v4.Addr() && p.TargetIP == v4.Addr() {
			break
		}
	}

	icmp.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 1500)
	for {
		n, _, err := icmp.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no unsolicited neighbour advertisement for %v seen on the peer: %v", v6.Addr(), err)
		}
		m, err := ndp.ParseMessage(buf[:n])
		if na, ok := m.(*ndp.NeighborAdvertisement); err == nil && ok && na.TargetAddress == v6.Addr() && na.Override && !na.Solicited {
			break
		}
	}

	in(t, a, func() {
		if err := o.Remove([]netip.Prefix{v4, v6}); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		for _, p := range []netip.Prefix{v4, v6} {
			if ok, _ := o.Has(p.Addr()); ok {
				t.Fatalf("%v still present after Remove", p)
			}
		}
		// Removing what is not there is not an error (a BACKUP at start).
		if err := o.Remove([]netip.Prefix{v4}); err != nil {
			t.Fatalf("second Remove: %v", err)
		}
	})
}
