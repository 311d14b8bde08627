package carp

import (
	"bytes"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pfcarp/pfcarp/internal/clock"
)

// vipLog records BecomeMaster/Release calls from a Runner's loop.
type vipLog struct {
	mu    sync.Mutex
	trans []Transition
}

func (v *vipLog) BecomeMaster(t Transition, _ []netip.Prefix) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.trans = append(v.trans, t)
	return nil
}

func (v *vipLog) Release(t Transition, _ []netip.Prefix) error { return v.BecomeMaster(t, nil) }

type simNode struct {
	r    *Runner
	port *MemPort
	vips *vipLog
}

func startSimNode(t *testing.T, seg *MemSegment, src string, skew uint8, seed byte) *simNode {
	t.Helper()
	port := seg.Attach(netip.MustParseAddr(src), netip.Addr{})
	v := &vipLog{}
	r, err := NewRunner(RunnerOptions{Clock: clock.Real{}, Actions: v,
		Rand: bytes.NewReader(bytes.Repeat([]byte{seed}, 16)), Transports: map[string]Transport{"eth0": port}})
	if err != nil {
		t.Fatal(err)
	}
	for _, vhid := range []uint8{1, 2} {
		c := Config{VHID: vhid, AdvBase: 1, AdvSkew: skew, Pass: "11111", Parent: "eth0", Preempt: true,
			VIPs: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, 50 + vhid}), 24)}}
		if _, err := r.Node().AddGroup(c); err != nil {
			t.Fatal(err)
		}
	}
	r.Start()
	t.Cleanup(func() { r.Close() })
	r.Do(func(n *Node) { n.SetParentUp("eth0", true) })
	return &simNode{r: r, port: port, vips: v}
}

func (s *simNode) states() [2]State {
	var st [2]State
	s.r.Do(func(n *Node) {
		for i, g := range n.Groups() {
			st[i] = g.State()
		}
	})
	return st
}

// TestRunnersFailover runs two nodes (the seed's master with advskew 10 and
// backup with advskew 20, preempt on) over an in-memory segment inside a
// synctest bubble, so the real timers run on virtual time.
func TestRunnersFailover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := NewMemSegment()
		a := startSimNode(t, seg, "192.0.2.2", 10, 1)
		b := startSimNode(t, seg, "192.0.2.3", 20, 2)
		want := func(when string, sa, sb State) {
			t.Helper()
			synctest.Wait()
			if ga, gb := a.states(), b.states(); ga != [2]State{sa, sa} || gb != [2]State{sb, sb} {
				t.Fatalf("%s: a %v b %v, want a %v b %v", when, ga, gb, sa, sb)
			}
		}
		want("start", Backup, Backup)
		// a's master-down timer (3 s + 10/256) fires first.
		time.Sleep(3*time.Second + 50*time.Millisecond)
		want("after election", Master, Backup)
		time.Sleep(30 * time.Second)
		want("steady", Master, Backup)

		// Pull a's cable without telling a: b takes over its master-down
		// interval (3 s + 20/256) after the last advertisement it heard,
		// which was at most one interval (1 s + 10/256) before the cut.
		a.port.SetCut(true)
		time.Sleep(2 * time.Second)
		want("cable just pulled", Master, Backup)
		time.Sleep(time.Second + 100*time.Millisecond)
		want("cable pulled", Master, Master)

		// Plug it back: the two masters hear each other; b yields to
		// the more frequent a.
		a.port.SetCut(false)
		time.Sleep(2 * time.Second)
		want("cable back", Master, Backup)

		// a shuts down on purpose: it bows out and b takes over at once,
		// without waiting for its master-down timer.
		start := time.Now()
		if err := a.r.Close(); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := b.states(); got != [2]State{Master, Master} {
			t.Fatalf("after bow-out b is %v", got)
		}
		if d := time.Since(start); d != 0 {
			t.Fatalf("takeover after bow-out took %v of virtual time", d)
		}
		if err := b.r.Close(); err != nil {
			t.Fatal(err)
		}
		if a.r.Do(func(*Node) {}) {
			t.Fatal("Do ran on a closed runner")
		}
		if b.r.Drops() != 0 {
			t.Fatalf("b dropped %d packets", b.r.Drops())
		}
		for _, tr := range append(a.vips.trans, b.vips.trans...) {
			if tr.Reason == "" {
				t.Fatalf("transition without a reason: %+v", tr)
			}
		}
	})
}

func clockReal() clock.Clock { return clock.Real{} }
