package carp

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pfcarp/pfcarp/internal/clock"
)

var epoch = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// sent is one advertisement a node handed to its Sender.
type sent struct {
	from   string // node name
	parent string
	dst    netip.Addr
	hdr    Header
	raw    []byte
}

type recorder struct {
	name     string
	trans    []Transition
	failNext int // BecomeMaster fails this many more times
	out      *[]sent
	sendErr  error
}

func (r *recorder) BecomeMaster(t Transition, _ []netip.Prefix) error {
	if r.failNext > 0 {
		r.failNext--
		return errors.New("address add refused")
	}
	r.trans = append(r.trans, t)
	return nil
}

func (r *recorder) Release(t Transition, _ []netip.Prefix) error {
	r.trans = append(r.trans, t)
	return nil
}

func (r *recorder) Send(parent string, dst netip.Addr, b []byte) error {
	if r.sendErr != nil {
		return r.sendErr
	}
	var h Header
	if err := h.Decode(b); err != nil {
		panic(fmt.Sprintf("node sent an undecodable advertisement: %v", err))
	}
	*r.out = append(*r.out, sent{from: r.name, parent: parent, dst: dst, hdr: h, raw: bytes.Clone(b)})
	return nil
}

// env is one Node under a fake clock, with every action recorded.
type env struct {
	t    *testing.T
	clk  *clock.Fake
	node *Node
	rec  *recorder
	out  []sent
}

func newEnv(t *testing.T, cfgs ...Config) *env {
	t.Helper()
	e := &env{t: t, clk: clock.NewFake(epoch)}
	e.rec = &recorder{name: "n", out: &e.out}
	n, err := NewNode(NodeOptions{Clock: e.clk, Actions: e.rec, Sender: e.rec,
		Rand: bytes.NewReader(bytes.Repeat([]byte{0xab}, 800))})
	if err != nil {
		t.Fatal(err)
	}
	e.node = n
	for _, c := range cfgs {
		if _, err := n.AddGroup(c); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// advance moves the fake clock by d, ticking the node at every deadline
// on the way, as the Runner would.
func (e *env) advance(d time.Duration) {
	end := e.clk.Now().Add(d)
	for {
		dl := e.node.Deadline()
		if dl.IsZero() || dl.After(end) {
			e.clk.AdvanceTo(end)
			return
		}
		e.clk.AdvanceTo(dl)
		e.node.Tick()
	}
}

func (e *env) group(vhid uint8) *Group {
	for _, g := range e.node.Groups() {
		if g.cfg.VHID == vhid {
			return g
		}
	}
	e.t.Fatalf("no vhid %d", vhid)
	return nil
}

func (e *env) wantState(vhid uint8, s State) {
	e.t.Helper()
	if got := e.group(vhid).State(); got != s {
		e.t.Fatalf("vhid %d state %v, want %v (last transition %+v)", vhid, got, s, e.group(vhid).LastTransition())
	}
}

// peerAdvert builds an advertisement as a peer with the same pass would.
func peerAdvert(c Config, base, skew, demote uint8, counter uint64) []byte {
	key, _ := NewKey(c.Pass)
	var addrs []netip.Addr
	for _, p := range c.VIPs {
		addrs = append(addrs, p.Addr())
	}
	h := Header{Version: Version, Type: TypeAdvert, VHID: c.VHID, AdvBase: base, AdvSkew: skew,
		AuthLen: AuthLen, Demote: demote, Counter: counter}
	h.HMAC = NewAuth(key, c.VHID, addrs).Sign(counter)
	return h.AppendTo(nil)
}

var peer4 = netip.MustParseAddr("192.0.2.2")

func (e *env) deliver(c Config, base, skew, demote uint8) {
	e.node.Receive(c.Parent, &Packet{Src: peer4, Dst: Group4, TTL: 255, Payload: peerAdvert(c, base, skew, demote, 77)})
}

func cfg1() Config {
	return Config{VHID: 1, AdvBase: 1, AdvSkew: 10, Pass: "11111", Parent: "eth0",
		VIPs: []netip.Prefix{netip.MustParsePrefix("192.0.2.51/24")}}
}

func TestTimingFormulas(t *testing.T) {
	us := time.Microsecond
	for _, tc := range []struct {
		base, skew uint8
		adv, down  time.Duration
	}{
		{1, 0, time.Second, 3 * time.Second},
		{1, 10, time.Second + 39062*us, 3*time.Second + 39062*us},
		{1, 20, time.Second + 78125*us, 3*time.Second + 78125*us},
		{2, 255, 2*time.Second + 996093*us, 6*time.Second + 996093*us},
		{0, 0, 3906 * us, 11718 * us},                             // OpenBSD: 1/256 s and 3/256 s
		{0, 128, 500 * time.Millisecond, 1500 * time.Millisecond}, // 3*advskew/256
	} {
		if got := AdvInterval(tc.base, tc.skew); got != tc.adv {
			t.Errorf("AdvInterval(%d,%d) = %v, want %v", tc.base, tc.skew, got, tc.adv)
		}
		if got := MasterDown(tc.base, tc.skew); got != tc.down {
			t.Errorf("MasterDown(%d,%d) = %v, want %v", tc.base, tc.skew, got, tc.down)
		}
	}
}

func TestInitBackupMasterTiming(t *testing.T) {
	e := newEnv(t, cfg1())
	e.wantState(1, Init)
	e.advance(time.Hour)
	e.wantState(1, Init) // no timers in INIT
	e.node.SetParentUp("eth0", true)
	e.wantState(1, Backup)
	down := MasterDown(1, 10)
	e.advance(down - time.Microsecond)
	e.wantState(1, Backup)
	if len(e.out) != 0 {
		t.Fatalf("backup sent %d advertisements", len(e.out))
	}
	e.advance(time.Microsecond)
	e.wantState(1, Master)
	if len(e.out) != 1 {
		t.Fatalf("new master sent %d advertisements at once, want 1", len(e.out))
	}
	a := e.out[0]
	if a.dst != Group4 || a.parent != "eth0" || a.hdr.VHID != 1 || a.hdr.AdvBase != 1 || a.hdr.AdvSkew != 10 ||
		a.hdr.Demote != 0 || a.hdr.AuthLen != 7 || a.raw[0] != 0x21 {
		t.Fatalf("advertisement %+v to %v", a.hdr, a.dst)
	}
	// Then one every advbase + advskew/256.
	e.advance(10 * AdvInterval(1, 10))
	if len(e.out) != 11 {
		t.Fatalf("sent %d advertisements in 10 intervals, want 11", len(e.out))
	}
	for i := 1; i < len(e.out); i++ {
		if e.out[i].hdr.Counter != e.out[i-1].hdr.Counter+1 {
			t.Fatalf("counter %d then %d", e.out[i-1].hdr.Counter, e.out[i].hdr.Counter)
		}
	}
	if e.out[0].hdr.Counter != 0xabababababababab+1 {
		t.Fatalf("counter not seeded from Rand: %x", e.out[0].hdr.Counter)
	}
	tr := e.rec.trans
	if len(tr) != 2 || tr[0].From != Init || tr[0].To != Backup || tr[1].To != Master ||
		!strings.Contains(tr[1].Reason, "master down") || !tr[1].At.Equal(epoch.Add(time.Hour+down)) {
		t.Fatalf("transitions %+v", tr)
	}
}

func TestBackupStaysWhileMasterAdvertises(t *testing.T) {
	c := cfg1()
	e := newEnv(t, c)
	e.node.SetParentUp("eth0", true)
	for range 20 {
		e.advance(AdvInterval(1, 0))
		e.deliver(c, 1, 0, 0) // a better master
	}
	e.wantState(1, Backup)
	// Counters need not increase: the same and a smaller one are fine.
	e.node.Receive("eth0", &Packet{Src: peer4, TTL: 255, Payload: peerAdvert(c, 1, 0, 0, 3)})
	if got := e.node.Stats().Received; got != 21 {
		t.Fatalf("accepted %d advertisements, want 21", got)
	}
	e.advance(MasterDown(1, 10))
	e.wantState(1, Master)
}

func TestMasterYields(t *testing.T) {
	for _, tc := range []struct {
		name              string
		base, skew, demot uint8
		want              State
	}{
		{"more frequent", 1, 5, 0, Backup},
		{"equal (tie: the receiver yields)", 1, 10, 0, Backup},
		{"less frequent", 1, 11, 0, Master},
		{"smaller advbase wins over skew", 0, 200, 0, Backup},
		{"better but more demoted (OpenBSD)", 1, 0, 1, Master},
		{"worse but less demoted cannot happen here: we are undemoted", 2, 0, 0, Master},
		{"bow-out is no reason to yield", 255, 255, 0, Master},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg1()
			e := newEnv(t, c)
			e.node.SetParentUp("eth0", true)
			e.advance(MasterDown(1, 10))
			e.wantState(1, Master)
			e.deliver(c, tc.base, tc.skew, tc.demot)
			e.wantState(1, tc.want)
			if tc.want == Backup {
				if len(e.rec.trans) != 3 || e.rec.trans[2].To != Backup || !strings.Contains(e.rec.trans[2].Reason, "more frequent") {
					t.Fatalf("transitions %+v", e.rec.trans)
				}
				n := len(e.out)
				e.advance(MasterDown(1, 10) - time.Microsecond)
				if len(e.out) != n {
					t.Fatal("a backup kept advertising")
				}
			}
		})
	}
}

func TestPreempt(t *testing.T) {
	for _, preempt := range []bool{false, true} {
		c := cfg1()
		c.Preempt = preempt
		e := newEnv(t, c)
		e.node.SetParentUp("eth0", true)
		e.deliver(c, 1, 20, 0) // a slower master, heard for the first time
		e.wantState(1, Backup)
		e.advance(AdvInterval(1, 20))
		e.deliver(c, 1, 20, 0) // its next advertisement
		if preempt {
			e.wantState(1, Master)
			if !strings.Contains(e.group(1).LastTransition().Reason, "preempting") {
				t.Fatalf("reason %q", e.group(1).LastTransition().Reason)
			}
			if len(e.out) != 1 {
				t.Fatalf("preempting master sent %d advertisements at once", len(e.out))
			}
		} else {
			e.wantState(1, Backup)
		}
	}
}

func TestBowOut(t *testing.T) {
	// The going-down side.
	c := cfg1()
	e := newEnv(t, c)
	e.node.SetParentUp("eth0", true)
	e.advance(MasterDown(1, 10))
	e.wantState(1, Master)
	n := len(e.out)
	e.node.Shutdown()
	e.wantState(1, Init)
	if len(e.out) != n+1 || e.out[n].hdr.AdvBase != 255 || e.out[n].hdr.AdvSkew != 255 {
		t.Fatalf("no bow-out advertisement: %+v", e.out[n:])
	}
	e.advance(time.Hour)
	if len(e.out) != n+1 {
		t.Fatal("advertised after shutdown")
	}
	e.node.SetParentUp("eth0", true)
	e.wantState(1, Init) // stays down after a shutdown

	// The taking-over side, for every advbase including OpenBSD's 0 and one
	// too large for the "advertises too rarely" rule, without preempt.
	for _, base := range []uint8{0, 1, 85, 200} {
		c := cfg1()
		c.AdvBase = base
		e := newEnv(t, c)
		e.node.SetParentUp("eth0", true)
		e.deliver(c, base, 0, 0)
		e.wantState(1, Backup)
		e.deliver(c, 255, 255, 0)
		e.wantState(1, Master)
		if !strings.Contains(e.group(1).LastTransition().Reason, "bowed out") {
			t.Fatalf("advbase %d: reason %q", base, e.group(1).LastTransition().Reason)
		}
	}
}

func TestSlowMasterCountsAsDown(t *testing.T) {
	c := cfg1()
	e := newEnv(t, c)
	e.node.SetParentUp("eth0", true)
	e.deliver(c, 3, 10, 0) // 3 s + 10/256 is not more than our 3 s + 10/256
	e.wantState(1, Backup)
	e.deliver(c, 3, 11, 0) // now it is
	e.wantState(1, Master)
}

func TestAdvbaseZero(t *testing.T) {
	c := cfg1()
	c.AdvBase, c.AdvSkew = 0, 64 // 0.25 s interval, 0.75 s master-down
	e := newEnv(t, c)
	e.node.SetParentUp("eth0", true)
	e.advance(750*time.Millisecond - time.Microsecond)
	e.wantState(1, Backup)
	e.advance(time.Microsecond)
	e.wantState(1, Master)
	e.advance(time.Second)
	if len(e.out) != 5 {
		t.Fatalf("sent %d advertisements in 1 s at 0.25 s intervals (+1 at takeover), want 5", len(e.out))
	}
	if e.out[0].hdr.AdvBase != 0 || e.out[0].hdr.AdvSkew != 64 {
		t.Fatalf("advertised %+v", e.out[0].hdr)
	}
}

func TestDemotionMovesAllGroupsAndIsVisibleToBothBSDs(t *testing.T) {
	c0 := cfg1()
	c1 := cfg1()
	c1.VHID, c1.Parent = 2, "eth1"
	c1.VIPs = []netip.Prefix{netip.MustParsePrefix("198.51.100.100/24")}
	e := newEnv(t, c0, c1)
	e.node.SetParentUp("eth0", true)
	e.node.SetParentUp("eth1", true)
	e.advance(MasterDown(1, 10))
	e.wantState(1, Master)
	e.wantState(2, Master)
	n := len(e.out)

	// Pull eth1's cable.
	e.node.SetParentUp("eth1", false)
	e.wantState(2, Init)
	e.wantState(1, Master)
	if e.node.Demotion() != 1 {
		t.Fatalf("demotion %d, want 1", e.node.Demotion())
	}
	// vhid 1 told its peers at once: FreeBSD sees advskew 240, OpenBSD
	// sees demote 1.
	if len(e.out) != n+1 {
		t.Fatalf("sent %d advertisements on demotion, want 1", len(e.out)-n)
	}
	if h := e.out[n].hdr; h.VHID != 1 || h.AdvSkew != MaxSkew || h.Demote != 1 {
		t.Fatalf("demoted advertisement %+v", h)
	}
	// An undemoted FreeBSD backup (advskew 20, demote 0) preempts and
	// advertises; we must yield.
	e.deliver(c0, 1, 20, 0)
	e.wantState(1, Backup)
	// An undemoted OpenBSD master (demote 0) keeps us backup even with a
	// worse advskew than our configured one.
	e.deliver(c0, 1, 200, 0)
	e.wantState(1, Backup)

	// Plug it back: demotion lifted, vhid 2 restarts as BACKUP.
	e.node.SetParentUp("eth1", true)
	if e.node.Demotion() != 0 {
		t.Fatalf("demotion %d after recovery", e.node.Demotion())
	}
	e.wantState(2, Backup)
	if got := e.group(1).AdvSkew(); got != 10 {
		t.Fatalf("advskew %d after recovery", got)
	}
	// Link down twice counts once.
	e.node.SetParentUp("eth1", false)
	e.node.SetParentUp("eth1", false)
	if e.node.Demotion() != 1 {
		t.Fatalf("demotion %d after a repeated down", e.node.Demotion())
	}
}

func TestDemotedPeers(t *testing.T) {
	c := cfg1()
	// We are master; a demoted OpenBSD peer with a better advskew does
	// not take the group.
	e := newEnv(t, c)
	e.node.SetParentUp("eth0", true)
	e.advance(MasterDown(1, 10))
	e.deliver(c, 1, 0, 1)
	e.wantState(1, Master)
	// We are backup without preempt; a master that turns out demoted
	// (OpenBSD) is taken over at once.
	e2 := newEnv(t, c)
	e2.node.SetParentUp("eth0", true)
	e2.deliver(c, 1, 0, 0)
	e2.wantState(1, Backup)
	e2.deliver(c, 1, 0, 2)
	e2.wantState(1, Master)
	if !strings.Contains(e2.group(1).LastTransition().Reason, "demoted") {
		t.Fatalf("reason %q", e2.group(1).LastTransition().Reason)
	}
	// A demoted FreeBSD master (advskew 240, demote 0) is preempted when
	// preempt is on.
	c.Preempt = true
	e3 := newEnv(t, c)
	e3.node.SetParentUp("eth0", true)
	e3.deliver(c, 1, 0, 0) // the master we hear
	e3.advance(AdvInterval(1, 0))
	e3.deliver(c, 1, 240, 0) // demoted: preempted at once
	e3.wantState(1, Master)
}

// TestPreemptWaitsForNewMaster: a master heard for the first time (it has
// just taken over) is preempted from its second advertisement on, not at
// its first: its first moments' states must reach us first. A master we
// have been hearing is preempted as soon as it advertises more slowly.
func TestPreemptWaitsForNewMaster(t *testing.T) {
	c := cfg1()
	c.Preempt = true
	e := newEnv(t, c)
	e.node.SetParentUp("eth0", true)
	e.deliver(c, 1, 20, 0)
	e.wantState(1, Backup)
	if n := len(e.out); n != 0 {
		t.Fatalf("a backup waiting to preempt sent %d advertisements", n)
	}
	// Its next advertisement, one interval later: preempted.
	e.advance(AdvInterval(1, 20))
	e.deliver(c, 1, 20, 0)
	e.wantState(1, Master)

	// A master heard while it was faster, that becomes slower.
	e2 := newEnv(t, c)
	e2.node.SetParentUp("eth0", true)
	e2.deliver(c, 1, 0, 0)
	e2.advance(AdvInterval(1, 0))
	e2.deliver(c, 1, 0, 0)
	e2.wantState(1, Backup)
	e2.advance(AdvInterval(1, 0))
	e2.deliver(c, 1, 20, 0)
	e2.wantState(1, Master)

	// After a state change the master is new again: back to BACKUP (a
	// faster master), then a slower one waits an interval.
	e2.deliver(c, 1, 0, 0)
	e2.wantState(1, Backup)
	e2.deliver(c, 1, 20, 0)
	e2.wantState(1, Backup)

	// Node-wide: vhid 2 has been hearing the master all along, vhid 1
	// (its parent just back) hears it for the first time; neither
	// preempts until an interval later, so the VIPs move together.
	c1, c2 := cfg1(), cfg1()
	c1.Preempt, c2.Preempt = true, true
	c2.VHID, c2.Parent = 2, "eth1"
	c2.VIPs = []netip.Prefix{netip.MustParsePrefix("198.51.100.51/24")}
	e3 := newEnv(t, c1, c2)
	e3.node.SetParentUp("eth1", true)
	e3.deliver(c2, 1, 20, 0) // vhid 2's master, new
	e3.advance(AdvInterval(1, 20))
	e3.node.SetParentUp("eth0", true)
	e3.deliver(c2, 1, 20, 0) // vhid 1 has not heard its master yet: wait
	e3.wantState(2, Backup)
	e3.deliver(c1, 1, 20, 0) // vhid 1 hears it for the first time
	e3.deliver(c2, 1, 20, 0) // vhid 2 would preempt now, but waits
	e3.wantState(1, Backup)
	e3.wantState(2, Backup)
	e3.advance(AdvInterval(1, 20))
	e3.deliver(c2, 1, 20, 0)
	e3.deliver(c1, 1, 20, 0)
	e3.wantState(1, Master)
	e3.wantState(2, Master)
}

func TestAdminDemoteAndFactor(t *testing.T) {
	c := cfg1()
	c.AdvSkew = 250
	e := newEnv(t, c)
	e.node.Demote(3, "test")
	if got := e.group(1).AdvSkew(); got != 250 {
		t.Fatalf("demotion lowered advskew 250 to %d", got)
	}
	e.node.Demote(-10, "test")
	if e.node.Demotion() != 0 {
		t.Fatalf("demotion went to %d", e.node.Demotion())
	}
	e.node.Demote(300, "test")
	if e.node.demoteByte() != 255 {
		t.Fatalf("demote byte %d, want 255", e.node.demoteByte())
	}
}

func TestBecomeMasterFailureFallsBack(t *testing.T) {
	e := newEnv(t, cfg1())
	e.rec.failNext = 1
	e.node.SetParentUp("eth0", true)
	e.advance(MasterDown(1, 10))
	e.wantState(1, Backup)
	if r := e.group(1).LastTransition().Reason; !strings.Contains(r, "address add refused") {
		t.Fatalf("reason %q", r)
	}
	if len(e.out) != 0 {
		t.Fatal("advertised after failing to become master")
	}
	e.advance(MasterDown(1, 10))
	e.wantState(1, Master)
}

func TestSendErrorsDemote(t *testing.T) {
	e := newEnv(t, cfg1())
	e.node.SetParentUp("eth0", true)
	e.advance(MasterDown(1, 10))
	e.rec.sendErr = errors.New("no buffer space")
	e.advance(2 * AdvInterval(1, 10))
	if e.node.Demotion() != 0 {
		t.Fatal("demoted after 2 errors")
	}
	e.advance(AdvInterval(1, 10))
	if e.node.Demotion() != 1 {
		t.Fatalf("demotion %d after 3 send errors, want 1", e.node.Demotion())
	}
	e.rec.sendErr = nil
	n := len(e.out)
	e.advance(2 * AdvInterval(1, MaxSkew))
	if e.node.Demotion() != 1 {
		t.Fatal("undemoted too early")
	}
	e.advance(AdvInterval(1, MaxSkew))
	if e.node.Demotion() != 0 {
		t.Fatalf("demotion %d after 3 good sends", e.node.Demotion())
	}
	if e.out[n].hdr.AdvSkew != MaxSkew || e.out[len(e.out)-1].hdr.AdvSkew != 10 {
		t.Fatalf("advskew during/after demotion: %d, %d", e.out[n].hdr.AdvSkew, e.out[len(e.out)-1].hdr.AdvSkew)
	}
	// 3 periodic failures, then the immediate advertisement announcing
	// the demotion failed too.
	if s := e.node.Stats(); s.SendErrors != 4 {
		t.Fatalf("send errors counted %d", s.SendErrors)
	}
}

func TestRejectsCounted(t *testing.T) {
	c := cfg1()
	e := newEnv(t, c)
	good := peerAdvert(c, 1, 0, 0, 5)
	recv := func(p Packet) { e.node.Receive("eth0", &p) }
	recv(Packet{Src: peer4, TTL: 255, Payload: good}) // INIT: ignored
	e.node.SetParentUp("eth0", true)
	recv(Packet{Src: peer4, TTL: 64, Payload: good})
	recv(Packet{Src: peer4, TTL: 255, Payload: good[:20]})
	bad := bytes.Clone(good)
	bad[30] ^= 1
	recv(Packet{Src: peer4, TTL: 255, Payload: bad})
	v3 := bytes.Clone(good)
	v3[0] = 0x31
	v3[6], v3[7] = 0, 0
	v3[6], v3[7] = byte(Checksum(v3)>>8), byte(Checksum(v3))
	recv(Packet{Src: peer4, TTL: 255, Payload: v3})
	other := c
	other.VHID = 9
	recv(Packet{Src: peer4, TTL: 255, Payload: peerAdvert(other, 1, 0, 0, 5)})
	recv(Packet{Src: netip.MustParseAddr("2001:db8::2"), TTL: 255, Payload: good}) // no IPv6 VIP
	wrongPass := c
	wrongPass.Pass = "22222"
	recv(Packet{Src: peer4, TTL: 255, Payload: peerAdvert(wrongPass, 1, 0, 0, 5)})
	recv(Packet{Src: peer4, TTL: 255, Payload: good})
	e.advance(MasterDown(1, 10))
	e.wantState(1, Master)
	recv(Packet{Src: peer4, TTL: 255, Payload: e.out[0].raw}) // our own, looped back

	s := e.node.Stats()
	want := map[Reject]uint64{RejectState: 1, RejectTTL: 1, RejectShort: 1, RejectChecksum: 1,
		RejectVersion: 1, RejectVHID: 2, RejectAuth: 1, RejectOwn: 1}
	for r := Reject(0); r < NumRejects; r++ {
		if s.Rejects[r] != want[r] {
			t.Errorf("%v: counted %d, want %d", r, s.Rejects[r], want[r])
		}
	}
	if s.Received != 2 {
		t.Errorf("received %d, want 2", s.Received)
	}
	e.wantState(1, Master)
}

func TestIPv6AndUnicastPeers(t *testing.T) {
	c := cfg1()
	c.VIPs = append(c.VIPs, netip.MustParsePrefix("2001:db8::51/64"), netip.MustParsePrefix("fe80::51/64"))
	c.Peer = netip.MustParseAddr("192.0.2.3")
	e := newEnv(t, c)
	e.node.SetParentUp("eth0", true)
	e.advance(MasterDown(1, 10))
	if len(e.out) != 2 || e.out[0].dst != c.Peer || e.out[1].dst != Group6 {
		t.Fatalf("sent to %v", e.out)
	}
	if e.out[1].hdr.Counter != e.out[0].hdr.Counter+1 {
		t.Fatal("each packet takes the next counter")
	}
	// A FreeBSD-signed IPv6 advertisement (link-local in the HMAC) is
	// accepted.
	key, _ := NewKey(c.Pass)
	h := Header{Version: 2, Type: 1, VHID: 1, AdvBase: 1, AdvSkew: 0, AuthLen: 7, Counter: 99}
	var mac = NewAuth(key, 1, nil)
	mac.msgs = [][]byte{hmacMessage(1, []netip.Addr{netip.MustParseAddr("192.0.2.51"), netip.MustParseAddr("2001:db8::51"), netip.MustParseAddr("fe80::51")}, true)}
	h.HMAC = mac.Sign(99)
	e.node.Receive("eth0", &Packet{Src: netip.MustParseAddr("fe80::2"), TTL: 255, Payload: h.AppendTo(nil)})
	e.wantState(1, Backup)
}

func TestConfigValidate(t *testing.T) {
	bad := []func(c *Config){
		func(c *Config) { c.VHID = 0 },
		func(c *Config) { c.AdvSkew = 255 },
		func(c *Config) { c.VIPs = nil },
		func(c *Config) { c.VIPs = []netip.Prefix{netip.MustParsePrefix("224.0.0.18/32")} },
		func(c *Config) { c.VIPs = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")} },
		func(c *Config) { c.VIPs = []netip.Prefix{{}} },
		func(c *Config) { c.Peer = netip.MustParseAddr("2001:db8::1") },
		func(c *Config) { c.Peer6 = netip.MustParseAddr("192.0.2.1") },
	}
	for i, f := range bad {
		c := cfg1()
		f(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("case %d: %+v accepted", i, c)
		}
	}
	c := cfg1()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, c)
	if _, err := e.node.AddGroup(c); err == nil {
		t.Fatal("duplicate vhid accepted")
	}
}

func TestStateString(t *testing.T) {
	if Init.String() != "INIT" || Backup.String() != "BACKUP" || Master.String() != "MASTER" || State(9).String() != "STATE?" {
		t.Fatal("state names")
	}
	if RejectAuth.Error() != "carp: bad hmac" || Reject(200).String() != "reject?" {
		t.Fatal("reject names")
	}
}

// A demoted backup (e.g. waiting for its pfsync bulk update) must still take
// over within 3*advbase + advskew/256 of the master's last advertisement:
// every BSD arms the master-down timer with the configured advskew; demotion
// only changes what the node advertises.
func TestDemotedBackupMasterDownUsesConfiguredSkew(t *testing.T) {
	e := newEnv(t, cfg1())
	e.node.Demote(1, "bulk update pending")
	e.node.SetParentUp("eth0", true)
	e.wantState(1, Backup)
	if got := e.group(1).AdvSkew(); got != MaxSkew {
		t.Fatalf("demoted advskew %d, want %d", got, MaxSkew)
	}
	down := MasterDown(1, 10)
	e.advance(down - time.Microsecond)
	e.wantState(1, Backup)
	e.advance(time.Microsecond)
	e.wantState(1, Master)
}
