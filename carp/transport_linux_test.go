package carp

import (
	"bytes"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/net/ipv4"

	"github.com/pfcarp/pfcarp/internal/testenv"
)

// twoNamespaces builds two fresh network namespaces joined by a veth pair
// (va 198.51.100.1/24 + 2001:db8:c::1/64 in A, vb .2 / ::2 in B), never
// connected to the host's namespace, and runs inA/inB with the calling
// thread inside each in turn. Namespaces vanish with their last reference.
func twoNamespaces(t *testing.T, inA, inB func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	defer netns.Set(orig)
	nsB, err := netns.New()
	if err != nil {
		t.Fatal(err)
	}
	defer nsB.Close()
	nsA, err := netns.New()
	if err != nil {
		t.Fatal(err)
	}
	defer nsA.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "va"}, PeerName: "vb"}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	vb, err := netlink.LinkByName("vb")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetNsFd(vb, int(nsB)); err != nil {
		t.Fatal(err)
	}
	setup := func(name, v4, v6 string) {
		l, err := netlink.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range []string{v4, v6} {
			addr, err := netlink.ParseAddr(a)
			if err != nil {
				t.Fatal(err)
			}
			addr.Flags = 0x02 // IFA_F_NODAD: usable at once
			if err := netlink.AddrAdd(l, addr); err != nil {
				t.Fatal(err)
			}
		}
		if err := netlink.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	setup("va", "198.51.100.1/24", "2001:db8:c::1/64")
	inA()
	if err := netns.Set(nsB); err != nil {
		t.Fatal(err)
	}
	setup("vb", "198.51.100.2/24", "2001:db8:c::2/64")
	inB()
	// A packet sent before the veth carrier is up is lost: wait for both
	// ends to be operationally up (polling with a deadline).
	waitUp := func(ns netns.NsHandle, name string) {
		if err := netns.Set(ns); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			l, err := netlink.LinkByName(name)
			if err != nil {
				t.Fatal(err)
			}
			if l.Attrs().OperState == netlink.OperUp {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not up after 10 s (state %v)", name, l.Attrs().OperState)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitUp(nsB, "vb")
	waitUp(nsA, "va")
}

func TestRawTransport(t *testing.T) {
	testenv.RequireRoot(t)
	var a, b *RawTransport
	var ttl1 *ipv4.PacketConn
	twoNamespaces(t, func() {
		var err error
		if a, err = ListenRaw("va", true, true); err != nil {
			t.Fatal(err)
		}
		c, err := net.ListenPacket("ip4:112", "198.51.100.1")
		if err != nil {
			t.Fatal(err)
		}
		ttl1 = ipv4.NewPacketConn(c)
		if err := ttl1.SetTTL(64); err != nil {
			t.Fatal(err)
		}
	}, func() {
		var err error
		if b, err = ListenRaw("vb", true, true); err != nil {
			t.Fatal(err)
		}
	})
	defer a.Close()
	defer b.Close()
	defer ttl1.Close()

	payload := (&Header{Version: 2, Type: 1, VHID: 1, AdvBase: 1, AuthLen: 7, Counter: 5}).AppendTo(nil)
	recv := func(what string) Packet {
		t.Helper()
		got := make(chan Packet, 1)
		go func() {
			var p Packet
			buf := make([]byte, 128)
			if err := b.Recv(&p, buf); err == nil {
				got <- p
			}
		}()
		select {
		case p := <-got:
			return p
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: nothing received in 10 s", what)
		}
		return Packet{}
	}
	for _, tc := range []struct {
		dst     netip.Addr
		wantSrc netip.Addr
	}{
		{Group4, netip.MustParseAddr("198.51.100.1")},
		{netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("198.51.100.1")}, // carppeer
		{Group6, netip.Addr{}}, // source chosen by the kernel
		{netip.MustParseAddr("2001:db8:c::2"), netip.MustParseAddr("2001:db8:c::1")},
	} {
		if err := a.Send(tc.dst, payload); err != nil {
			t.Fatalf("send to %v: %v", tc.dst, err)
		}
		p := recv(tc.dst.String())
		if p.TTL != 255 || !bytes.Equal(p.Payload, payload) || p.Dst != tc.dst ||
			(tc.wantSrc.IsValid() && p.Src != tc.wantSrc) {
			t.Fatalf("to %v: got src %v dst %v ttl %d payload %x", tc.dst, p.Src, p.Dst, p.TTL, p.Payload)
		}
	}
	// A sender not using TTL 255 is reported as such, for the Node to reject.
	if _, err := ttl1.WriteTo(payload, nil, &net.IPAddr{IP: net.ParseIP("198.51.100.2")}); err != nil {
		t.Fatal(err)
	}
	if p := recv("ttl 64"); p.TTL != 64 {
		t.Fatalf("ttl reported as %d, want 64", p.TTL)
	}
}

// TestRawRunners elects a master between two Runners over real raw sockets
// in two namespaces (advbase 0, as OpenBSD allows, so it takes
// milliseconds), then fails over when the master shuts down and bows out.
func TestRawRunners(t *testing.T) {
	testenv.RequireRoot(t)
	var ta, tb *RawTransport
	twoNamespaces(t, func() {
		var err error
		if ta, err = ListenRaw("va", true, false); err != nil {
			t.Fatal(err)
		}
	}, func() {
		var err error
		if tb, err = ListenRaw("vb", true, false); err != nil {
			t.Fatal(err)
		}
	})
	mk := func(tr Transport, skew uint8) (*Runner, *vipLog) {
		v := &vipLog{}
		r, err := NewRunner(RunnerOptions{Clock: clockReal(), Actions: v, Transports: map[string]Transport{"p": tr}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Node().AddGroup(Config{VHID: 7, AdvBase: 0, AdvSkew: skew, Pass: "11111", Parent: "p",
			VIPs: []netip.Prefix{netip.MustParsePrefix("198.51.100.51/24")}}); err != nil {
			t.Fatal(err)
		}
		r.Start()
		r.Do(func(n *Node) { n.SetParentUp("p", true) })
		return r, v
	}
	ra, _ := mk(ta, 10)
	defer ra.Close()
	rb, _ := mk(tb, 60)
	defer rb.Close()
	state := func(r *Runner) (s State, st Stats) {
		r.Do(func(n *Node) { s, st = n.Groups()[0].State(), n.Stats() })
		return
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				sa, sta := state(ra)
				sb, stb := state(rb)
				t.Fatalf("%s: not reached in 10 s; a %v %+v; b %v %+v", what, sa, sta, sb, stb)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("a master, b backup hearing it", func() bool {
		sa, _ := state(ra)
		sb, stb := state(rb)
		return sa == Master && sb == Backup && stb.Received >= 10
	})
	if _, stb := state(rb); stb.Rejects != ([NumRejects]uint64{}) {
		t.Fatalf("b rejected packets: %v", stb.Rejects)
	}
	ra.Close()
	waitFor("b master after a bowed out", func() bool { s, _ := state(rb); return s == Master })
}
