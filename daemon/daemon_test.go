package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pfcarp/pfcarp/carp"
	"github.com/pfcarp/pfcarp/config"
	"github.com/pfcarp/pfcarp/internal/clock"
	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/pfload"
	"github.com/pfcarp/pfcarp/pfsync"
)

// fakeSystem is a machine in memory: CARP over a shared MemSegment, VIPs
// and the lease as sets, links reported by the test.
type fakeSystem struct {
	seg  *carp.MemSegment
	self netip.Addr // the node's own address on eth0

	mu          sync.Mutex
	calls       []string
	addrs       map[netip.Prefix]bool
	held        map[netip.Addr]bool
	renewals    int
	leaseClosed bool
	haInstalled bool
	ports       []*carp.MemPort
	loadErr     error                   // LoadPF fails with it
	pf          *pfload.Ruleset         // what LoadPF loaded last
	pfsyncErr   error                   // StartPfsync fails with it
	anchors     map[string]*nft.Program // what LoadAnchor loaded, by anchor
	anchorErr   error                   // LoadAnchor fails with it
	sticky      []nft.StickyElem        // what StickyBindings reports
	syncer      *fakeSyncer
	links       *fakeLinks
	addrCh      chan struct{}
}

func newFakeSystem(seg *carp.MemSegment, self string) *fakeSystem {
	return &fakeSystem{seg: seg, self: netip.MustParseAddr(self), addrs: map[netip.Prefix]bool{},
		held: map[netip.Addr]bool{}, links: newFakeLinks()}
}

func (s *fakeSystem) call(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, fmt.Sprintf(format, args...))
}

func (s *fakeSystem) SetForwarding(*config.Node) error { s.call("forwarding"); return nil }
func (s *fakeSystem) SetPriority(nice int) error {
	s.call("priority %d", nice)
	return nil
}
func (s *fakeSystem) InstallHA(vips []netip.Addr) error {
	s.call("install-ha %v", vips)
	s.mu.Lock()
	s.haInstalled = true
	s.mu.Unlock()
	return nil
}
func (s *fakeSystem) RemoveHA() error {
	s.call("remove-ha")
	s.mu.Lock()
	s.haInstalled = false
	s.mu.Unlock()
	return nil
}
func (s *fakeSystem) OpenLease(time.Duration) (Lease, error) {
	s.call("open-lease")
	return fakeLease{s}, nil
}
func (s *fakeSystem) VIPs(parent string) VIPOwner { return fakeOwner{s} }
func (s *fakeSystem) NewTransport(parent string, v4, v6 bool) (carp.Transport, error) {
	p := s.seg.Attach(s.self, netip.Addr{})
	s.mu.Lock()
	s.ports = append(s.ports, p)
	s.mu.Unlock()
	return p, nil
}
func (s *fakeSystem) LoadPF(_ *config.Node, rs *pfload.Ruleset) error {
	s.call("load-pf")
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loadErr == nil {
		s.pf = rs
	}
	return s.loadErr
}
func (s *fakeSystem) LoadAnchor(p *nft.Program) error {
	s.call("load-anchor %s", p.Anchor)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.anchorErr != nil {
		return s.anchorErr
	}
	if s.anchors == nil {
		s.anchors = map[string]*nft.Program{}
	}
	s.anchors[p.Anchor] = p
	return nil
}
func (s *fakeSystem) StickyBindings(prefix string) ([]nft.StickyElem, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]nft.StickyElem(nil), s.sticky...), nil
}
func (s *fakeSystem) SetSticky(e nft.StickyElem) error {
	s.call("set-sticky %s %s>%s", e.Map, e.Source, e.Backend)
	return nil
}
func (s *fakeSystem) ForgetStickyBackends(prefix string, addrs []netip.Addr) (int, error) {
	s.call("forget-sticky %s %v", prefix, addrs)
	return len(addrs), nil
}
func (s *fakeSystem) StartPflog(*config.Node, *slog.Logger) (io.Closer, error) {
	s.call("pflog")
	return io.NopCloser(nil), nil
}
func (s *fakeSystem) StartPfsync(cfg *config.Node, h SyncHooks) (Syncer, error) {
	s.call("pfsync")
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pfsyncErr != nil {
		return nil, s.pfsyncErr
	}
	s.syncer = &fakeSyncer{hooks: h}
	return s.syncer, nil
}
func (s *fakeSystem) Links() LinkSource { return s.links }
func (s *fakeSystem) WatchAddrs(done <-chan struct{}) (<-chan struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.addrCh == nil {
		s.addrCh = make(chan struct{}, 1)
	}
	return s.addrCh, nil
}
func (s *fakeSystem) RefreshPFAddrs(*config.Node) (int, error) {
	s.call("refresh-pf-addrs")
	return 1, nil
}
func (s *fakeSystem) PFStats() (*PFStats, error) {
	return &PFStats{Enabled: true, States: 7, StatesOK: true, Rules: []PFRuleStat{
		{Kind: "filter", Nr: 0, Label: "web", Packets: 10, Bytes: 1500, Evaluations: 12}},
		Tables: []PFTableStat{{Name: "web", Entries: 3}, {Anchor: "relayd/www", Name: "www", Entries: 2}, {Name: "huge", Entries: -1}}}, nil
}

func (s *fakeSystem) vipState() (onLink, leased []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p := range s.addrs {
		onLink = append(onLink, p.String())
	}
	for a := range s.held {
		leased = append(leased, a.String())
	}
	slices.Sort(onLink)
	slices.Sort(leased)
	return onLink, leased
}

type fakeOwner struct{ s *fakeSystem }

func (o fakeOwner) Add(ps []netip.Prefix) error {
	o.s.mu.Lock()
	defer o.s.mu.Unlock()
	for _, p := range ps {
		if !o.s.held[p.Addr()] {
			return fmt.Errorf("%v put on the link without a lease", p)
		}
		o.s.addrs[p] = true
	}
	return nil
}

func (o fakeOwner) Announce(ps []netip.Prefix) error {
	o.s.call("announce %v", ps)
	return nil
}

func (o fakeOwner) Remove(ps []netip.Prefix) error {
	o.s.mu.Lock()
	defer o.s.mu.Unlock()
	for _, p := range ps {
		delete(o.s.addrs, p)
	}
	return nil
}

type fakeLease struct{ s *fakeSystem }

func (l fakeLease) Hold(as []netip.Addr) error {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	for _, a := range as {
		l.s.held[a] = true
	}
	return nil
}

func (l fakeLease) Release(as []netip.Addr) error {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	for _, a := range as {
		delete(l.s.held, a)
	}
	return nil
}

func (l fakeLease) Renew() error {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	l.s.renewals++
	return nil
}

func (l fakeLease) SetTTL(time.Duration) {}

func (l fakeLease) Close() error {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	l.s.leaseClosed = true
	clear(l.s.held)
	return nil
}

type fakeSyncer struct {
	hooks     SyncHooks
	mu        sync.Mutex
	bulks     []string
	linkUp    int
	takeOvers int
	refreshes []string
	closed    bool
}

func (f *fakeSyncer) Refresh(reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refreshes = append(f.refreshes, reason)
}

func (f *fakeSyncer) TakeOver() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.takeOvers++
}

func (f *fakeSyncer) RequestBulk(reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bulks = append(f.bulks, reason)
}
func (f *fakeSyncer) LinkUp() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.linkUp++
}
func (f *fakeSyncer) Status() pfsync.Status { return pfsync.Status{} }
func (f *fakeSyncer) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
}

// fakeLinks delivers what the test sends; end closes the current
// subscription as an overrun socket would.
type fakeLinks struct {
	mu   sync.Mutex
	subs int
	cur  chan LinkState
	errs chan error
	now  map[string]LinkState // replayed to each new subscription
}

func newFakeLinks() *fakeLinks { return &fakeLinks{now: map[string]LinkState{}} }

func (f *fakeLinks) Subscribe(done <-chan struct{}) (<-chan LinkState, <-chan error, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subs++
	f.cur = make(chan LinkState, 64)
	f.errs = make(chan error, 4)
	for _, st := range f.now {
		f.cur <- st
	}
	return f.cur, f.errs, nil
}

func (f *fakeLinks) set(st LinkState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now[st.Name] = st
	if f.cur != nil {
		f.cur <- st
	}
}

func (f *fakeLinks) end() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.cur)
	f.cur = nil
}

func (f *fakeLinks) subscriptions() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.subs
}

// node is one daemon under test.
type node struct {
	t   *testing.T
	d   *Daemon
	sys *fakeSystem
	rc  string // the rc.conf's path
}

// rewrite replaces the node's rc.conf.
func (n *node) rewrite(text string) {
	n.t.Helper()
	if err := os.WriteFile(n.rc, []byte(text), 0o644); err != nil {
		n.t.Fatal(err)
	}
}

const testRC = `hostname="%s"
ifconfig_eth0="inet %s/24"
ifconfig_eth2="inet %s/24"
cloned_interfaces="carp0"
ifconfig_carp0="vhid 1 pass secret1 192.0.2.10/24 advskew %d"
carp_preempt="YES"
%s`

// startNode writes an rc.conf and starts a daemon on the fake system with
// eth0 (the CARP parent) and eth2 up.
func startNode(t *testing.T, clk *clock.Fake, seg *carp.MemSegment, name, addr, syncAddr string, skew int, extra string) *node {
	t.Helper()
	n, err := startNodePF(t, clk, seg, name, addr, syncAddr, skew, extra, "pass all\n")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// startNodePF is startNode with the contents of the node's pf.conf given;
// it returns Start's error.
func startNodePF(t *testing.T, clk *clock.Fake, seg *carp.MemSegment, name, addr, syncAddr string, skew int, extra, pf string, opts ...func(*Options)) (*node, error) {
	t.Helper()
	dir := t.TempDir()
	rc := filepath.Join(dir, "rc.conf")
	if err := os.WriteFile(rc, fmt.Appendf(nil, testRC, name, addr, syncAddr, skew, extra), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pf.conf"), []byte(pf), 0o644); err != nil {
		t.Fatal(err)
	}
	sys := newFakeSystem(seg, addr)
	sys.links.set(LinkState{Name: "eth0", Index: 2, Up: true, CarrierUps: 1, HasUps: true})
	sys.links.set(LinkState{Name: "eth2", Index: 4, Up: true, CarrierUps: 1, HasUps: true})
	o := Options{ConfigPath: rc, Socket: filepath.Join(dir, "ctl.sock"), Clock: clk, System: sys,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, f := range opts {
		f(&o)
	}
	d, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, d: d, sys: sys, rc: rc}
	t.Cleanup(func() { d.Close() })
	return n, d.Start(context.Background())
}

func (n *node) state() string {
	st := n.d.Status()
	if len(st.CARP) != 1 {
		n.t.Fatalf("%d groups", len(st.CARP))
	}
	return st.CARP[0].State
}

func (n *node) reannounces() uint64 {
	st := n.d.Status()
	if len(st.CARP) != 1 {
		n.t.Fatalf("%d groups", len(st.CARP))
	}
	return st.CARP[0].Reannounces
}

// until advances clk in 50 ms steps (at most 60 s of fake time, 10 s of
// real time) until cond holds.
func until(t *testing.T, clk *clock.Fake, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for fake := time.Duration(0); ; fake += 50 * time.Millisecond {
		if cond() {
			return
		}
		if fake > time.Minute || time.Now().After(deadline) {
			t.Fatalf("%s: not after %v of fake time", what, fake)
		}
		clk.Advance(50 * time.Millisecond)
		time.Sleep(time.Millisecond) // let the loops run
	}
}

// elapse lets d of fake time pass in until's steps, so that every loop
// runs its timers as they come due.
func elapse(clk *clock.Fake, d time.Duration) {
	for fake := time.Duration(0); fake < d; fake += 50 * time.Millisecond {
		clk.Advance(50 * time.Millisecond)
		time.Sleep(time.Millisecond)
	}
}

var epoch = time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)

func pair(t *testing.T, extra string) (clk *clock.Fake, a, b *node) {
	clk = clock.NewFake(epoch)
	seg := carp.NewMemSegment()
	a = startNode(t, clk, seg, "lb1", "192.0.2.2", "203.0.113.1", 10, extra)
	b = startNode(t, clk, seg, "lb2", "192.0.2.3", "203.0.113.2", 20, extra)
	return clk, a, b
}

func TestDaemonElection(t *testing.T) {
	clk, a, b := pair(t, "")
	until(t, clk, "lb1 MASTER, lb2 BACKUP", func() bool { return a.state() == "MASTER" && b.state() == "BACKUP" })
	onLink, leased := a.sys.vipState()
	if !slices.Equal(onLink, []string{"192.0.2.10/24"}) || !slices.Equal(leased, []string{"192.0.2.10"}) {
		t.Fatalf("MASTER: VIP on link %v, leased %v", onLink, leased)
	}
	if onLink, leased := b.sys.vipState(); len(onLink)+len(leased) != 0 {
		t.Fatalf("BACKUP: VIP on link %v, leased %v", onLink, leased)
	}
	// The lease is renewed while the CARP loop runs.
	a.sys.mu.Lock()
	before := a.sys.renewals
	a.sys.mu.Unlock()
	until(t, clk, "lease renewed", func() bool {
		a.sys.mu.Lock()
		defer a.sys.mu.Unlock()
		return a.sys.renewals > before+2
	})
	// A graceful stop bows out: lb2 takes over, lb1 keeps nothing.
	if err := a.d.Close(); err != nil {
		t.Fatal(err)
	}
	until(t, clk, "lb2 MASTER after lb1's bow-out", func() bool { return b.state() == "MASTER" })
	if onLink, leased := a.sys.vipState(); len(onLink)+len(leased) != 0 {
		t.Fatalf("after Close: VIP on link %v, leased %v", onLink, leased)
	}
	if !a.sys.leaseClosed || a.sys.haInstalled {
		t.Fatalf("after Close: lease closed %v, HA tables still installed %v", a.sys.leaseClosed, a.sys.haInstalled)
	}
}

func TestDaemonLinkLossAndReturn(t *testing.T) {
	clk, a, b := pair(t, `ifconfig_pfsync0="up syncif eth2"`+"\n")
	until(t, clk, "lb1 MASTER", func() bool { return a.state() == "MASTER" && b.state() == "BACKUP" })
	a.sys.links.set(LinkState{Name: "eth0", Index: 2, Up: false, CarrierUps: 1, HasUps: true})
	until(t, clk, "lb2 MASTER after lb1's link loss", func() bool { return b.state() == "MASTER" && a.state() != "MASTER" })
	if onLink, _ := a.sys.vipState(); len(onLink) != 0 {
		t.Fatalf("lb1 kept %v after losing its link", onLink)
	}
	// The link returns: pfsync is asked for a bulk update before CARP
	// may preempt.
	a.sys.links.set(LinkState{Name: "eth0", Index: 2, Up: true, CarrierUps: 2, HasUps: true})
	until(t, clk, "bulk requested on lb1", func() bool {
		a.sys.syncer.mu.Lock()
		defer a.sys.syncer.mu.Unlock()
		return len(a.sys.syncer.bulks) == 1
	})
	until(t, clk, "lb1 MASTER again (preempt)", func() bool { return a.state() == "MASTER" && b.state() == "BACKUP" })
	// Each takeover told pfsync (its states may have moved on the peer):
	// lb1's first election and its preemption; lb2's takeover.
	for i, n := range []*node{a, b} {
		n.sys.syncer.mu.Lock()
		got := n.sys.syncer.takeOvers
		n.sys.syncer.mu.Unlock()
		if want := 2 - i; got < want {
			t.Errorf("lb%d: pfsync told of %d takeovers, want at least %d", i+1, got, want)
		}
	}
	// A loss and return the kernel reported as one "up" report (the
	// carrier-up count grew) is a return too.
	a.sys.links.set(LinkState{Name: "eth0", Index: 2, Up: true, CarrierUps: 3, HasUps: true})
	until(t, clk, "bulk requested for the unreported flap", func() bool {
		a.sys.syncer.mu.Lock()
		defer a.sys.syncer.mu.Unlock()
		return len(a.sys.syncer.bulks) == 2
	})
	// The sync link's return starts a bulk update through LinkUp.
	a.sys.links.set(LinkState{Name: "eth2", Index: 4, Up: false, CarrierUps: 1, HasUps: true})
	a.sys.links.set(LinkState{Name: "eth2", Index: 4, Up: true, CarrierUps: 2, HasUps: true})
	until(t, clk, "LinkUp on the sync link's return", func() bool {
		a.sys.syncer.mu.Lock()
		defer a.sys.syncer.mu.Unlock()
		return a.sys.syncer.linkUp == 1
	})
}

// A split brain: lb1 hears lb2 but lb2 cannot hear lb1, so both stay
// MASTER and lb1 hears the other master every interval. lb1, master all
// along, asks lb2 for its table once and marks its states liberal once for
// the episode, however many adverts it hears; after the episode ends and
// another begins, once more.
func TestDaemonSplitBrainRefreshesOncePerEpisode(t *testing.T) {
	clk, a, b := pair(t, `ifconfig_pfsync0="up syncif eth2"`+"\n")
	until(t, clk, "lb1 MASTER", func() bool { return a.state() == "MASTER" && b.state() == "BACKUP" })
	counts := func() (int, int) {
		a.sys.syncer.mu.Lock()
		defer a.sys.syncer.mu.Unlock()
		return a.sys.syncer.takeOvers, len(a.sys.syncer.refreshes)
	}
	mute := func(m bool) {
		for _, p := range a.sys.ports {
			p.SetMute(m)
		}
	}
	elapse(clk, 5*time.Second) // master long enough to be a split's other side
	takeOvers, _ := counts()
	mute(true)
	until(t, clk, "two masters", func() bool { return a.state() == "MASTER" && b.state() == "MASTER" })
	until(t, clk, "lb1 refreshes", func() bool { _, r := counts(); return r == 1 })
	before := a.reannounces()
	elapse(clk, 10*time.Second) // ten more of lb2's adverts
	if n := a.reannounces() - before; n < 5 {
		t.Fatalf("lb1 announced %d times in 10 s of another master's adverts", n)
	}
	if got, r := counts(); got != takeOvers+1 || r != 1 {
		t.Fatalf("one episode: %d takeovers, %d refreshes; want %d, 1", got, r, takeOvers+1)
	}
	if st := a.state(); st != "MASTER" {
		t.Fatalf("lb1 %s during the split", st)
	}
	// lb2 hears lb1 again and steps down; the episode is over.
	mute(false)
	until(t, clk, "lb2 BACKUP", func() bool { return b.state() == "BACKUP" })
	elapse(clk, 5*time.Second)
	mute(true)
	until(t, clk, "lb1 refreshes for the second split", func() bool { _, r := counts(); return r == 2 })
	if got, _ := counts(); got != takeOvers+2 {
		t.Fatalf("two episodes: %d takeovers, want %d", got, takeOvers+2)
	}
}

func TestDaemonLinkSubscriptionLoss(t *testing.T) {
	clk, a, b := pair(t, "")
	until(t, clk, "lb1 MASTER", func() bool { return a.state() == "MASTER" && b.state() == "BACKUP" })
	a.sys.links.end() // the socket overran: the library closes the channel
	until(t, clk, "subscribed again", func() bool { return a.sys.links.subscriptions() == 2 })
	if st := a.d.Status(); st.LinkWatch == nil || st.LinkWatch.Resubscribes != 1 {
		t.Fatalf("link watch status %+v, want 1 resubscription", st.LinkWatch)
	}
	select {
	case err := <-a.d.Fatal():
		t.Fatalf("the daemon ended on a subscription loss: %v", err)
	default:
	}
	// The new subscription is live: a link loss still demotes.
	a.sys.links.set(LinkState{Name: "eth0", Index: 2, Up: false, CarrierUps: 1, HasUps: true})
	until(t, clk, "lb2 MASTER after the link loss seen by the new subscription", func() bool { return b.state() == "MASTER" })
	// An error the subscription survives is counted, not fatal.
	a.sys.links.mu.Lock()
	a.sys.links.errs <- errors.New("netlink: a message from a user-space sender")
	a.sys.links.mu.Unlock()
	until(t, clk, "error counted", func() bool { st := a.d.Status(); return st.LinkWatch.Errors == 1 })
}

func TestDaemonPfsyncDemotion(t *testing.T) {
	clk, a, b := pair(t, `ifconfig_pfsync0="up syncif eth2"`+"\n")
	until(t, clk, "lb1 MASTER", func() bool { return a.state() == "MASTER" && b.state() == "BACKUP" })
	demote := b.sys.syncer.hooks.Demote
	if demote == nil {
		t.Fatal("pfsync got no Demote hook although CARP runs")
	}
	// A BACKUP is demoted during its bulk update, and the lift pairs.
	demote(1, "pfsync bulk start")
	if got := b.d.Status().Demotion; got != 1 {
		t.Fatalf("BACKUP demotion %d during a bulk update, want 1", got)
	}
	demote(-1, "pfsync bulk done")
	demote(-1, "pfsync bulk done (again)") // an unpaired lift changes nothing
	if got := b.d.Status().Demotion; got != 0 {
		t.Fatalf("BACKUP demotion %d after the bulk update, want 0", got)
	}
	// A MASTER is not demoted: its own traffic is the freshest.
	a.sys.syncer.hooks.Demote(1, "pfsync bulk start")
	if got := a.d.Status().Demotion; got != 0 {
		t.Fatalf("MASTER demoted to %d by its bulk update", got)
	}
	a.sys.syncer.hooks.Demote(-1, "pfsync bulk done")
	if got := a.d.Status().Demotion; got != 0 {
		t.Fatalf("MASTER demotion %d after its bulk update", got)
	}
	for i := 0; i < 20; i++ {
		clk.Advance(100 * time.Millisecond)
		time.Sleep(time.Millisecond)
	}
	if a.state() != "MASTER" {
		t.Fatalf("lb1 %s after its bulk update", a.state())
	}
}

func TestDaemonFailedReload(t *testing.T) {
	clk, a, b := pair(t, `pf_enable="YES"`+"\n"+`pf_rules="pf.conf"`+"\n")
	until(t, clk, "lb1 MASTER", func() bool { return a.state() == "MASTER" && b.state() == "BACKUP" })
	a.sys.mu.Lock()
	a.sys.loadErr = errors.New("pf.conf:1: syntax error")
	a.sys.mu.Unlock()
	if err := a.d.Reload(); err == nil || !strings.Contains(err.Error(), "pf.conf:1") {
		t.Fatalf("Reload of a bad ruleset: %v", err)
	}
	if a.state() != "MASTER" {
		t.Fatalf("lb1 %s after a failed reload", a.state())
	}
	if onLink, leased := a.sys.vipState(); len(onLink) != 1 || len(leased) != 1 {
		t.Fatalf("a failed reload moved the VIP: on link %v, leased %v", onLink, leased)
	}
	a.sys.mu.Lock()
	a.sys.loadErr = nil
	a.sys.mu.Unlock()
	if err := a.d.Reload(); err != nil {
		t.Fatal(err)
	}
	// An address change refreshes pf's (if) sets.
	until(t, clk, "address watch subscribed", func() bool {
		a.sys.mu.Lock()
		defer a.sys.mu.Unlock()
		return a.sys.addrCh != nil
	})
	a.sys.addrCh <- struct{}{}
	until(t, clk, "(if) sets refreshed", func() bool { return a.sys.count("refresh-pf-addrs") == 1 })
}

func TestDaemonFailedStartUnwinds(t *testing.T) {
	clk := clock.NewFake(epoch)
	seg := carp.NewMemSegment()
	dir := t.TempDir()
	rc := filepath.Join(dir, "rc.conf")
	os.WriteFile(rc, fmt.Appendf(nil, testRC, "lb1", "192.0.2.2", "203.0.113.1", 10, `ifconfig_pfsync0="up syncif eth2"`+"\n"), 0o644)
	sys := newFakeSystem(seg, "192.0.2.2")
	sys.pfsyncErr = errors.New("pfsync: no conntrack")
	sock := filepath.Join(dir, "ctl.sock")
	d, err := New(Options{ConfigPath: rc, Socket: sock, Clock: clk, System: sys,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "no conntrack") {
		t.Fatalf("Start: %v", err)
	}
	if d.runner.Do(func(*carp.Node) {}) {
		t.Fatal("CARP still runs after a failed start")
	}
	for i, p := range sys.ports {
		if err := p.Send(netip.MustParseAddr("224.0.0.18"), []byte{0}); err != nil {
			t.Fatal(err)
		}
		var pkt carp.Packet
		if err := p.Recv(&pkt, make([]byte, 64)); err == nil {
			t.Fatalf("transport %d still open", i)
		}
	}
	if !sys.leaseClosed || sys.haInstalled {
		t.Fatalf("after a failed start: lease closed %v, HA tables installed %v", sys.leaseClosed, sys.haInstalled)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("control socket left: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestLeaseTTL(t *testing.T) {
	for _, c := range []struct {
		rc   string
		want time.Duration
	}{
		{`ifconfig_carp0="vhid 1 pass x 192.0.2.10/24 advskew 128"`, 1500 * time.Millisecond},
		{`ifconfig_carp0="vhid 1 pass x 192.0.2.10/24 advbase 3"`, 3 * time.Second},
	} {
		cfg, diags := config.Load("rc.conf", []byte("cloned_interfaces=\"carp0\"\nifconfig_eth0=\"inet 192.0.2.2/24\"\n"+c.rc+"\n"), nil)
		if err := diags.Err(); err != nil {
			t.Fatal(err)
		}
		if got := leaseTTL(cfg); got != c.want {
			t.Errorf("%s: lease %v, want %v", c.rc, got, c.want)
		}
	}
}

func (n *node) transitions() uint64 {
	var sum uint64
	for _, g := range n.d.Status().CARP {
		sum += g.Transitions
	}
	return sum
}

func (s *fakeSystem) count(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := 0
	for _, c := range s.calls {
		if strings.HasPrefix(c, prefix) {
			k++
		}
	}
	return k
}

// pfcarp_nice is applied at start and on a reload that changes it, not on
// one that keeps it.
func TestDaemonPriority(t *testing.T) {
	clk := clock.NewFake(epoch)
	seg := carp.NewMemSegment()
	a := startNode(t, clk, seg, "lb1", "192.0.2.2", "203.0.113.1", 10, "pfcarp_nice=-7\n")
	if got := a.sys.count("priority -7"); got != 1 {
		t.Fatalf("priority set %d times at start, want once", got)
	}
	if err := a.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := a.sys.count("priority"); got != 1 {
		t.Fatalf("an unchanged reload set the priority again (%d calls)", got)
	}
	a.rewrite(fmt.Sprintf(testRC, "lb1", "192.0.2.2", "203.0.113.1", 10, "pfcarp_nice=-3\n"))
	if err := a.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := a.sys.count("priority -3"); got != 1 {
		t.Fatalf("a changed pfcarp_nice was not applied (%d calls)", got)
	}
}

func TestDaemonReloadNodeConfig(t *testing.T) {
	const pfsync = `ifconfig_pfsync0="up syncif eth2"` + "\n"
	clk, a, b := pair(t, pfsync)
	until(t, clk, "lb1 MASTER", func() bool { return a.state() == "MASTER" && b.state() == "BACKUP" })
	rc := func(name, addr, sync string, skew int, alias bool, extra string) string {
		if alias {
			extra += `ifconfig_carp0_alias0="inet 192.0.2.11/24"` + "\n"
		}
		return fmt.Sprintf(testRC, name, addr, sync, skew, extra)
	}

	// Nothing changed: nothing moves.
	trans, has, sent := a.transitions(), a.sys.count("install-ha"), a.d.Status().CARP[0].Sent
	if err := a.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := a.d.Status().CARP[0].Sent; got != sent {
		t.Fatalf("an unchanged reload touched the group: %d advertisements sent at once", got-sent)
	}
	if a.transitions() != trans || a.sys.count("install-ha") != has || a.sys.count("pfsync") != 1 {
		t.Fatalf("an unchanged reload moved something: transitions %d -> %d, guard installs %d -> %d, pfsync starts %d",
			trans, a.transitions(), has, a.sys.count("install-ha"), a.sys.count("pfsync"))
	}

	// A VIP added on the MASTER: guarded, leased and on the link at once,
	// without a transition; the peer gets the same list.
	const two = true
	a.rewrite(rc("lb1", "192.0.2.2", "203.0.113.1", 10, two, pfsync))
	b.rewrite(rc("lb2", "192.0.2.3", "203.0.113.2", 20, two, pfsync))
	for _, n := range []*node{a, b} {
		if err := n.d.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	onLink, leased := a.sys.vipState()
	if !slices.Equal(onLink, []string{"192.0.2.10/24", "192.0.2.11/24"}) || len(leased) != 2 {
		t.Fatalf("after adding a VIP: on link %v, leased %v", onLink, leased)
	}
	if a.transitions() != trans || a.sys.count("install-ha") != has+1 {
		t.Fatalf("adding a VIP: transitions %d -> %d, guard installs %d", trans, a.transitions(), a.sys.count("install-ha"))
	}
	if onLink, _ := b.sys.vipState(); len(onLink) != 0 {
		t.Fatalf("BACKUP put %v on its link", onLink)
	}
	for i := 0; i < 40; i++ { // both sign with the new list: no takeover
		clk.Advance(100 * time.Millisecond)
		time.Sleep(time.Millisecond)
	}
	if a.state() != "MASTER" || b.state() != "BACKUP" {
		t.Fatalf("after the VIP change: lb1 %s lb2 %s", a.state(), b.state())
	}

	// advskew raised above the peer's: with preempt, lb2 takes over.
	a.rewrite(rc("lb1", "192.0.2.2", "203.0.113.1", 100, two, pfsync))
	if err := a.d.Reload(); err != nil {
		t.Fatal(err)
	}
	until(t, clk, "lb2 preempts lb1's raised advskew", func() bool { return b.state() == "MASTER" && a.state() == "BACKUP" })
	if got := a.d.Status().CARP[0].AdvSkew; got != 100 {
		t.Fatalf("advskew %d after the reload", got)
	}

	// pfsync settings changed: pfsync restarts.
	a.rewrite(rc("lb1", "192.0.2.2", "203.0.113.1", 100, two, `ifconfig_pfsync0="up syncif eth2 maxupd 64"`+"\n"))
	old := a.sys.syncer
	if err := a.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if !old.closed || a.sys.syncer == old || a.sys.count("pfsync") != 2 {
		t.Fatalf("pfsync not restarted: old closed %v, starts %d", old.closed, a.sys.count("pfsync"))
	}

	// A bad file changes nothing and says where.
	trans = a.transitions()
	a.rewrite(rc("lb1", "192.0.2.2", "203.0.113.1", 300, two, pfsync))
	err := a.d.Reload()
	if err == nil || !strings.Contains(err.Error(), "rc.conf:5") {
		t.Fatalf("reload of a bad file: %v; want an error at rc.conf:5", err)
	}
	if got := a.d.Status().CARP[0].AdvSkew; got != 100 || a.transitions() != trans {
		t.Fatalf("a bad file changed the node: advskew %d, transitions %d -> %d", got, trans, a.transitions())
	}
	// A change that needs a restart is refused whole.
	a.rewrite(rc("lb1", "192.0.2.2", "203.0.113.1", 10, two, pfsync) +
		`ifconfig_eth1="inet 198.51.100.2/24"` + "\n" + `cloned_interfaces="carp0 carp1"` + "\n" +
		`ifconfig_carp1="vhid 2 pass y 198.51.100.10/24"` + "\n")
	if err := a.d.Reload(); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("reload adding CARP on a new parent: %v", err)
	}
	if got := a.d.Status().CARP; len(got) != 1 || got[0].AdvSkew != 100 {
		t.Fatalf("a refused reload changed the groups: %+v", got)
	}
}

func TestDaemonMetricsAndStatusPage(t *testing.T) {
	clk, a, b := pair(t, `pfcarp_metrics="127.0.0.1:0"`+"\n"+`ifconfig_pfsync0="up syncif eth2"`+"\n"+
		`pf_enable="YES"`+"\n"+`pf_rules="pf.conf"`+"\n")
	until(t, clk, "lb1 MASTER", func() bool { return a.state() == "MASTER" && b.state() == "BACKUP" })
	get := func(n *node, path string) string {
		t.Helper()
		resp, err := http.Get("http://" + n.d.WebAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s: %s", path, resp.Status, body)
		}
		return string(body)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(get(a, "/metrics")))
	if err != nil {
		t.Fatalf("the Prometheus text parser rejects /metrics: %v", err)
	}
	value := func(name string, labels map[string]string) (float64, bool) {
		f := fams[name]
		if f == nil {
			return 0, false
		}
	next:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue(), true
			}
			return m.GetGauge().GetValue(), true
		}
		return 0, false
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"pfcarp_carp_state", map[string]string{"interface": "eth0", "vhid": "1", "group": "carp0", "state": "master"}, 1},
		{"pfcarp_carp_state", map[string]string{"interface": "eth0", "vhid": "1", "state": "backup"}, 0},
		{"pfcarp_carp_advskew", map[string]string{"group": "carp0"}, 10},
		{"pfcarp_carp_demotion", nil, 0},
		{"pfcarp_pf_rule_packets_total", map[string]string{"kind": "filter", "rule": "0", "label": "web"}, 10},
		{"pfcarp_pf_rule_bytes_total", map[string]string{"rule": "0"}, 1500},
		{"pfcarp_pf_states", nil, 7},
		{"pfcarp_pfsync_bulk_updates_total", map[string]string{"result": "failed"}, 0},
		{"pfcarp_pf_table_entries", map[string]string{"anchor": "", "table": "web"}, 3},
		{"pfcarp_pf_table_entries", map[string]string{"anchor": "relayd/www", "table": "www"}, 2},
	} {
		got, ok := value(c.name, c.labels)
		if !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if f := fams["pfcarp_pfsync_sync_lag_seconds"]; f == nil || f.GetType().String() != "HISTOGRAM" ||
		len(f.GetMetric()) != 1 || len(f.GetMetric()[0].GetHistogram().GetBucket()) != len(pfsync.LagBounds)+1 {
		t.Errorf("pfcarp_pfsync_sync_lag_seconds: %v, want a histogram with %d buckets and +Inf", f, len(pfsync.LagBounds))
	}
	// A table too large to count has no series (rather than a wrong one).
	if f := fams["pfcarp_pf_table_entries"]; f == nil || f.GetType().String() != "GAUGE" || len(f.GetMetric()) != 2 {
		t.Errorf("pfcarp_pf_table_entries: %v, want two gauges (web, www; not huge)", f)
	}
	if sent, ok := value("pfcarp_carp_adverts_sent_total", map[string]string{"group": "carp0"}); !ok || sent < 1 {
		t.Errorf("adverts sent %v", sent)
	}
	if _, ok := value("pfcarp_build_info", nil); !ok {
		t.Error("no pfcarp_build_info")
	}
	if f := fams["pfcarp_carp_transitions_total"]; f == nil || f.GetType().String() != "COUNTER" {
		t.Errorf("transitions are not a counter: %v", f)
	}
	// Every documented metric that this node has is there.
	for _, m := range metricDescs {
		// relayd's are TestRelaydMetrics'
		if strings.HasPrefix(m.name, "pfcarp_link_watch") || m.name == "pfcarp_pfsync_dropped_total" || strings.HasPrefix(m.name, "pfcarp_relayd_") {
			continue
		}
		if fams[m.name] == nil && !(m.name == "pfcarp_carp_adverts_rejected_total") {
			t.Errorf("metric %s missing", m.name)
		}
	}
	page := get(a, "/")
	for _, want := range []string{"lb1", "MASTER", "192.0.2.10/24", "pfsync", "web", "relayd/www", "too large to count", "relayd is not enabled"} {
		if !strings.Contains(page, want) {
			t.Errorf("status page lacks %q", want)
		}
	}
	if strings.Contains(page, "http://") || strings.Contains(page, "https://") || strings.Contains(page, "<script") {
		t.Error("status page refers to external assets or runs scripts")
	}
	// Read-only: no other method.
	resp, err := http.Post("http://"+a.d.WebAddr()+"/status.json", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /status.json: %s", resp.Status)
	}
}
