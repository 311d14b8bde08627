package pfsync

import (
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"

	"github.com/pfcarp/pfcarp/internal/clock"
	"github.com/pfcarp/pfcarp/internal/testenv"
)

// syncNode runs a Runner with the real transport, conntrack and event
// subscription inside a namespace.
type syncNode struct {
	r      *Runner
	stop   chan struct{}
	wg     sync.WaitGroup
	demote int
	mu     sync.Mutex
}

// startSyncNode starts a node with a 10 ms flush interval; mut, if
// non-nil, changes its Options before the Runner is built.
func startSyncNode(t testing.TB, n *testNS, dev string, id uint32, key []byte, mut ...func(*Options)) *syncNode {
	t.Helper()
	sn := &syncNode{stop: make(chan struct{})}
	var ct *Conntrack
	var tr *RawTransport
	var evc *netlink.Conn
	n.do(t, func() error {
		var err error
		if ct, err = DialConntrack(); err != nil {
			return err
		}
		if tr, err = ListenRaw(dev, netip.Addr{}); err != nil {
			return err
		}
		evc, err = netlink.Dial(unix.NETLINK_NETFILTER, nil)
		return err
	})
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	o := Options{Clock: clock.Real{}, Logger: log, Table: &KernelTable{CT: ct, NoSyncMask: NoSyncMark},
		NodeID: id, Key: key, NoSyncMask: NoSyncMark, FlushInterval: 10 * time.Millisecond, SyncDev: dev,
		Demote: func(d int, _ string) { sn.mu.Lock(); sn.demote += d; sn.mu.Unlock() }}
	for _, m := range mut {
		m(&o)
	}
	r, err := NewRunner(o, tr)
	if err != nil {
		t.Fatal(err)
	}
	sn.r = r
	r.Start()
	sn.wg.Add(1)
	go func() {
		defer sn.wg.Done()
		if err := Watch(r, sn.stop, func() (*netlink.Conn, error) { return evc, nil }); err != nil {
			t.Errorf("Watch: %v", err)
		}
	}()
	t.Cleanup(func() {
		close(sn.stop)
		sn.wg.Wait()
		r.Close()
		ct.Close()
	})
	return sn
}

func (sn *syncNode) demotion() int { sn.mu.Lock(); defer sn.mu.Unlock(); return sn.demote }

// poll waits, with a deadline, until cond holds.
func poll(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSyncOverRawLinkAndFailover runs pfsync between the two routers over
// a dedicated sync link (multicast IP protocol 240, HMAC): a flow through
// A reaches B's kernel by itself, and continues through B after A's cables
// are pulled. B's bulk update at start lifts its demotion.
func TestSyncOverRawLinkAndFailover(t *testing.T) {
	b := newFailoverBed(t)
	link(t, b.ra, "async", "169.254.240.1/24", b.rb, "bsync", "169.254.240.2/24")
	b.ra.do(t, func() error { return waitOperUp("async") })
	b.rb.do(t, func() error { return waitOperUp("bsync") })
	key := []byte("pfsync test key")
	na := startSyncNode(t, b.ra, "async", 1, key)
	nb := startSyncNode(t, b.rb, "bsync", 2, key)
	poll(t, "both bulk updates to end", func() bool {
		return na.r.Status().Bulk == "idle" && nb.r.Status().Bulk == "idle"
	})
	if na.demotion() != 0 || nb.demotion() != 0 {
		t.Fatalf("demotion after bulk: %d %d", na.demotion(), nb.demotion())
	}

	echoServer(t, b.s, bedBackend.String())
	c := dialIn(t, b.c, bedVIP.String())
	roundTrip(t, c, 64<<10, 1)
	var src *State
	poll(t, "the flow on B", func() bool {
		for _, s := range dumpIn(t, b.rb) {
			if s.Orig.Dst == bedVIP.Addr() && s.TCP.State == TCPEstablished {
				src = &s
				return true
			}
		}
		return false
	})
	a := findFlow(t, dumpIn(t, b.ra), bedVIP)
	if src.Reply != a.Reply || src.Status&(StatusDstNAT|StatusSrcNAT) != StatusDstNAT|StatusSrcNAT {
		t.Fatalf("B's copy: reply %+v status %#x; A: %+v", src.Reply, src.Status, a.Reply)
	}
	b.moveToB(t)
	for i := 0; i < 3; i++ {
		roundTrip(t, c, 128<<10, byte(i))
	}
	st := na.r.Status()
	if st.StatesSent == 0 || st.Dropped != nil && st.Dropped["auth"] > 0 {
		t.Fatalf("A's status: %+v", st)
	}
	t.Logf("A: %+v", st)
	t.Logf("B: %+v", nb.r.Status())
}

// nullTransport sends nowhere and receives nothing until closed.
type nullTransport struct{ done chan struct{} }

func (n *nullTransport) Send([]byte) error { return nil }
func (n *nullTransport) Recv([]byte) (int, int, error) {
	<-n.done
	return 0, 0, net.ErrClosed
}
func (n *nullTransport) Close() error { close(n.done); return nil }

// TestWatchOverrun: an event socket that overran (ENOBUFS) makes the
// Runner resynchronise, and Watch goes on reading the same subscription:
// an entry created afterwards reaches the Engine by its event (no further
// resync runs).
func TestWatchOverrun(t *testing.T) {
	testenv.RequireRoot(t)
	n := newNS(t, "overrun")
	var ct *Conntrack
	var evc *netlink.Conn
	n.do(t, func() error {
		var err error
		if ct, err = DialConntrack(); err != nil {
			return err
		}
		if evc, err = netlink.Dial(unix.NETLINK_NETFILTER, nil); err != nil {
			return err
		}
		if err := evc.SetReadBuffer(1); err != nil { // the kernel's minimum
			return err
		}
		return evc.JoinGroup(uint32(netfilter.GroupCTNew))
	})
	defer ct.Close()
	const flood = 500
	for i := 0; i < flood; i++ { // nobody reads: the socket overruns
		s := benchState(i)
		if err := ct.Inject(&s); err != nil {
			t.Fatal(err)
		}
	}
	r, err := NewRunner(Options{Clock: clock.Real{}, Table: &KernelTable{CT: ct}, NodeID: 1}, &nullTransport{done: make(chan struct{})})
	if err != nil {
		t.Fatal(err)
	}
	r.Start()
	defer r.Close()
	// Start's dump holds them all. One goes without an event the socket
	// is subscribed to: the resync the overrun causes finds that.
	gone := benchState(0)
	if err := ct.Delete(&gone); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	werr := make(chan error, 1)
	go func() { werr <- Watch(r, stop, func() (*netlink.Conn, error) { return evc, nil }) }()
	defer func() {
		close(stop)
		if err := <-werr; err != nil {
			t.Errorf("Watch: %v", err)
		}
	}()
	poll(t, "the overrun reported and the resync done", func() bool {
		st := r.Status()
		return st.EventOverflows > 0 && st.ResyncRepairs > 0
	})
	s := benchState(flood)
	if err := ct.Inject(&s); err != nil {
		t.Fatal(err)
	}
	poll(t, "the entry made after the overrun", func() bool {
		held := false
		r.Do(func(e *Engine) { _, held = e.table[s.Key()] })
		return held
	})
}
