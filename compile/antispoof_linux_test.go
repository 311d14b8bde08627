package compile

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pfcarp/pfcarp/internal/testenv"
	"github.com/pfcarp/pfcarp/netdb"
	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/nft/nfttest"
	"github.com/pfcarp/pfcarp/pfconf"
)

// scopeBed is a router with three links, every interface with the
// link-local address Linux gives it (no DAD, so usable at once):
//
//	c  c0 192.0.2.100, 2001:db8:1::100 ---- eth0 192.0.2.1, 2001:db8:1::1   router
//	p1 s0 198.51.100.20, fe80::2 (+ .77)  ---- eth1 198.51.100.1              router
//	p2 s0 203.0.113.20, fe80::2           ---- eth2 203.0.113.1               router
//
// p1 and p2 also share the link-local fe80::2, as two links may. p1 holds
// 192.0.2.77 and 2001:db8:1::77, addresses of eth0's networks, to spoof
// with. The router does no reverse-path filtering, so only the ruleset can
// drop a spoofed packet.
type scopeBed struct {
	router, client, p1, p2 *nfttest.NS
	conn                   *nft.Conn
	udp                    net.PacketConn // the router's [::]:9
}

var (
	peerLL   = netip.MustParseAddr("fe80::2")
	spoof4   = netip.MustParseAddr("192.0.2.77")
	spoof6   = netip.MustParseAddr("2001:db8:1::77")
	p1Addr   = netip.MustParseAddr("198.51.100.20")
	routerP1 = netip.MustParseAddr("198.51.100.1")
)

func newScopeBed(t *testing.T) *scopeBed {
	testenv.RequireRoot(t)
	b := &scopeBed{
		router: nfttest.New(t, "hs-rtr"),
		client: nfttest.New(t, "hs-c"),
		p1:     nfttest.New(t, "hs-p1"),
		p2:     nfttest.New(t, "hs-p2"),
	}
	for _, ns := range []*nfttest.NS{b.router, b.client, b.p1, b.p2} {
		ns.Sysctl(t, "net.ipv6.conf.all.accept_dad", "0")
		ns.Sysctl(t, "net.ipv6.conf.default.accept_dad", "0")
	}
	for _, k := range []string{"all", "default"} {
		b.router.Sysctl(t, "net.ipv4.conf."+k+".rp_filter", "0")
	}
	pfx := netip.MustParsePrefix
	nfttest.Link(t, b.router, "eth0", pfx("192.0.2.1/24"), b.client, "c0", pfx("192.0.2.100/24"))
	b.router.AddrUp(t, "eth0", pfx("2001:db8:1::1/64"))
	b.client.AddrUp(t, "c0", pfx("2001:db8:1::100/64"))
	nfttest.Link(t, b.router, "eth1", pfx("198.51.100.1/24"), b.p1, "s0", pfx("198.51.100.20/24"))
	b.p1.AddrUp(t, "s0", pfx("fe80::2/64"))
	b.p1.AddrUp(t, "s0", netip.PrefixFrom(spoof4, 32))
	b.p1.AddrUp(t, "s0", netip.PrefixFrom(spoof6, 128))
	nfttest.Link(t, b.router, "eth2", pfx("203.0.113.1/24"), b.p2, "s0", pfx("203.0.113.20/24"))
	b.p2.AddrUp(t, "s0", pfx("fe80::2/64"))
	// Linux gives a veth its link-local once the carrier is up, which the
	// kernel notices asynchronously (linkwatch).
	for _, ifname := range []string{"eth0", "eth1", "eth2"} {
		b.linkLocal(t, ifname)
	}
	b.router.Exec(t, "listen udp :9", func() (err error) {
		b.udp, err = net.ListenPacket("udp", ":9")
		return err
	})
	t.Cleanup(func() { b.udp.Close() })
	b.conn = nft.Open(nft.WithNetNS(b.router.FD()))
	return b
}

// load expands src on the router's own interfaces, read as netdb.System
// reads them (so with the link-locals the kernel gave them), compiles and
// loads it. It returns the expanded ruleset as pfctl -nv prints it.
func (b *scopeBed) load(t *testing.T, src string) string {
	t.Helper()
	var ifs []netdb.Interface
	b.router.Exec(t, "read interfaces", func() (err error) {
		ifs, err = netdb.ReadInterfaces()
		return err
	})
	f, err := pfconf.Parse("pf.conf", []byte(src), pfconf.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := pfconf.Expand(f, &netdb.Fixed{Interfaces: ifs})
	if err != nil {
		t.Fatalf("expand: %v (interfaces %+v)", err, ifs)
	}
	prog, err := Compile(rs, Options{RuleText: RuleTexts(rs)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.conn.Load(prog); err != nil {
		t.Fatalf("load: %v\n%s", err, prog)
	}
	var out strings.Builder
	if err := rs.Print(&out, 1); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// ping6 sends ICMPv6 echo requests from ns to dst on interface ifname (a
// link-local: the scope picks the link) until a reply comes or timeout
// passes. The first request needs neighbour discovery on that link.
func ping6(ns *nfttest.NS, dst netip.Addr, ifname string, timeout time.Duration) error {
	return ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW, unix.IPPROTO_ICMPV6)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		sa := &unix.SockaddrInet6{Addr: dst.As16(), ZoneId: uint32(ifi.Index)}
		id := uint16(os.Getpid())
		buf := make([]byte, 1500)
		deadline := time.Now().Add(timeout)
		for seq := uint16(1); time.Now().Before(deadline); seq++ {
			// Echo request; the kernel fills in the ICMPv6 checksum.
			req := []byte{128, 0, 0, 0, byte(id >> 8), byte(id), byte(seq >> 8), byte(seq), 'h', 's'}
			if err := unix.Sendto(fd, req, 0, sa); err != nil {
				return err
			}
			next := time.Now().Add(500 * time.Millisecond)
			for time.Now().Before(next) {
				n, from, err := unix.Recvfrom(fd, buf, 0)
				if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
					continue
				}
				if err != nil {
					return err
				}
				f, ok := from.(*unix.SockaddrInet6)
				if ok && n >= 8 && buf[0] == 129 && buf[4] == byte(id>>8) && buf[5] == byte(id) &&
					netip.AddrFrom16(f.Addr) == dst && f.ZoneId == uint32(ifi.Index) {
					return nil
				}
			}
		}
		return fmt.Errorf("no echo reply from %s%%%s in %v", dst, ifname, timeout)
	})
}

// sendUDP sends payload from p1's address src to the router's port 9
// (198.51.100.1 for IPv4, the router's eth1 link-local for IPv6).
func (b *scopeBed) sendUDP(t *testing.T, src netip.Addr, routerLL netip.Addr, payload string) {
	t.Helper()
	dst := netip.AddrPortFrom(routerP1, 9)
	if src.Is6() {
		dst = netip.AddrPortFrom(routerLL.WithZone("s0"), 9)
	}
	b.p1.Exec(t, "send "+payload, func() error {
		c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src.WithZone(dst.Addr().Zone()), 0)), net.UDPAddrFromAddrPort(dst))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte(payload))
		return err
	})
}

// received reads the router's UDP port until every payload of want came
// (or timeout passed) and returns all payloads seen.
func (b *scopeBed) received(t *testing.T, timeout time.Duration, want ...string) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	buf := make([]byte, 100)
	deadline := time.Now().Add(timeout)
	for {
		all := true
		for _, w := range want {
			all = all && seen[w]
		}
		if all {
			return seen
		}
		b.udp.SetReadDeadline(deadline)
		n, _, err := b.udp.ReadFrom(buf)
		if err != nil {
			t.Fatalf("waiting for %q (seen %v): %v", want, seen, err)
		}
		seen[string(buf[:n])] = true
	}
}

// linkLocal returns the router's link-local address on ifname, waiting
// (up to 10 s) for the kernel to add it.
func (b *scopeBed) linkLocal(t *testing.T, ifname string) netip.Addr {
	t.Helper()
	var ll netip.Addr
	deadline := time.Now().Add(10 * time.Second)
	for {
		var ifs []netdb.Interface
		b.router.Exec(t, "read interfaces", func() (err error) {
			ifs, err = netdb.ReadInterfaces()
			return err
		})
		for _, ifc := range ifs {
			for _, a := range ifc.Addrs {
				if ifc.Name == ifname && a.Prefix.Addr().IsLinkLocalUnicast() {
					ll = a.Prefix.Addr()
				}
			}
		}
		if ll.IsValid() {
			return ll
		}
		if time.Now().After(deadline) {
			t.Fatalf("no link-local address on %s: %+v", ifname, ifs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKernelAntispoofLinkLocal: "antispoof quick for eth0" drops packets
// claiming eth0's networks that arrive on another interface, and leaves
// neighbour discovery and link-local traffic on the other links alone (it
// used to block fe80::/64 on every interface but eth0). A control without
// antispoof shows the spoofed packets do arrive, and the rule antispoof
// used to make shows the ping test can fail.
func TestKernelAntispoofLinkLocal(t *testing.T) {
	b := newScopeBed(t)
	rll := b.linkLocal(t, "eth1")
	const wait = 3 * time.Second

	// spoofed sends the two spoofed datagrams between markers and reports
	// which spoofed ones arrived. The first markers also settle ARP and
	// neighbour discovery on p1, so the spoofed packets need neither.
	spoofed := func(t *testing.T, round string) (got4, got6 bool) {
		b.sendUDP(t, p1Addr, rll, round+"m4a")
		b.sendUDP(t, peerLL, rll, round+"m6a")
		b.received(t, wait, round+"m4a", round+"m6a")
		b.sendUDP(t, spoof4, rll, round+"s4")
		b.sendUDP(t, spoof6, rll, round+"s6")
		b.sendUDP(t, p1Addr, rll, round+"m4b")
		b.sendUDP(t, peerLL, rll, round+"m6b")
		seen := b.received(t, wait, round+"m4b", round+"m6b")
		return seen[round+"s4"], seen[round+"s6"]
	}

	t.Run("no antispoof", func(t *testing.T) {
		b.load(t, "set skip on lo\n")
		if got4, got6 := spoofed(t, "a"); !got4 || !got6 {
			t.Fatalf("without antispoof the spoofed datagrams should arrive: inet %v, inet6 %v", got4, got6)
		}
	})
	t.Run("antispoof", func(t *testing.T) {
		text := b.load(t, "set skip on lo\nantispoof quick for eth0\n")
		for _, want := range []string{
			"block drop in quick on ! eth0 inet6 from 2001:db8:1::/64 to any\n",
			"block drop in quick on ! eth0 inet from 192.0.2.0/24 to any\n",
			"block drop in quick on eth0 inet6 from fe80::",
		} {
			if !containsLine(text, want) {
				t.Errorf("expanded ruleset lacks %q:\n%s", want, text)
			}
		}
		if strings.Contains(text, "fe80::/64") {
			t.Errorf("antispoof names a link-local network:\n%s", text)
		}
		for _, ifname := range []string{"eth1", "eth2"} {
			if err := ping6(b.router, peerLL, ifname, wait); err != nil {
				t.Errorf("link-local ping on %s with antispoof for eth0: %v", ifname, err)
			}
		}
		if got4, got6 := spoofed(t, "b"); got4 || got6 {
			t.Errorf("spoofed datagrams from eth0's networks arrived on eth1: inet %v, inet6 %v", got4, got6)
		}
	})
	t.Run("fe80::/64 on every other interface (antispoof before the fix)", func(t *testing.T) {
		b.load(t, "set skip on lo\nblock drop in quick on ! eth0 inet6 from fe80::/64 to any\n")
		if err := ping6(b.router, peerLL, "eth2", wait); err == nil {
			t.Error("link-local ping on eth2 succeeded with fe80::/64 blocked there")
		}
	})
}

// TestKernelLinkLocalScope: a link-local address written with its scope
// matches on that interface only: the same fe80::2 on another link is not
// blocked.
func TestKernelLinkLocalScope(t *testing.T) {
	b := newScopeBed(t)
	text := b.load(t, "set skip on lo\nblock drop in quick inet6 from fe80::2%eth1 to any\n")
	if want := "set skip on { lo }\nblock drop in quick on eth1 inet6 from fe80::2 to any\n"; text != want {
		t.Fatalf("expanded:\n%s\nwant:\n%s", text, want)
	}
	if err := ping6(b.router, peerLL, "eth2", 3*time.Second); err != nil {
		t.Errorf("fe80::2 on eth2: %v", err)
	}
	if err := ping6(b.router, peerLL, "eth1", 2*time.Second); err == nil {
		t.Error("fe80::2 on eth1 answered through the block")
	}
}

// containsLine reports whether a line of text starts with s.
func containsLine(text, s string) bool { return strings.Contains("\n"+text, "\n"+s) }
