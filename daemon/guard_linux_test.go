package daemon

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/pfcarp/pfcarp/internal/testenv"
	"github.com/pfcarp/pfcarp/nft"
)

var (
	guardA   = netip.MustParsePrefix("198.51.100.1/24")
	guardB   = netip.MustParsePrefix("198.51.100.2/24")
	guardVIP = netip.MustParsePrefix("198.51.100.10/24")
)

// guardLab is a node (a) holding guardVIP on eth0 behind the guard, with a
// TCP listener on the VIP, and a neighbour (b) that tries to reach it.
type guardLab struct {
	t     *testing.T
	hs    [2]netns.NsHandle
	names [2]string
	ln    net.Listener
}

func newGuardLab(t *testing.T) *guardLab {
	testenv.RequireRoot(t)
	g := &guardLab{t: t}
	g.hs, g.names = testenv.TwoHosts(t, "hdg-", guardA, guardB)
	testenv.In(t, g.hs[0], func() {
		if err := installHA([]netip.Addr{guardVIP.Addr()}); err != nil {
			t.Fatal(err)
		}
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		a, _ := netlink.ParseAddr(guardVIP.String())
		if err := netlink.AddrAdd(l, a); err != nil {
			t.Fatal(err)
		}
		// the VIP's listener; it belongs to a's namespace
		for deadline := time.Now().Add(5 * time.Second); ; {
			g.ln, err = net.Listen("tcp", netip.AddrPortFrom(guardVIP.Addr(), 8080).String())
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond) // the address may still be tentative
		}
		if err != nil {
			t.Fatal(err)
		}
	})
	go func() {
		for {
			c, err := g.ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { g.ln.Close() })
	return g
}

// reach reports whether b can open a TCP connection to the VIP, resolving
// its address anew (b's neighbour cache is flushed first) unless static.
func (g *guardLab) reach(static bool) bool {
	ok := false
	testenv.In(g.t, g.hs[1], func() {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			g.t.Fatal(err)
		}
		n := &netlink.Neigh{LinkIndex: l.Attrs().Index, IP: guardVIP.Addr().AsSlice()}
		_ = netlink.NeighDel(n)
		if static {
			n.State = netlink.NUD_PERMANENT
			n.HardwareAddr = g.macA()
			if err := netlink.NeighSet(n); err != nil {
				g.t.Fatal(err)
			}
		}
		c, err := net.DialTimeout("tcp", netip.AddrPortFrom(guardVIP.Addr(), 8080).String(), 300*time.Millisecond)
		if err == nil {
			c.Close()
			ok = true
		}
	})
	return ok
}

func (g *guardLab) macA() net.HardwareAddr {
	var mac net.HardwareAddr
	testenv.In(g.t, g.hs[0], func() {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			g.t.Fatal(err)
		}
		mac = l.Attrs().HardwareAddr
	})
	return mac
}

// want polls (deadline 5 s) until the VIP's reachability, by ARP and with
// a static neighbour entry, is up.
func (g *guardLab) want(up bool, what string) {
	g.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		arp, ip := g.reach(false), g.reach(true)
		if arp == up && ip == up {
			return
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("%s: VIP reachable by ARP %v, with a static neighbour %v; want %v", what, arp, ip, up)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (g *guardLab) openLease(ttl time.Duration) *lease {
	g.t.Helper()
	l, err := openLease(ttl, nft.WithNetNS(int(g.hs[0])))
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(func() { l.Close() })
	return l
}

func (g *guardLab) liveTables() int {
	n := 0
	testenv.In(g.t, g.hs[0], func() {
		c, err := nftables.New()
		if err != nil {
			g.t.Fatal(err)
		}
		ts, err := c.ListTables()
		if err != nil {
			g.t.Fatal(err)
		}
		for _, x := range ts {
			if x.Name == liveTable {
				n++
			}
		}
	})
	return n
}

func TestGuardLeaseHoldRelease(t *testing.T) {
	g := newGuardLab(t)
	g.want(false, "guard without a live table")
	l := g.openLease(time.Minute)
	g.want(false, "live table, VIP not held")
	vip := []netip.Addr{guardVIP.Addr()}
	if err := l.Hold(vip); err != nil {
		t.Fatal(err)
	}
	g.want(true, "VIP held")
	if err := l.Release(vip); err != nil {
		t.Fatal(err)
	}
	g.want(false, "VIP released")
	if err := l.Hold(vip); err != nil {
		t.Fatal(err)
	}
	g.want(true, "VIP held again")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	g.want(false, "owner socket closed")
	if n := g.liveTables(); n != 0 {
		t.Fatalf("%d live tables left after the owner closed", n)
	}
}

func TestGuardLeaseLapsesAndRenews(t *testing.T) {
	g := newGuardLab(t)
	vip := []netip.Addr{guardVIP.Addr()}
	const ttl = 600 * time.Millisecond
	l := g.openLease(ttl)
	if err := l.Hold(vip); err != nil {
		t.Fatal(err)
	}
	// Renewed well within the lease for 3 leases: still answering.
	for end := time.Now().Add(3 * ttl); time.Now().Before(end); time.Sleep(ttl / 6) {
		if err := l.Renew(); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Renew(); err != nil {
		t.Fatal(err)
	}
	if !g.reach(false) {
		t.Fatal("VIP stopped answering although its lease was renewed")
	}
	// Not renewed: it lapses (a hung daemon).
	g.want(false, "lease not renewed")
	// A release after the lapse still works (the element is gone already).
	if err := l.Release(vip); err != nil {
		t.Fatalf("release after lapse: %v", err)
	}
}

// TestGuardLeaseRenewRearms: a renewal gives every held VIP a whole lease
// again. (A plain re-add keeps the element's first expiry, and the VIP
// stopped answering for the moment between that expiry and the next
// renewal, every lease.)
func TestGuardLeaseRenewRearms(t *testing.T) {
	g := newGuardLab(t)
	const ttl = 2 * time.Second
	l := g.openLease(ttl)
	if err := l.Hold([]netip.Addr{guardVIP.Addr()}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		time.Sleep(300 * time.Millisecond)
		before := time.Now()
		if err := l.Renew(); err != nil {
			t.Fatal(err)
		}
		left := g.leaseLeft(guardVIP.Addr())
		// What the kernel reports is the time left when it was read, in
		// its own ticks: at least the lease less the time since the renewal
		// and a tick's rounding.
		if min := ttl - time.Since(before) - 20*time.Millisecond; left < min {
			t.Fatalf("renewal %d: the element expires in %v, want at least %v (a whole lease of %v)", i+1, left, min, ttl)
		}
	}
}

// leaseLeft is how long a's live element for vip has left (in the inet
// table's set), failing when there is none.
func (g *guardLab) leaseLeft(vip netip.Addr) time.Duration {
	g.t.Helper()
	var left time.Duration
	testenv.In(g.t, g.hs[0], func() {
		c, err := nftables.New()
		if err != nil {
			g.t.Fatal(err)
		}
		s := &nftables.Set{Table: &nftables.Table{Name: liveTable, Family: nftables.TableFamilyINet}, Name: "lease4", KeyType: nftables.TypeIPAddr}
		es, err := c.GetSetElements(s)
		if err != nil {
			g.t.Fatal(err)
		}
		for _, e := range es {
			if a, ok := netip.AddrFromSlice(e.Key); ok && a == vip {
				left = e.Expires
				return
			}
		}
		g.t.Fatalf("no live element for %s", vip)
	})
	return left
}

// guardChild is the child process of TestGuardSIGKILL (TestMain runs it
// when PFCARP_GUARD_CHILD names a's namespace): it holds the VIP for an
// hour.
func guardChild(nsName string) error {
	h, err := netns.GetFromName(nsName)
	if err != nil {
		return err
	}
	l, err := openLease(time.Hour, nft.WithNetNS(int(h)))
	if err != nil {
		return err
	}
	if err := l.Hold([]netip.Addr{guardVIP.Addr()}); err != nil {
		return err
	}
	fmt.Println("holding")
	time.Sleep(time.Hour)
	return nil
}

func TestMain(m *testing.M) {
	if ns := os.Getenv("PFCARP_GUARD_CHILD"); ns != "" {
		if err := guardChild(ns); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestGuardSIGKILL(t *testing.T) {
	g := newGuardLab(t)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "PFCARP_GUARD_CHILD="+g.names[0])
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "holding") {
				ready <- true
			}
		}
		close(ready)
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("child ended before holding the lease")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("child did not hold the lease in 20 s")
	}
	g.want(true, "child holds the VIP for an hour")
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	g.want(false, "holder SIGKILLed")
	if n := g.liveTables(); n != 0 {
		t.Fatalf("%d live tables left after the holder died", n)
	}
}
