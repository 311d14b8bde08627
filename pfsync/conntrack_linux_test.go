package pfsync

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"

	"github.com/pfcarp/pfcarp/internal/testenv"
)

var (
	bedVIP     = netip.MustParseAddrPort("203.0.113.80:80")
	bedBackend = netip.MustParseAddrPort("198.51.100.20:8080")
	bedSNAT    = netip.MustParseAddr("198.51.100.1")
)

// failoverBed is four namespaces: a client c, two identical NAT routers ra
// and rb (same addresses, same rules: the two balancers), and a server s.
// c and s reach both routers over separate links; their routes point at ra
// until moveToB. The routers redirect bedVIP to bedBackend and source-NAT
// to bedSNAT:40000-40999.
type failoverBed struct {
	c, ra, rb, s *testNS
}

func newFailoverBed(t testing.TB) *failoverBed {
	testenv.RequireRoot(t)
	b := &failoverBed{c: newNS(t, "c"), ra: newNS(t, "ra"), rb: newNS(t, "rb"), s: newNS(t, "s")}
	link(t, b.c, "ca", "192.0.2.10/24", b.ra, "ac", "192.0.2.1/24")
	link(t, b.c, "cb", "192.0.2.10/24", b.rb, "bc", "192.0.2.1/24")
	link(t, b.s, "sa", "198.51.100.20/24", b.ra, "as", "198.51.100.1/24")
	link(t, b.s, "sb", "198.51.100.20/24", b.rb, "bs", "198.51.100.1/24")
	for _, n := range []*testNS{b.c, b.s, b.ra, b.rb} {
		n.sysctl(t, "net.ipv4.conf.all.rp_filter", "0")
		n.sysctl(t, "net.ipv4.conf.default.rp_filter", "0")
	}
	for _, r := range []*testNS{b.ra, b.rb} {
		r.sysctl(t, "net.ipv4.ip_forward", "1")
		natRouter(t, r, bedVIP, bedBackend, bedSNAT, 40000, 40999)
	}
	b.c.do(t, func() error {
		for _, i := range []string{"ca", "cb"} {
			b.c.sysctl(t, "net.ipv4.conf."+i+".rp_filter", "0")
		}
		return routeVia("203.0.113.0/24", "192.0.2.1", "ca")
	})
	b.s.do(t, func() error { return routeVia("0.0.0.0/0", "198.51.100.1", "sa") })
	for _, x := range []struct {
		n   *testNS
		ifs []string
	}{{b.c, []string{"ca", "cb"}}, {b.s, []string{"sa", "sb"}}, {b.ra, []string{"ac", "as"}}, {b.rb, []string{"bc", "bs"}}} {
		x.n.do(t, func() error {
			for _, i := range x.ifs {
				if err := waitOperUp(i); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return b
}

// moveToB pulls ra's cables and points c's and s's routes at rb.
func (b *failoverBed) moveToB(t testing.TB) {
	t.Helper()
	b.ra.do(t, func() error {
		if err := setLink("ac", false); err != nil {
			return err
		}
		return setLink("as", false)
	})
	// Both ends of a pulled cable lose the link (and its routes).
	b.c.do(t, func() error {
		if err := setLink("ca", false); err != nil {
			return err
		}
		return routeVia("203.0.113.0/24", "192.0.2.1", "cb")
	})
	b.s.do(t, func() error {
		if err := setLink("sa", false); err != nil {
			return err
		}
		return routeVia("0.0.0.0/0", "198.51.100.1", "sb")
	})
}

// echoServer listens on addr inside n and echoes every connection.
func echoServer(t testing.TB, n *testNS, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	n.do(t, func() error {
		var err error
		ln, err = net.Listen("tcp4", addr)
		return err
	})
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
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
			go func() { defer wg.Done(); defer c.Close(); io.Copy(c, c) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln
}

func dialIn(t testing.TB, n *testNS, addr string) net.Conn {
	t.Helper()
	var c net.Conn
	n.do(t, func() error {
		var err error
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err = (&net.Dialer{}).DialContext(ctx, "tcp4", addr)
		return err
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes n bytes and reads the echo back within a deadline.
func roundTrip(t testing.TB, c net.Conn, n int, seed byte) {
	t.Helper()
	out := make([]byte, n)
	for i := range out {
		out[i] = seed + byte(i*7)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	errc := make(chan error, 1)
	go func() { _, err := c.Write(out); errc <- err }()
	in := make([]byte, n)
	if _, err := io.ReadFull(c, in); err != nil {
		t.Fatalf("echo of %d bytes: %v", n, err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(in, out) {
		t.Fatal("echo differs")
	}
}

func findFlow(t testing.TB, states []State, dst netip.AddrPort) *State {
	t.Helper()
	for i := range states {
		s := &states[i]
		if s.Proto == unix.IPPROTO_TCP && netip.AddrPortFrom(s.Orig.Dst, s.Orig.DstPort) == dst {
			return s
		}
	}
	t.Fatalf("no tcp state to %v among %d", dst, len(states))
	return nil
}

func dumpIn(t testing.TB, n *testNS) []State {
	t.Helper()
	var out []State
	n.do(t, func() error {
		ct, err := DialConntrack()
		if err != nil {
			return err
		}
		defer ct.Close()
		out, err = ct.Dump(nil)
		return err
	})
	return out
}

func injectIn(t testing.TB, n *testNS, s *State) {
	t.Helper()
	n.do(t, func() error {
		ct, err := DialConntrack()
		if err != nil {
			return err
		}
		defer ct.Close()
		return ct.Inject(s)
	})
}

// TestInjectedNATFlowSurvivesFailover is the kernel fact the design rests
// on: an established, redirected and source-NATed TCP flow, copied from
// router A's conntrack into identical router B's, continues through B with
// the same translations (same backend, same translated source port), with
// data in flight right after the move and no reset.
func TestInjectedNATFlowSurvivesFailover(t *testing.T) {
	b := newFailoverBed(t)
	echoServer(t, b.s, bedBackend.String())
	c := dialIn(t, b.c, bedVIP.String())
	roundTrip(t, c, 64<<10, 1)

	src := findFlow(t, dumpIn(t, b.ra), bedVIP)
	if src.Status&(StatusDstNAT|StatusSrcNAT) != StatusDstNAT|StatusSrcNAT || src.TCP.State != TCPEstablished {
		t.Fatalf("router A's entry: status %#x tcp state %d, want DNAT+SNAT established", src.Status, src.TCP.State)
	}
	if dnat, snat := src.NAT(); dnat != bedBackend || snat.Addr() != bedSNAT || snat.Port() < 40000 || snat.Port() > 40999 {
		t.Fatalf("router A's translations: dnat %v snat %v", dnat, snat)
	}
	injectIn(t, b.rb, src)
	got := findFlow(t, dumpIn(t, b.rb), bedVIP)
	if got.Reply != src.Reply || got.Status&(StatusDstNAT|StatusSrcNAT|StatusDstNATDone|StatusSrcNATDone) != StatusDstNAT|StatusSrcNAT|StatusDstNATDone|StatusSrcNATDone {
		t.Fatalf("router B's injected entry: reply %+v status %#x, want reply %+v with NAT and NAT_DONE bits", got.Reply, got.Status, src.Reply)
	}
	if got.TCP.State != TCPEstablished || got.Status&StatusAssured == 0 {
		t.Fatalf("router B's injected entry: tcp state %d status %#x", got.TCP.State, got.Status)
	}

	// Mid-stream: the client keeps writing while the routes move.
	b.moveToB(t)
	t.Cleanup(func() {
		if t.Failed() {
			logNS(t, b.rb)
			logNS(t, b.c)
			logNS(t, b.s)
		}
	})
	for i := 0; i < 4; i++ {
		roundTrip(t, c, 256<<10, byte(i))
	}
	after := findFlow(t, dumpIn(t, b.rb), bedVIP)
	if after.Reply != src.Reply {
		t.Fatalf("translation changed after failover: %+v, was %+v", after.Reply, src.Reply)
	}
	if after.Packets != [2]uint64{} && after.Packets[0] == 0 {
		t.Fatalf("router B did not carry the flow: %+v", after.Packets)
	}
	// A clean close through B.
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := io.Copy(io.Discard, c); err != nil || n != 0 {
		t.Fatalf("close through B: %d bytes, %v", n, err)
	}
}

// TestPlainCreateCarriesNoNAT pins the other half of the kernel fact: an
// entry created with its translated reply tuple but no NAT bindings (what
// a generic ctnetlink create does) gets no NAT status bits, so the kernel
// would not translate its packets. Inject must therefore set NAT up.
func TestPlainCreateCarriesNoNAT(t *testing.T) {
	testenv.RequireRoot(t)
	n := newNS(t, "plain")
	s := State{Proto: unix.IPPROTO_TCP, Status: StatusSeenReply | StatusAssured | StatusDstNAT | StatusDstNATDone | StatusConfirmed,
		Orig:    Tuple{Src: netip.MustParseAddr("192.0.2.10"), Dst: bedVIP.Addr(), SrcPort: 40001, DstPort: bedVIP.Port()},
		Reply:   Tuple{Src: bedBackend.Addr(), Dst: netip.MustParseAddr("192.0.2.10"), SrcPort: bedBackend.Port(), DstPort: 40001},
		Timeout: 100, TCP: TCPInfo{State: TCPEstablished}}
	n.do(t, func() error {
		c, err := conntrack.Dial(nil)
		if err != nil {
			return err
		}
		defer c.Close()
		f := conntrack.NewFlow(unix.IPPROTO_TCP, conntrack.Status(s.Status), s.Orig.Src, s.Orig.Dst, s.Orig.SrcPort, s.Orig.DstPort, 100, 0)
		f.TupleReply = toTuple(s.Proto, s.Reply)
		return c.Create(f)
	})
	got := findFlow(t, dumpIn(t, n), bedVIP)
	if got.Status&StatusDstNAT != 0 {
		t.Fatalf("a plain create got DST_NAT (%#x): the kernel changed, revisit Inject's NAT setup", got.Status)
	}
	// The same state through Inject in a fresh namespace gets the bits.
	n2 := newNS(t, "inject")
	injectIn(t, n2, &s)
	got = findFlow(t, dumpIn(t, n2), bedVIP)
	if got.Status&(StatusDstNAT|StatusDstNATDone) != StatusDstNAT|StatusDstNATDone || got.Reply != s.Reply {
		t.Fatalf("Inject: status %#x reply %+v, want DST_NAT(_DONE) and %+v", got.Status, got.Reply, s.Reply)
	}
}

// TestInjectBatch applies one batch whose guesses are right and wrong: new
// entries created, a known one updated, a "new" one that exists (EEXIST,
// redone as an update) and a "known" one that has gone (ENOENT, redone as
// a create); the kernel then holds every state as sent.
func TestInjectBatch(t *testing.T) {
	testenv.RequireRoot(t)
	n := newNS(t, "batch")
	pre := []State{benchState(1), benchState(2)}
	for i := range pre {
		injectIn(t, n, &pre[i])
	}
	batch := []State{benchState(1), benchState(2), benchState(3), benchState(4), benchState(5)}
	exists := []bool{true, false, false, true, false}
	for i := range batch {
		batch[i].Mark = 0x100 + uint32(i)
		batch[i].Timeout = 1000
	}
	batch[0].TCP.State = TCPFinWait
	var errs []error
	n.do(t, func() error {
		ct, err := DialConntrack()
		if err != nil {
			return err
		}
		defer ct.Close()
		errs = ct.InjectBatch(batch, exists)
		return nil
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("state %d: %v", i, err)
		}
	}
	got := map[Key]State{}
	for _, s := range dumpIn(t, n) {
		got[s.Key()] = s
	}
	for i := range batch {
		s, ok := got[batch[i].Key()]
		switch {
		case !ok:
			t.Errorf("state %d missing", i)
		case s.Mark != batch[i].Mark || s.TCP.State != batch[i].TCP.State || s.Reply != batch[i].Reply:
			t.Errorf("state %d: mark %#x tcp %d reply %v, want %#x %d %v", i, s.Mark, s.TCP.State, s.Reply,
				batch[i].Mark, batch[i].TCP.State, batch[i].Reply)
		}
	}
}

// TestHandshakeStateOnPeer pins what a peer needs to carry on a
// connection whose handshake completed on the master when the sync of its
// ESTABLISHED state had not arrived yet. The connection is established
// through router A; B gets A's entry as it was during the handshake; the
// routes move to B. With the entry in SYN_RECV (the SYN/ACK seen) the
// client's next segments move B's entry to ESTABLISHED and the flow
// carries on, translations intact. In SYN_SENT the kernel takes the
// client's ACK for INVALID (no transition from SYN_SENT on an ACK of the
// original direction), so the segments are not translated and the flow
// stalls: hence the Engine's prompt send of handshake steps, and its
// writing a peer's SYN_SENT entry as SYN_RECV (which carries the flow on
// too, the SYN/ACK seen or not).
func TestHandshakeStateOnPeer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		state   uint8
		carries bool
		noReply bool // the entry as of before the SYN/ACK
	}{
		{"SYN_RECV", TCPSynRecv, true, false},
		{"SYN_SENT", TCPSynSent, false, true},
		// what the Engine writes for a peer's SYN_SENT
		{"SYN_SENT written as SYN_RECV", TCPSynRecv, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newFailoverBed(t)
			echoServer(t, b.s, bedBackend.String())
			c := dialIn(t, b.c, bedVIP.String())
			roundTrip(t, c, 4<<10, 1)
			src := findFlow(t, dumpIn(t, b.ra), bedVIP)
			hs := *src
			hs.TCP.State = tc.state
			hs.Status &^= StatusAssured
			hs.Timeout = 60
			if tc.noReply { // the SYN/ACK not seen yet
				hs.Status &^= StatusSeenReply
				hs.TCP.Flags[1], hs.TCP.WScale[1] = 0, 0
			}
			injectIn(t, b.rb, &hs)
			if got := findFlow(t, dumpIn(t, b.rb), bedVIP); got.TCP.State != tc.state {
				t.Fatalf("B's entry in tcp state %d, want %d", got.TCP.State, tc.state)
			}
			b.moveToB(t)
			if !tc.carries {
				// A negative check: nothing can make an echo come back
				// early, so the deadline only bounds the wait.
				c.SetDeadline(time.Now().Add(2 * time.Second))
				if _, err := c.Write([]byte("after takeover")); err != nil {
					t.Fatalf("write: %v", err)
				}
				if n, err := c.Read(make([]byte, 64)); err == nil {
					t.Fatalf("the flow carried on through B's %s entry (%d bytes echoed): the kernel fact changed", tc.name, n)
				}
				if got := findFlow(t, dumpIn(t, b.rb), bedVIP); got.TCP.State != tc.state {
					t.Fatalf("B's entry moved to tcp state %d", got.TCP.State)
				}
				return
			}
			for i := 0; i < 3; i++ {
				roundTrip(t, c, 64<<10, byte(i))
			}
			after := findFlow(t, dumpIn(t, b.rb), bedVIP)
			if after.TCP.State != TCPEstablished || after.Reply != src.Reply {
				t.Fatalf("B's entry after takeover: tcp state %d reply %+v, want ESTABLISHED %+v", after.TCP.State, after.Reply, src.Reply)
			}
		})
	}
}

// TestSynSentAsSynRecvOnPeer checks the two sides of writing a peer's
// SYN_SENT entry as SYN_RECV: a connection the master holds in SYN_SENT
// whose handshake completes only after the takeover (the server's SYN/ACK
// held back until then) completes through B, and one whose handshake
// had completed (SYN_RECV never synced) carries on.
func TestSynSentAsSynRecvOnPeer(t *testing.T) {
	b := newFailoverBed(t)
	echoServer(t, b.s, bedBackend.String())
	// The server's SYN/ACKs are dropped until the takeover.
	hold := dropSynAck(t, b.s)
	type dialed struct {
		c   net.Conn
		err error
	}
	dc := make(chan dialed, 1)
	go func() {
		var d dialed
		d.err = b.c.run(func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var err error
			d.c, err = (&net.Dialer{}).DialContext(ctx, "tcp4", bedVIP.String())
			return err
		})
		dc <- d
	}()
	var src *State
	poll(t, "the SYN through A", func() bool {
		for _, s := range dumpIn(t, b.ra) {
			if s.Orig.Dst == bedVIP.Addr() && s.TCP.State == TCPSynSent {
				src = &s
				return true
			}
		}
		return false
	})
	if src.Status&StatusSeenReply != 0 {
		t.Fatalf("A's entry saw a reply: %+v", src)
	}
	hs := *src
	hs.TCP.State = TCPSynRecv // as applyState writes a peer's SYN_SENT
	injectIn(t, b.rb, &hs)
	b.moveToB(t)
	hold()
	d := <-dc
	if d.err != nil {
		t.Fatalf("handshake through B: %v", d.err)
	}
	defer d.c.Close()
	roundTrip(t, d.c, 16<<10, 3)
	after := findFlow(t, dumpIn(t, b.rb), bedVIP)
	if after.TCP.State != TCPEstablished || after.Reply != src.Reply {
		t.Fatalf("B's entry: tcp state %d reply %+v, want ESTABLISHED %+v", after.TCP.State, after.Reply, src.Reply)
	}
}

// dropSynAck makes n drop the TCP SYN/ACKs it sends until the returned
// function is called.
func dropSynAck(t *testing.T, n *testNS) func() {
	t.Helper()
	return nsRule(t, n, "pfsync_hold", nftables.ChainHookOutput,
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x12}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x12}},
		&expr.Verdict{Kind: expr.VerdictDrop})
}

// nsRule adds, in n's nftables, table (inet) with one base chain at hook
// (filter priority) holding one rule of exprs, and returns a function
// that removes the table.
func nsRule(t *testing.T, n *testNS, table string, hook *nftables.ChainHook, exprs ...expr.Any) (remove func()) {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(n.h)))
	if err != nil {
		t.Fatal(err)
	}
	tb := c.AddTable(&nftables.Table{Name: table, Family: nftables.TableFamilyINet})
	ch := c.AddChain(&nftables.Chain{Name: "c", Table: tb, Type: nftables.ChainTypeFilter,
		Hooknum: hook, Priority: nftables.ChainPriorityFilter})
	c.AddRule(&nftables.Rule{Table: tb, Chain: ch, Exprs: exprs})
	if err := c.Flush(); err != nil {
		t.Fatalf("nftables table %s in %s: %v", table, n.name, err)
	}
	return func() {
		c.DelTable(tb)
		if err := c.Flush(); err != nil {
			t.Fatalf("nftables in %s: %v", n.name, err)
		}
	}
}

// TestLiberalize: a router's own entry (tracked with windows) is made
// liberal in both directions and keeps carrying its connection; a second
// pass changes nothing.
func TestLiberalize(t *testing.T) {
	b := newFailoverBed(t)
	echoServer(t, b.s, bedBackend.String())
	c := dialIn(t, b.c, bedVIP.String())
	roundTrip(t, c, 64<<10, 1)
	liberal := func(s *State) bool { return s.TCP.Flags[0]&s.TCP.Flags[1]&TCPFlagBeLiberal != 0 }
	if s := findFlow(t, dumpIn(t, b.ra), bedVIP); liberal(s) {
		t.Fatalf("router A's own entry is liberal already (flags %#x %#x): the test proves nothing", s.TCP.Flags[0], s.TCP.Flags[1])
	}
	pass := func() int {
		var n int
		b.ra.do(t, func() error {
			ct, err := DialConntrack()
			if err != nil {
				return err
			}
			defer ct.Close()
			n, err = ct.Liberalize()
			return err
		})
		return n
	}
	if n := pass(); n < 1 {
		t.Fatalf("Liberalize changed %d entries, want the connection's", n)
	}
	s := findFlow(t, dumpIn(t, b.ra), bedVIP)
	if !liberal(s) || s.TCP.State != TCPEstablished {
		t.Fatalf("after Liberalize: flags %#x %#x, tcp state %d; want both liberal, established", s.TCP.Flags[0], s.TCP.Flags[1], s.TCP.State)
	}
	if n := pass(); n != 0 {
		t.Fatalf("a second pass changed %d entries, want 0", n)
	}
	roundTrip(t, c, 64<<10, 2)
}

// useLabels loads, into n's nftables, a rule that reads connection labels:
// the kernel attaches labels to entries only in a namespace whose rules
// use them (net->ct.labels_used), as a pfcarp ruleset with queues,
// route-to or if-bound does.
func useLabels(t *testing.T, n *testNS) {
	t.Helper()
	nsRule(t, n, "labels", nftables.ChainHookInput,
		&expr.Ct{Key: expr.CtKeyLABELS, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 16)},
		&expr.Counter{})
}

// A state's connection labels are written with it, created or updated,
// and read back by a dump.
func TestInjectLabels(t *testing.T) {
	testenv.RequireRoot(t)
	n := newNS(t, "labels")
	useLabels(t, n)
	s := benchState(1)
	s.Labels = [16]byte{0: 0x2a, 8: 3, 10: 1, 15: 0x80}
	injectIn(t, n, &s)
	u := benchState(2)
	injectIn(t, n, &u)
	u.Labels[1] = 7 // a label set later, on an existing entry
	n.do(t, func() error {
		ct, err := DialConntrack()
		if err != nil {
			return err
		}
		defer ct.Close()
		for _, err := range ct.InjectBatch([]State{u}, []bool{true}) {
			if err != nil {
				return err
			}
		}
		return nil
	})
	got := map[Key]State{}
	for _, d := range dumpIn(t, n) {
		got[d.Key()] = d
	}
	for _, want := range []State{s, u} {
		if g, ok := got[want.Key()]; !ok || g.Labels != want.Labels {
			t.Errorf("entry %v: labels %x (found %v), want %x", want.Orig, g.Labels, ok, want.Labels)
		}
	}
}

// Labels a rule sets on a new connection arrive with its NEW event, which
// is what the daemon replicates (fromFlow).
func TestEventCarriesLabels(t *testing.T) {
	testenv.RequireRoot(t)
	n := newNS(t, "labelev")
	want := [16]byte{8: 5} // as route-to's byte 8
	nsRule(t, n, "labels", nftables.ChainHookOutput,
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x1e, 0x6c}}, // 7788
		&expr.Immediate{Register: 1, Data: want[:]},
		&expr.Ct{Key: expr.CtKeyLABELS, Register: 1, SourceRegister: true})
	echoServer(t, n, "127.0.0.1:7788")
	var evc *conntrack.Conn
	n.do(t, func() error { var err error; evc, err = conntrack.Dial(nil); return err })
	defer evc.Close()
	evs := make(chan conntrack.Event, 64)
	if _, err := evc.Listen(evs, 1, []netfilter.NetlinkGroup{netfilter.GroupCTNew}); err != nil {
		t.Fatal(err)
	}
	n.do(t, func() error {
		cn, err := net.DialTimeout("tcp4", "127.0.0.1:7788", 2*time.Second)
		if err == nil {
			cn.Close()
		}
		return err
	})
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev := <-evs:
			if ev.Flow == nil || ev.Flow.TupleOrig.Proto.DestinationPort != 7788 {
				continue
			}
			s, ok := fromFlow(ev.Flow)
			if !ok || s.Labels != want {
				t.Fatalf("NEW event's labels %x, want %x", s.Labels, want)
			}
			return
		case <-deadline:
			t.Fatal("no NEW event for the connection")
		}
	}
}
