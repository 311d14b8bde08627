package compile

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"

	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/nft/nfttest"
)

// Kernel tests of state limits, overload, scrub, tags and dynamic
// interface addresses, on the bed of kernel_linux_test.go.

// serveEcho listens on addr inside ns and echoes every line on every
// connection, keeping connections open until the client closes them.
func serveEcho(t *testing.T, ns *nfttest.NS, addr string) {
	t.Helper()
	var ln net.Listener
	ns.Exec(t, "listen "+addr, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				r := bufio.NewReader(c)
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(l)); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close() // connections a test killed never see the client's FIN
		}
		mu.Unlock()
		wg.Wait()
	})
}

// dial connects from ns (from src) to addr.
func dial(ns *nfttest.NS, src netip.Addr, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() (err error) {
		d := net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
		c, err = d.Dial("tcp", addr)
		return err
	})
	return c, err
}

// echo sends a line on c and reports whether it came back in time.
func echo(c net.Conn, timeout time.Duration) error {
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	l, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if l != "ping\n" {
		return fmt.Errorf("echo: got %q", l)
	}
	return nil
}

// The brute-force idiom: the 6th connection from a source with 5 open is
// refused, the source lands in the table, its new connections are
// blocked and its open ones killed (flush global); another source is not
// affected.
func TestKernelMaxSrcConnOverload(t *testing.T) {
	b := newBed(t)
	serveEcho(t, b.router, "192.0.2.1:22")
	b.load(t, `
set skip on lo
table <bruteforce> persist
block quick from <bruteforce>
pass in on eth0 proto tcp to port ssh keep state (max-src-conn 5, overload <bruteforce> flush global)
`)
	var open []net.Conn
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	for i := 0; i < 5; i++ {
		c, err := dial(b.client, clientA, "192.0.2.1:22", 2*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
		open = append(open, c)
		if err := echo(c, 2*time.Second); err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
	}
	if in, err := b.conn.TableTest("bruteforce", []netip.Addr{clientA}); err != nil || in[0] {
		t.Fatalf("source in <bruteforce> before the limit: %v %v", in, err)
	}
	if c, err := dial(b.client, clientA, "192.0.2.1:22", time.Second); err == nil {
		c.Close()
		t.Fatal("the 6th connection from one source got through max-src-conn 5")
	}
	in, err := b.conn.TableTest("bruteforce", []netip.Addr{clientA, clientB})
	if err != nil || !in[0] || in[1] {
		t.Fatalf("after the 6th connection: <bruteforce> holds A, B: %v (want true, false), %v", in, err)
	}
	ents, err := b.conn.TableEntries("bruteforce")
	if err != nil || len(ents) != 1 || ents[0] != netip.PrefixFrom(clientA, 32) {
		t.Fatalf("-T show bruteforce: %v, %v", ents, err)
	}
	// flush global: the open connections are dead.
	for i, c := range open {
		if err := echo(c, 500*time.Millisecond); err == nil {
			t.Fatalf("connection %d of the overloaded source still works", i+1)
		}
	}
	// B is not affected; A stays blocked.
	c, err := dial(b.client, clientB, "192.0.2.1:22", 2*time.Second)
	if err != nil {
		t.Fatalf("other source: %v", err)
	}
	if err := echo(c, 2*time.Second); err != nil {
		t.Fatalf("other source: %v", err)
	}
	c.Close()
	// -T delete takes A out: it can connect again (its old connections'
	// states still count, so close them first).
	for _, c := range open {
		c.Close()
	}
	open = nil
	if n, err := b.conn.ChangeTable("bruteforce", nft.TableDelete, []netip.Prefix{netip.PrefixFrom(clientA, 32)}); err != nil || n != 1 {
		t.Fatalf("-T delete: %d, %v", n, err)
	}
	if in, err := b.conn.TableTest("bruteforce", []netip.Addr{clientA}); err != nil || in[0] {
		t.Fatalf("A still in <bruteforce> after -T delete: %v %v", in, err)
	}
}

// max-src-conn-rate 3/30: three new connections pass, the fourth within
// 30 seconds does not.
func TestKernelMaxSrcConnRate(t *testing.T) {
	b := newBed(t)
	b.router.Serve(t, netip.MustParseAddrPort("192.0.2.1:2222"), "ok")
	b.load(t, `
set skip on lo
pass in on eth0 proto tcp to port 2222 keep state (max-src-conn-rate 3/30)
`)
	for i := 0; i < 3; i++ {
		if got, err := b.get(clientA, "192.0.2.1:2222"); err != nil || got != "ok" {
			t.Fatalf("connection %d: %q, %v", i+1, got, err)
		}
	}
	if _, err := b.client.Get(clientA, netip.MustParseAddrPort("192.0.2.1:2222"), time.Second); err == nil {
		t.Fatal("a 4th connection within 30 s passed max-src-conn-rate 3/30")
	}
	if got, err := b.get(clientB, "192.0.2.1:2222"); err != nil || got != "ok" {
		t.Fatalf("other source: %q, %v", got, err)
	}
}

// max N and max-src-states N.
func TestKernelStateMax(t *testing.T) {
	b := newBed(t)
	serveEcho(t, b.router, "192.0.2.1:22")
	serveEcho(t, b.router, "192.0.2.1:23")
	b.load(t, `
set skip on lo
pass in on eth0 proto tcp to port 22 keep state (max 2)
pass in on eth0 proto tcp to port 23 keep state (max-src-states 1)
`)
	var open []net.Conn
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	must := func(src netip.Addr, addr string) {
		t.Helper()
		c, err := dial(b.client, src, addr, 2*time.Second)
		if err == nil {
			err = echo(c, 2*time.Second)
			open = append(open, c)
		}
		if err != nil {
			t.Fatalf("%s -> %s: %v", src, addr, err)
		}
	}
	mustNot := func(src netip.Addr, addr, why string) {
		t.Helper()
		if c, err := dial(b.client, src, addr, time.Second); err == nil {
			c.Close()
			t.Fatalf("%s -> %s passed %s", src, addr, why)
		}
	}
	must(clientA, "192.0.2.1:22")
	must(clientB, "192.0.2.1:22")
	mustNot(clientBad, "192.0.2.1:22", "max 2")
	must(clientA, "192.0.2.1:23")
	mustNot(clientA, "192.0.2.1:23", "max-src-states 1")
	must(clientB, "192.0.2.1:23")
}

// mssServer listens on addr in ns and answers each connection with the
// MSS the server's socket uses (TCP_MAXSEG), then closes it.
func mssServer(t *testing.T, ns *nfttest.NS, addr string) {
	t.Helper()
	var ln net.Listener
	ns.Exec(t, "listen "+addr, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%d", tcpMaxSeg(c))
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
}

// MSS is clamped on the SYN by a FreeBSD scrub rule (the server sends at
// most 1200-byte segments) and, by an OpenBSD match rule's scrub options,
// on both the SYN and the SYN+ACK (the client's own MSS drops too).
func TestKernelScrubMaxMSS(t *testing.T) {
	b := newBed(t)
	mssServer(t, b.s1, "198.51.100.20:9")
	get := func() (server, client int) {
		t.Helper()
		c, err := dial(b.client, clientA, "198.51.100.20:9", 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		client = tcpMaxSeg(c)
		if _, err := fmt.Fscan(c, &server); err != nil {
			t.Fatal(err)
		}
		return server, client
	}
	b.load(t, "set skip on lo\n")
	if s, _ := get(); s <= 1200 {
		t.Fatalf("without scrub the server's MSS is already %d", s)
	}
	b.load(t, "set skip on lo\nscrub in on eth0 all max-mss 1200\n")
	s, cl := get()
	if s > 1200 {
		t.Fatalf("scrub max-mss 1200: the server's MSS is %d", s)
	}
	if cl <= 1200 {
		t.Fatalf("scrub in on eth0 clamped the reply's MSS too (client %d)", cl)
	}
	b.load(t, "set skip on lo\nmatch in on eth0 all scrub (max-mss 1100)\n")
	s, cl = get()
	if s > 1100 || cl > 1100 {
		t.Fatalf("match scrub (max-mss 1100): server %d, client %d, want both <= 1100", s, cl)
	}
}

// A tag given by a non-quick rule that a later rule overrides is kept (as
// in pf), matched by tagged on the way out, and kept by the connection:
// the replies carry it.
func TestKernelTagged(t *testing.T) {
	b := newBed(t)
	b.load(t, `
set skip on lo
block all
pass in on eth0 proto tcp from 192.0.2.100 tag FROM_A
pass in on eth0 proto tcp to 198.51.100.20 port 80
pass out on eth1 proto tcp tagged FROM_A
`)
	if got, err := b.get(clientA, "198.51.100.20:80"); err != nil || got != "s1" {
		t.Fatalf("tagged connection: %q, %v", got, err)
	}
	if _, err := b.client.Get(clientB, netip.MustParseAddrPort("198.51.100.20:80"), time.Second); err == nil {
		t.Fatal("an untagged connection passed \"pass out ... tagged FROM_A\"")
	}
	ct, err := conntrack.Dial(&netlink.Config{NetNS: b.router.FD()})
	if err != nil {
		t.Fatal(err)
	}
	defer ct.Close()
	flows, err := ct.Dump(nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range flows {
		src := f.TupleOrig.IP.SourceAddress
		if src.Unmap() != clientA || f.TupleOrig.Proto.DestinationPort != 80 {
			continue
		}
		found = true
		if got := f.Mark & CtMarkTagMask >> ctMarkTagShift; got != 1 {
			t.Errorf("connection %v: tag %d in mark %#x, want 1 (FROM_A)", f.TupleOrig, got, f.Mark)
		}
		if !f.Status.SeenReply() {
			t.Errorf("connection %v saw no reply", f.TupleOrig)
		}
	}
	if !found {
		t.Fatal("no conntrack entry for the tagged connection")
	}
}

// (if) follows the interface: an address added after the load is matched
// once RefreshDynIf ran, not before; nat to another interface's address
// uses it.
func TestKernelDynIf(t *testing.T) {
	b := newBed(t)
	serveEcho(t, b.router, "0.0.0.0:9000")
	b.load(t, `
set skip on lo
block in on eth0 proto tcp to port 9000
pass in on eth0 proto tcp to (eth0) port 9000
nat on eth1 from 192.0.2.0/24 -> (eth3)
`)
	try := func(dst string) error {
		c, err := dial(b.client, clientA, dst, time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		return echo(c, time.Second)
	}
	if err := try("192.0.2.1:9000"); err != nil {
		t.Fatalf("to (eth0): %v", err)
	}
	b.router.AddrUp(t, "eth0", netip.MustParsePrefix("192.0.2.77/24"))
	if err := try("192.0.2.77:9000"); err == nil {
		t.Fatal("a new address of eth0 matched (eth0) before the refresh")
	}
	if n, err := b.conn.RefreshDynIf(nil); err != nil || n == 0 {
		t.Fatalf("RefreshDynIf: %d, %v", n, err)
	}
	if err := try("192.0.2.77:9000"); err != nil {
		t.Fatalf("after the refresh, to eth0's new address: %v", err)
	}
	if got, err := b.get(clientA, "198.51.100.20:7"); err != nil || got != "198.51.100.129" {
		t.Fatalf("nat on eth1 -> (eth3): s1 saw %q, %v (want eth3's address)", got, err)
	}
}

// max-src-nodes 1: while one source has a connection, another source's
// are refused; a tag from rdr is matched by a filter rule.
func TestKernelSrcNodesAndRdrTag(t *testing.T) {
	b := newBed(t)
	serveEcho(t, b.router, "192.0.2.1:22")
	b.load(t, `
set skip on lo
rdr on eth0 proto tcp to 192.0.2.51 port 80 tag RDR -> 198.51.100.20
block in on eth0 proto tcp to port 80
pass in on eth0 tagged RDR
pass in on eth0 proto tcp to port 22 keep state (max-src-nodes 1)
`)
	if got, err := b.get(clientA, "192.0.2.51:80"); err != nil || got != "s1" {
		t.Fatalf("rdr with tag, pass tagged: %q, %v", got, err)
	}
	if _, err := b.client.Get(clientA, netip.MustParseAddrPort("198.51.100.20:80"), time.Second); err == nil {
		t.Fatal("a connection without the rdr's tag passed")
	}
	c, err := dial(b.client, clientA, "192.0.2.1:22", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := echo(c, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	c2, err := dial(b.client, clientA, "192.0.2.1:22", 2*time.Second)
	if err != nil {
		t.Fatalf("second connection of the one tracked source: %v", err)
	}
	c2.Close()
	if c3, err := dial(b.client, clientB, "192.0.2.1:22", time.Second); err == nil {
		c3.Close()
		t.Fatal("a second source passed max-src-nodes 1")
	}
}

// flush without global kills the overloaded source's connections of the
// overloading rule only.
func TestKernelOverloadFlushRule(t *testing.T) {
	b := newBed(t)
	serveEcho(t, b.router, "192.0.2.1:22")
	serveEcho(t, b.router, "192.0.2.1:23")
	b.load(t, `
set skip on lo
table <bad> persist
pass in on eth0 proto tcp to port 23 keep state
pass in on eth0 proto tcp to port 22 keep state (max-src-conn 1, overload <bad> flush)
`)
	other, err := dial(b.client, clientA, "192.0.2.1:23", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	first, err := dial(b.client, clientA, "192.0.2.1:22", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if err := echo(first, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if c, err := dial(b.client, clientA, "192.0.2.1:22", time.Second); err == nil {
		c.Close()
		t.Fatal("a 2nd connection passed max-src-conn 1")
	}
	if in, err := b.conn.TableTest("bad", []netip.Addr{clientA}); err != nil || !in[0] {
		t.Fatalf("A not in <bad>: %v %v", in, err)
	}
	if err := echo(first, 500*time.Millisecond); err == nil {
		t.Fatal("flush: the overloading rule's connection still works")
	}
	if err := echo(other, 2*time.Second); err != nil {
		t.Fatalf("flush (not global) killed another rule's connection: %v", err)
	}
}
