package vip

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
	"github.com/vishvananda/netlink"

	"github.com/pfcarp/pfcarp/internal/testenv"
)

func TestAddAnnounceRemove(t *testing.T) {
	testenv.RequireRoot(t)
	hs, _ := testenv.TwoHosts(t, "pfvip-", netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("192.0.2.2/24"))
	a, b := hs[0], hs[1]
	v4 := netip.MustParsePrefix("192.0.2.51/24")
	v6 := netip.MustParsePrefix("2001:db8::51/64")

	// A listener on b's side of the cable, opened inside b.
	var c *arp.Client
	testenv.In(t, b, func() {
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
	testenv.In(t, b, func() {
		var err error
		if icmp, err = net.ListenPacket("ip6:ipv6-icmp", "::"); err != nil {
			t.Fatal(err)
		}
	})
	defer icmp.Close()
	// Wait for link-local addresses so the NA can be sent.
	testenv.In(t, a, func() {
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
	testenv.In(t, a, func() {
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

	testenv.In(t, a, func() {
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
