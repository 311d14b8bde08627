package pfsync

import (
	"bytes"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pfcarp/pfcarp/internal/clock"
)

var epoch0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

var fuzzClock = clock.NewFake(epoch0)

// fakeTable is an in-memory Table.
type fakeTable struct {
	m        map[Key]State
	injects  int
	onDelete func()
}

func newFakeTable() *fakeTable { return &fakeTable{m: map[Key]State{}} }

func (f *fakeTable) Dump() ([]State, error) {
	out := make([]State, 0, len(f.m))
	for _, s := range f.m {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { a, b := out[i].Key(), out[j].Key(); return bytes.Compare(a[:], b[:]) < 0 })
	return out, nil
}
func (f *fakeTable) Inject(s *State) error { f.injects++; f.m[s.Key()] = *s; return nil }
func (f *fakeTable) Delete(s *State) error {
	if f.onDelete != nil {
		f.onDelete()
	}
	delete(f.m, s.Key())
	return nil
}

// pair is two Engines on an in-memory link the test pumps by hand.
type pair struct {
	clk        *clock.Fake
	a, b       *Engine
	ta, tb     *fakeTable
	toA, toB   [][]byte
	cut        bool
	demA, demB int
	logs       *bytes.Buffer
}

func newPair(t *testing.T, mut func(o *Options)) *pair {
	t.Helper()
	p := &pair{clk: clock.NewFake(epoch0), ta: newFakeTable(), tb: newFakeTable(), logs: &bytes.Buffer{}}
	log := slog.New(slog.NewTextHandler(p.logs, nil))
	mk := func(id uint32, tab *fakeTable, out *[][]byte, dem *int) *Engine {
		o := Options{Clock: p.clk, Logger: log, Table: tab, NodeID: id, Key: []byte("secret"), NoSyncMask: 0x1000,
			Send: func(m []byte) error {
				if !p.cut {
					*out = append(*out, bytes.Clone(m))
				}
				return nil
			},
			Demote: func(d int, _ string) { *dem += d }}
		if mut != nil {
			mut(&o)
		}
		e, err := NewEngine(o)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	p.a = mk(1, p.ta, &p.toB, &p.demA)
	p.b = mk(2, p.tb, &p.toA, &p.demB)
	return p
}

// pump delivers queued messages both ways and runs due ticks until quiet.
func (p *pair) pump() {
	for i := 0; i < 100000; i++ {
		p.tickDue(p.a)
		p.tickDue(p.b)
		if len(p.toA) == 0 && len(p.toB) == 0 {
			if d, ok := p.a.Deadline(); !ok || d.After(p.clk.Now()) {
				if d, ok := p.b.Deadline(); !ok || d.After(p.clk.Now()) {
					return
				}
			}
			continue
		}
		ta, tb := p.toA, p.toB
		p.toA, p.toB = nil, nil
		for _, m := range ta {
			p.a.Receive(m)
		}
		for _, m := range tb {
			p.b.Receive(m)
		}
	}
}

func (p *pair) tickDue(e *Engine) {
	if d, ok := e.Deadline(); ok && !d.After(p.clk.Now()) {
		e.Tick()
	}
}

// advance moves the fake time in small steps, pumping at each.
func (p *pair) advance(d time.Duration) {
	end := p.clk.Now().Add(d)
	for p.clk.Now().Before(end) {
		p.clk.Advance(10 * time.Millisecond)
		p.pump()
	}
}

func tcpState(i int) State {
	return State{Proto: 6, Status: StatusSeenReply | StatusAssured | StatusDstNAT | StatusConfirmed,
		Orig:    Tuple{Src: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), Dst: netip.MustParseAddr("203.0.113.80"), SrcPort: uint16(40000 + i), DstPort: 80},
		Reply:   Tuple{Src: netip.MustParseAddr("198.51.100.20"), Dst: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), SrcPort: 80, DstPort: uint16(40000 + i)},
		Timeout: 432000, TCP: TCPInfo{State: TCPEstablished, WScale: [2]uint8{7, 7}, Flags: [2]uint8{3, 3}}}
}

func TestReplicateBatchedAndEchoFree(t *testing.T) {
	p := newPair(t, nil)
	for i := 1; i <= 3; i++ {
		p.a.Local(&Event{Type: EventNew, State: tcpState(i)})
	}
	if len(p.toB) != 0 {
		t.Fatal("sent before the flush interval")
	}
	p.advance(DefaultFlushInterval)
	if len(p.tb.m) != 3 || p.a.Stats().MsgsSent != 1 {
		t.Fatalf("peer has %d states after %d messages, want 3 in 1", len(p.tb.m), p.a.Stats().MsgsSent)
	}
	got := p.tb.m[keyOf(tcpState(2))]
	if got.Reply != tcpState(2).Reply || got.TCP != tcpState(2).TCP || got.Status != tcpState(2).Status {
		t.Fatalf("replicated state differs: %+v", got)
	}
	// The kernel reports B's injected entries back as NEW events: B must
	// not send them back.
	sent := p.b.Stats().MsgsSent
	for _, s := range p.tb.m {
		s.Status |= StatusSrcNATDone | StatusDstNATDone
		s.TCP.Flags[0] |= TCPFlagBeLiberal
		p.b.Local(&Event{Type: EventNew, State: s})
	}
	p.advance(time.Second)
	if p.b.Stats().MsgsSent != sent || p.b.Stats().Echoes != 3 {
		t.Fatalf("echoes sent back: msgs %d->%d echoes %d", sent, p.b.Stats().MsgsSent, p.b.Stats().Echoes)
	}
	// A delete replicates, and its echo is quiet too.
	p.a.Local(&Event{Type: EventDestroy, State: tcpState(1)})
	p.advance(DefaultFlushInterval)
	if _, ok := p.tb.m[keyOf(tcpState(1))]; ok || p.b.Stats().DeletesRecv != 1 {
		t.Fatal("delete not applied")
	}
	p.b.Local(&Event{Type: EventDestroy, State: tcpState(1)})
	p.advance(time.Second)
	if p.b.Stats().DeletesSent != 0 {
		t.Fatal("delete echoed")
	}
}

// Connection labels (queues, route-to targets, if-bound interfaces) travel
// with their state, in the same message, and a change of them alone is a
// change to send; a bulk update carries them too.
func TestLabelsReplicate(t *testing.T) {
	p := newPair(t, nil)
	s := tcpState(7)
	s.Labels[0], s.Labels[8], s.Labels[15] = 0x01, 3, 0x80
	p.a.Local(&Event{Type: EventNew, State: s})
	p.advance(DefaultFlushInterval)
	if got := p.tb.m[keyOf(s)]; got.Labels != s.Labels {
		t.Fatalf("peer's labels %x, want %x", got.Labels, s.Labels)
	}
	sent := p.a.Stats().MsgsSent
	s.Labels[10] = 2 // if-bound's interface, set by a later rule
	p.a.Local(&Event{Type: EventUpdate, State: s})
	p.advance(DefaultFlushInterval)
	if got := p.tb.m[keyOf(s)]; got.Labels != s.Labels || p.a.Stats().MsgsSent == sent {
		t.Fatalf("a labels change was not sent: peer's labels %x, want %x", got.Labels, s.Labels)
	}
	// A node that comes up gets them in its bulk update.
	q := newPair(t, nil)
	q.tb.m[keyOf(s)] = s
	q.b.Start()
	q.pump()
	q.a.Start()
	q.advance(100 * time.Millisecond)
	if got := q.ta.m[keyOf(s)]; got.Labels != s.Labels {
		t.Fatalf("bulk: labels %x, want %x", got.Labels, s.Labels)
	}
}

func TestMaxUpdFlushesAtOnce(t *testing.T) {
	p := newPair(t, func(o *Options) { o.MaxUpd = 4 })
	s := tcpState(1)
	for i := 0; i < 4; i++ {
		s.TCP.State = uint8(TCPFinWait + i%3)
		p.a.Local(&Event{Type: EventUpdate, State: s})
	}
	if len(p.toB) != 1 {
		t.Fatalf("after maxupd updates %d messages queued, want 1 at once", len(p.toB))
	}
	p.pump()
	if got := p.tb.m[s.Key()]; got.TCP.State != s.TCP.State {
		t.Fatalf("peer has tcp state %d, want the last %d", got.TCP.State, s.TCP.State)
	}
}

func TestNoSyncNotSentNorAccepted(t *testing.T) {
	p := newPair(t, nil)
	s := tcpState(1)
	s.Mark = 0x1000
	p.a.Local(&Event{Type: EventNew, State: s})
	p.advance(time.Second)
	if len(p.tb.m) != 0 || p.a.Stats().NoSyncSkipped != 1 {
		t.Fatal("no-sync state replicated")
	}
	// A peer without the mask configured sends it anyway: not injected.
	var msg []byte
	h := Header{Sender: 9, Epoch: 1, Seq: 1}
	msg = AppendState(h.AppendTo(msg), &s, 1)
	msg = NewAuth([]byte("secret")).Seal(msg, 1)
	if _, ok := p.b.Receive(msg); !ok || len(p.tb.m) != 0 {
		t.Fatal("no-sync state injected")
	}
}

func TestBulkUpdateDemotesUntilDone(t *testing.T) {
	p := newPair(t, nil)
	for i := 1; i <= 200; i++ {
		p.tb.m[keyOf(tcpState(i))] = tcpState(i)
	}
	p.b.Start()
	p.pump() // B asked A (empty): done at once
	if p.demB != 0 || p.b.Bulk() != BulkIdle {
		t.Fatalf("B: demotion %d bulk %v", p.demB, p.b.Bulk())
	}
	p.a.Start()
	if p.demA != 1 || p.a.Bulk() != BulkRequested {
		t.Fatalf("A after start: demotion %d bulk %v, want 1 requested", p.demA, p.a.Bulk())
	}
	p.advance(100 * time.Millisecond) // B serves in paced bursts
	st := p.a.Stats()
	if p.demA != 0 || st.BulkDone != 1 || len(p.ta.m) != 200 || st.LastBulkStates != 200 {
		t.Fatalf("A after bulk: demotion %d done %d states %d/%d", p.demA, st.BulkDone, len(p.ta.m), st.LastBulkStates)
	}
}

// A bulk update is served bulkBurst messages per bulkPace, not as fast as
// the socket takes them: the peer's receive buffer would overrun.
func TestBulkUpdateIsPaced(t *testing.T) {
	p := newPair(t, nil)
	const n = 2000
	for i := 1; i <= n; i++ {
		p.tb.m[keyOf(tcpState(i))] = tcpState(i)
	}
	p.b.Start()
	p.pump()
	p.a.Start()
	sent := p.b.Stats().MsgsSent
	p.pump() // the request reaches B, which starts serving
	most := int(p.b.Stats().MsgsSent - sent)
	for step := 0; step < 1000 && len(p.ta.m) < n; step++ {
		p.clk.Advance(bulkPace)
		sent := p.b.Stats().MsgsSent
		p.pump()
		most = max(most, int(p.b.Stats().MsgsSent-sent))
	}
	if len(p.ta.m) != n || p.a.Stats().BulkDone != 1 {
		t.Fatalf("A holds %d of %d states, bulk done %d", len(p.ta.m), n, p.a.Stats().BulkDone)
	}
	if most > bulkBurst+1 { // +1: BULK END may close a burst
		t.Fatalf("%d messages in one pace interval, want at most %d", most, bulkBurst+1)
	}
}

func TestBulkUpdateGivesUpAfterTries(t *testing.T) {
	p := newPair(t, nil)
	p.cut = true
	p.a.Start()
	p.advance(DefaultBulkTimeout*DefaultBulkTries - time.Second)
	if p.demA != 1 || p.a.Stats().BulkRequestsSent != DefaultBulkTries {
		t.Fatalf("before giving up: demotion %d requests %d", p.demA, p.a.Stats().BulkRequestsSent)
	}
	p.advance(2 * time.Second)
	if p.demA != 0 || p.a.Stats().BulkFailed != 1 || p.a.Bulk() != BulkIdle {
		t.Fatalf("after %v: demotion %d failed %d", DefaultBulkTimeout*DefaultBulkTries, p.demA, p.a.Stats().BulkFailed)
	}
	if !strings.Contains(p.logs.String(), "level=ERROR") || !strings.Contains(p.logs.String(), "BULK UPDATE FAILED") {
		t.Fatalf("give-up not logged loudly:\n%s", p.logs)
	}
	// The link heals: a new bulk update, demoted again until it ends.
	p.cut = false
	p.a.LinkUp()
	if p.demA != 1 {
		t.Fatal("no demotion on link heal")
	}
	p.pump()
	if p.demA != 0 || p.a.Stats().BulkDone != 1 {
		t.Fatal("bulk after heal did not finish")
	}
}

func TestBulkProgressKeepsWaiting(t *testing.T) {
	p := newPair(t, func(o *Options) { o.BulkTries = 1; o.BulkMax = 2 * time.Minute })
	p.cut = true // only the hand-made messages below reach A
	p.a.Start()
	// The peer starts a bulk update and trickles states, each within the
	// timeout: A waits, but never past BulkMax.
	auth := NewAuth([]byte("secret"))
	seq := uint64(0)
	send := func(enc func([]byte) []byte) {
		seq++
		h := Header{Sender: 2, Epoch: 7, Seq: seq}
		p.a.Receive(auth.Seal(enc(h.AppendTo(nil)), 1))
	}
	send(func(b []byte) []byte { return AppendBulkStatus(b, BulkStart, 1000) })
	for i := 0; i < 20; i++ {
		p.clk.Advance(4 * time.Second)
		p.tickDue(p.a)
		s := tcpState(i)
		send(func(b []byte) []byte { return AppendState(b, &s, 1) })
	}
	if p.a.Bulk() != BulkReceiving || p.demA != 1 {
		t.Fatalf("after 80 s of progress: %v demotion %d", p.a.Bulk(), p.demA)
	}
	p.advance(5 * time.Second)
	if p.a.Bulk() != BulkIdle || p.a.Stats().BulkFailed != 1 || p.demA != 0 {
		t.Fatalf("stalled bulk not given up: %v failed %d demotion %d", p.a.Bulk(), p.a.Stats().BulkFailed, p.demA)
	}
}

func TestFailbackKeepsFlowsBegunOnBackup(t *testing.T) {
	p := newPair(t, nil)
	p.a.Local(&Event{Type: EventNew, State: tcpState(1)})
	p.advance(time.Second)
	// A dies; B, now master, carries flow 1 and starts flow 2.
	p.cut = true
	p.b.Local(&Event{Type: EventNew, State: tcpState(2)})
	p.advance(time.Second)
	p.cut = false
	p.toA, p.toB = nil, nil
	// A restarts: a new engine, a new epoch, an empty table.
	p.ta = newFakeTable()
	p.clk.Advance(time.Minute)
	a2, err := NewEngine(Options{Clock: p.clk, Table: p.ta, NodeID: 1, Key: []byte("secret"),
		Send:   func(m []byte) error { p.toB = append(p.toB, bytes.Clone(m)); return nil },
		Demote: func(d int, _ string) { p.demA += d }})
	if err != nil {
		t.Fatal(err)
	}
	p.a = a2
	p.a.Start()
	p.pump()
	for i := 1; i <= 2; i++ {
		if _, ok := p.ta.m[keyOf(tcpState(i))]; !ok {
			t.Fatalf("flow %d missing on the returning node", i)
		}
	}
	if p.demA != 0 {
		t.Fatal("still demoted")
	}
}

func TestNewerUpdateWins(t *testing.T) {
	p := newPair(t, nil)
	s := tcpState(1)
	p.a.Local(&Event{Type: EventNew, State: s})
	p.advance(time.Second)
	// B changes it later; then a delayed, older update from A arrives.
	s2 := s
	s2.TCP.State = TCPFinWait
	p.b.Local(&Event{Type: EventUpdate, State: s2})
	auth := NewAuth([]byte("secret"))
	h := Header{Sender: 7, Epoch: 99, Seq: 1}
	old := auth.Seal(AppendState(h.AppendTo(nil), &s, epoch0.UnixNano()), 1)
	p.b.Receive(old)
	if p.tb.m[s.Key()].TCP.State != TCPEstablished || p.b.Stats().Stale != 1 {
		// tb holds what was injected: the stale one must not be
		t.Fatalf("stale update applied: %+v stale %d", p.tb.m[s.Key()].TCP, p.b.Stats().Stale)
	}
	p.advance(time.Second)
	if p.ta.m[s.Key()].TCP.State != TCPFinWait {
		t.Fatal("B's newer update did not reach A")
	}
}

func TestReceiveDropsByReason(t *testing.T) {
	p := newPair(t, nil)
	s := tcpState(1)
	good := func(key string, seq uint64) []byte {
		h := Header{Sender: 5, Epoch: 3, Seq: seq}
		return NewAuth([]byte(key)).Seal(AppendState(h.AppendTo(nil), &s, 1), 1)
	}
	m := good("secret", 1)
	if _, ok := p.b.Receive(m); !ok {
		t.Fatal("good message dropped")
	}
	cases := []struct {
		name string
		msg  []byte
		want Drop
	}{
		{"replayed", m, DropReplay},
		{"wrong key", good("other", 2), DropAuth},
		{"unsigned", func() []byte {
			h := Header{Sender: 5, Epoch: 3, Seq: 3}
			return NewAuth(nil).Seal(AppendState(h.AppendTo(nil), &s, 1), 1)
		}(), DropAuth},
		{"short", m[:10], DropShort},
		{"truncated", m[:len(m)-1], DropLength},
		{"magic", append([]byte{0, 0}, m[2:]...), DropMagic},
		{"version", append([]byte{m[0], m[1], 9}, m[3:]...), DropVersion},
		{"flipped bit", func() []byte { x := bytes.Clone(good("secret", 4)); x[40] ^= 1; return x }(), DropAuth},
		{"self", func() []byte {
			h := Header{Sender: 2, Epoch: p.b.o.Epoch, Seq: 1}
			return NewAuth([]byte("secret")).Seal(h.AppendTo(nil), 0)
		}(), DropSelf},
		{"bad record", func() []byte {
			h := Header{Sender: 5, Epoch: 3, Seq: 5}
			b := AppendState(h.AppendTo(nil), &s, 1)
			b[HeaderLen+4] = 5 // family
			return NewAuth([]byte("secret")).Seal(b, 1)
		}(), DropMalformed},
	}
	for _, c := range cases {
		before := p.b.Stats().Dropped[c.want]
		if r, ok := p.b.Receive(c.msg); ok || r != c.want || p.b.Stats().Dropped[c.want] != before+1 {
			t.Errorf("%s: got %v ok=%v, want dropped as %v", c.name, r, ok, c.want)
		}
	}
	// Out-of-order but fresh sequences inside the window are accepted once.
	if _, ok := p.b.Receive(good("secret", 10)); !ok {
		t.Fatal("seq 10")
	}
	if _, ok := p.b.Receive(good("secret", 8)); !ok {
		t.Fatal("seq 8 (reordered) dropped")
	}
	if _, ok := p.b.Receive(good("secret", 8)); ok {
		t.Fatal("seq 8 accepted twice")
	}
}

func TestStatusAndIfconfig(t *testing.T) {
	p := newPair(t, func(o *Options) { o.SyncDev = "eth2" })
	p.a.Local(&Event{Type: EventNew, State: tcpState(1)})
	p.advance(time.Second)
	p.b.Receive([]byte{1, 2, 3})
	st := p.b.Status()
	var b strings.Builder
	FormatIfconfig(&b, &st)
	out := b.String()
	for _, want := range []string{
		"pfsync: syncdev: eth2 syncpeer: 224.0.0.240 maxupd: 128",
		"received: 1 messages, 1 states",
		"dropped: 1 (short 1)",
		"auth: hmac-sha256 states: 1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("ifconfig output lacks %q:\n%s", want, out)
		}
	}
}

func keyOf(s State) Key { return s.Key() }

// Both nodes start together: A's first bulk request goes out before B
// listens and is lost. B's own request (its first message) shows A that B
// listens now, so A repeats its request at once instead of staying demoted
// for the 5 s retry.
func TestBulkStartRaceRepeatsAtOnce(t *testing.T) {
	p := newPair(t, nil)
	for i := 1; i <= 50; i++ {
		p.tb.m[keyOf(tcpState(i))] = tcpState(i)
	}
	p.a.Start()
	p.toB = nil // B was not listening yet
	if p.demA != 1 || p.a.Bulk() != BulkRequested {
		t.Fatalf("A after start: demotion %d bulk %v", p.demA, p.a.Bulk())
	}
	p.clk.Advance(20 * time.Millisecond)
	p.b.Start()
	p.pump() // no time passes
	sa, sb := p.a.Stats(), p.b.Stats()
	if p.demA != 0 || sa.BulkDone != 1 || len(p.ta.m) != 50 {
		t.Fatalf("A: demotion %d, bulk done %d, states %d: want 0, 1, 50 without waiting for the retry", p.demA, sa.BulkDone, len(p.ta.m))
	}
	if p.demB != 0 || sb.BulkDone != 1 {
		t.Fatalf("B: demotion %d, bulk done %d", p.demB, sb.BulkDone)
	}
	if sa.BulkRequestsSent != 2 || sb.BulkRequestsSent != 1 {
		t.Errorf("requests sent: A %d (want 2: lost + repeat), B %d (want 1)", sa.BulkRequestsSent, sb.BulkRequestsSent)
	}
	if !strings.Contains(p.logs.String(), "repeating the bulk request at once") {
		t.Errorf("early repeat not logged:\n%s", p.logs)
	}
}

// The early repeat happens once per try: two nodes waiting on each other
// whose repeats are lost too fall back to the BulkTimeout retry instead of
// trading requests for ever.
func TestBulkEarlyRepeatOncePerTry(t *testing.T) {
	p := newPair(t, nil)
	p.a.Start()
	p.toB = nil
	p.b.Start()
	// Deliver B's request to A; A's repeat (and everything after) is lost.
	msgs := p.toA
	p.toA = nil
	for _, m := range msgs {
		p.a.Receive(m)
	}
	p.toB = nil
	if n := p.a.Stats().BulkRequestsSent; n != 2 {
		t.Fatalf("A requests %d, want 2", n)
	}
	// Another request from B within the same try does not trigger another.
	p.b.LinkUp()
	for _, m := range p.toA {
		p.a.Receive(m)
	}
	p.toA, p.toB = nil, nil
	if n := p.a.Stats().BulkRequestsSent; n != 2 {
		t.Fatalf("A requests %d after a second request from B, want still 2", n)
	}
	if p.a.Bulk() != BulkRequested {
		t.Fatalf("A bulk %v", p.a.Bulk())
	}
}

// fakeSticky is an in-memory StickyTable whose bindings expire on the
// fake clock.
type fakeSticky struct {
	clk *clock.Fake
	m   map[string]Sticky // map+" "+source; Timeout unused (see exp)
	exp map[string]time.Time
	set int
}

func newFakeSticky(clk *clock.Fake) *fakeSticky {
	return &fakeSticky{clk: clk, m: map[string]Sticky{}, exp: map[string]time.Time{}}
}

func (f *fakeSticky) bind(m, src, be string, life time.Duration) {
	k := Sticky{Map: m, Source: netip.MustParseAddr(src), Backend: netip.MustParseAddr(be)}
	f.m[m+" "+src] = k
	f.exp[m+" "+src] = f.clk.Now().Add(life)
}

func (f *fakeSticky) Dump() ([]Sticky, error) {
	var out []Sticky
	for id, k := range f.m {
		left := f.exp[id].Sub(f.clk.Now())
		if left <= 0 {
			delete(f.m, id)
			continue
		}
		k.Timeout = uint32((left + time.Second - 1) / time.Second)
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Source.Less(out[j].Source) })
	return out, nil
}

func (f *fakeSticky) Set(k *Sticky) error {
	f.set++
	id := k.Map + " " + k.Source.String()
	if k.Delete {
		delete(f.m, id)
		return nil
	}
	f.m[id] = Sticky{Map: k.Map, Source: k.Source, Backend: k.Backend}
	f.exp[id] = f.clk.Now().Add(time.Duration(k.Timeout) * time.Second)
	return nil
}

// Sticky bindings made by one node's packet path reach the peer within a
// poll interval with their remaining lifetime, are not echoed back, are
// sent again when renewed by a quarter of their lifetime or moved to
// another backend, and reach a peer that starts later in its bulk update.
func TestStickySync(t *testing.T) {
	clk := clock.NewFake(epoch0)
	sa, sb := newFakeSticky(clk), newFakeSticky(clk)
	p := newPair(t, func(o *Options) {
		o.Clock = clk // the stores' clock is the engines'
		if o.NodeID == 1 {
			o.Sticky = sa
		} else {
			o.Sticky = sb
		}
	})
	p.clk = clk
	const m = "sticky_rdr1_4"
	p.a.Start()
	p.b.Start()
	p.pump()

	sa.bind(m, "192.0.2.89", "198.51.100.20", 300*time.Second)
	sa.bind(m, "192.0.2.90", "198.51.100.21", 300*time.Second)
	p.advance(DefaultStickyPoll)
	got, _ := sb.Dump()
	if len(got) != 2 || got[0].Backend != netip.MustParseAddr("198.51.100.20") || got[1].Backend != netip.MustParseAddr("198.51.100.21") {
		t.Fatalf("B's bindings after one poll: %+v", got)
	}
	if got[0].Timeout < 299 || got[0].Timeout > 300 {
		t.Errorf("B's lifetime %d s, want about 300", got[0].Timeout)
	}
	sentA, sentB := p.a.Stats().StickySent, p.b.Stats().StickySent
	if sentA != 2 || sentB != 0 {
		t.Fatalf("sticky sent A %d B %d, want 2 and 0 (no echo)", sentA, sentB)
	}
	// Quiet polls send nothing; a renewal by less than a quarter neither.
	p.advance(30 * time.Second)
	sa.bind(m, "192.0.2.89", "198.51.100.20", 300*time.Second) // renewed by 30 s
	p.advance(time.Second)
	if n := p.a.Stats().StickySent; n != 2 {
		t.Fatalf("after a small renewal A sent %d, want still 2", n)
	}
	p.advance(60 * time.Second)
	sa.bind(m, "192.0.2.89", "198.51.100.20", 300*time.Second) // renewed by 91 s > 75 s
	p.advance(time.Second)
	if n := p.a.Stats().StickySent; n != 3 {
		t.Fatalf("after a renewal by 91 s A sent %d, want 3", n)
	}
	got, _ = sb.Dump()
	if got[0].Timeout < 298 {
		t.Errorf("B's renewed lifetime %d s", got[0].Timeout)
	}
	// Moved to another backend (B's own packet path, now master).
	sb.bind(m, "192.0.2.90", "198.51.100.20", 300*time.Second)
	p.advance(time.Second)
	if k := sa.m[m+" 192.0.2.90"]; k.Backend != netip.MustParseAddr("198.51.100.20") {
		t.Fatalf("A did not follow B's rebinding: %+v", k)
	}
	if n := p.b.Stats().StickySent; n != 1 {
		t.Errorf("B sent %d, want 1", n)
	}
	// A third engine that starts later gets the bindings in its bulk update.
	sc := newFakeSticky(clk)
	tc := newFakeTable()
	var toC [][]byte
	c, err := NewEngine(Options{Clock: clk, Table: tc, Sticky: sc, NodeID: 3, Key: []byte("secret"),
		Send: func(m []byte) error { p.toA = append(p.toA, m); p.toB = append(p.toB, m); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	inner := p.a.o.Send
	p.a.o.Send = func(m []byte) error { toC = append(toC, m); return inner(m) }
	c.Start()
	for range 10 {
		p.pump()
		for _, m := range toC {
			c.Receive(m)
		}
		toC = nil
	}
	if c.Stats().BulkDone != 1 || len(sc.m) != 2 {
		t.Fatalf("late starter: bulk done %d, bindings %v", c.Stats().BulkDone, sc.m)
	}
	// Expired bindings are forgotten, not deleted on the peer.
	p.advance(301 * time.Second)
	if st := p.a.Status(); st.StickyBindings != 0 {
		t.Errorf("A still knows %d bindings after they expired", st.StickyBindings)
	}
}

// A client reuses a source port for a new connection while the old
// connection's entry still exists (TIME_WAIT): the kernel reports DESTROY
// then NEW for one tuple, which must reach the peer as a delete followed by
// a create (an update cannot change an entry's NAT bindings), even when the
// two are coalesced in one flush.
func TestTupleReuseReplacesOnPeer(t *testing.T) {
	p := newPair(t, nil)
	p.a.Start()
	p.b.Start()
	p.pump()
	old := tcpState(7)
	old.TCP.State = TCPTimeWait
	p.a.Local(&Event{Type: EventNew, State: old})
	p.advance(time.Second)
	if _, ok := p.tb.m[old.Key()]; !ok {
		t.Fatal("old flow not on B")
	}
	deletes := 0
	p.tb.onDelete = func() { deletes++ }
	nw := tcpState(7)
	nw.Reply.Src = netip.MustParseAddr("198.51.100.21") // the new flow went to another server
	p.a.Local(&Event{Type: EventDestroy, State: old})
	p.a.Local(&Event{Type: EventNew, State: nw})
	p.advance(time.Second)
	got, ok := p.tb.m[nw.Key()]
	if !ok || got.Reply != nw.Reply || deletes != 1 {
		t.Fatalf("B: %v %+v after %d deletes, want the new flow re-created after one delete", ok, got.Reply, deletes)
	}
	// The kernel reports the new entry (id 12) before the old one's
	// (id 11) DESTROY: the peer gets delete+create, and the late DESTROY
	// does not delete the live flow there.
	old2 := nw
	old2.ID = 11
	p.a.Local(&Event{Type: EventUpdate, State: old2})
	p.advance(time.Second)
	nw2 := tcpState(7)
	nw2.ID = 12
	p.a.Local(&Event{Type: EventNew, State: nw2})
	p.advance(time.Second)
	p.a.Local(&Event{Type: EventDestroy, State: old2})
	p.advance(time.Second)
	if got, ok := p.tb.m[nw2.Key()]; !ok || got.Reply != nw2.Reply || deletes != 2 {
		t.Fatalf("B after NEW(12) then DESTROY(11): present %v %+v, %d deletes; want the new flow, 2 deletes", ok, got.Reply, deletes)
	}
	// On B, its kernel reports the DESTROY of the entry B deleted (id 21)
	// after B created the new one (id unknown until its NEW): B must not
	// send a delete of the live flow back to A.
	old3 := nw2
	old3.ID = 21
	sent := p.b.Stats().DeletesSent
	p.b.Local(&Event{Type: EventDestroy, State: old3})
	p.advance(time.Second)
	if n := p.b.Stats().DeletesSent; n != sent {
		t.Fatalf("B sent %d deletes for the DESTROY of the entry it replaced", n-sent)
	}
}

// Both nodes request a bulk update when the sync link returns, and both
// requests can be lost (the path passes no traffic yet): the first
// requests after LinkUp are repeated after LinkRetry, later ones after
// BulkTimeout.
func TestLinkUpRetriesSoon(t *testing.T) {
	p := newPair(t, nil)
	p.a.Start()
	p.b.Start()
	p.pump()
	if p.a.Stats().BulkDone != 1 || p.b.Stats().BulkDone != 1 {
		t.Fatalf("start: bulk updates done %d %d", p.a.Stats().BulkDone, p.b.Stats().BulkDone)
	}
	p.cut = true
	p.a.LinkUp()
	p.b.LinkUp()
	p.advance(500 * time.Millisecond)
	p.cut = false
	p.advance(DefaultLinkRetry)
	if p.a.Stats().BulkDone != 2 || p.b.Stats().BulkDone != 2 {
		t.Fatalf("%v after the lost requests: bulk updates done %d %d, want 2 each", DefaultLinkRetry+500*time.Millisecond,
			p.a.Stats().BulkDone, p.b.Stats().BulkDone)
	}

	// A path that stays dead: two quick repeats, then BulkTimeout apart.
	p.cut = true
	sent := p.a.Stats().BulkRequestsSent
	p.a.LinkUp()
	p.advance(linkRetries*DefaultLinkRetry + 500*time.Millisecond)
	if n := p.a.Stats().BulkRequestsSent - sent; n != 1+linkRetries {
		t.Fatalf("requests in the first %v: %d, want %d", linkRetries*DefaultLinkRetry, n, 1+linkRetries)
	}
	p.advance(DefaultBulkTimeout - time.Second)
	if n := p.a.Stats().BulkRequestsSent - sent; n != 1+linkRetries {
		t.Fatalf("a request sooner than BulkTimeout after the quick ones: %d", n)
	}
	p.advance(time.Second)
	if n := p.a.Stats().BulkRequestsSent - sent; n != 2+linkRetries {
		t.Fatalf("requests after BulkTimeout: %d, want %d", n, 2+linkRetries)
	}
}

// kernelTable is a fakeTable that writes as ctnetlink does (window scales
// only once both directions carry the window-scale flag; flags and status
// bits only set) and reports each write as an event with an entry id, to
// be fed back to the Engine like the kernel's echo.
type kernelTable struct {
	*fakeTable
	nextID uint32
	ids    map[Key]uint32
	events []Event
}

func newKernelTable() *kernelTable {
	return &kernelTable{fakeTable: newFakeTable(), nextID: 100, ids: map[Key]uint32{}}
}

func (k *kernelTable) Inject(s *State) error {
	k.injects++
	key := s.Key()
	cur, ok := k.m[key]
	typ := EventUpdate
	if !ok {
		typ = EventNew
		k.nextID++
		k.ids[key] = k.nextID
		cur = State{Proto: s.Proto, Zone: s.Zone, Orig: s.Orig, Reply: s.Reply,
			Status: s.Status&(StatusDstNAT|StatusSrcNAT) | StatusConfirmed}
	}
	cur.Status |= s.Status & (StatusSeenReply | StatusAssured)
	cur.Timeout, cur.Mark, cur.ID = s.Timeout, s.Mark, k.ids[key]
	cur.TCP.State = s.TCP.State
	for i := range 2 {
		cur.TCP.Flags[i] |= s.TCP.Flags[i] | TCPFlagBeLiberal
	}
	if wscaleSet(&cur) {
		cur.TCP.WScale = s.TCP.WScale
	}
	k.m[key] = cur
	k.events = append(k.events, Event{Type: typ, State: cur})
	return nil
}

// echo delivers the kernel's pending events to e.
func (k *kernelTable) echo(e *Engine) {
	for i := range k.events {
		e.Local(&k.events[i])
	}
	k.events = nil
}

// A handshake that straddles A's flush: A sends SYN_SENT, its kernel sees
// ESTABLISHED right after the flush, B's kernel echoes the injected
// SYN_SENT (without window scales) a little later still. The echo must not
// pass for a newer local version of B's: A's ESTABLISHED must reach B's
// kernel, and B must not send its echo back over A's live entry.
func TestInjectEchoDoesNotOutrankNewerPeerUpdate(t *testing.T) {
	p := newPair(t, nil)
	kb := newKernelTable()
	p.b.o.Table = kb
	syn := tcpState(5)
	syn.Status = StatusDstNAT | StatusConfirmed
	syn.TCP = TCPInfo{State: TCPSynSent, WScale: [2]uint8{7, 0}, Flags: [2]uint8{TCPFlagWindowScale | TCPFlagSackPerm, 0}}
	syn.ID = 1
	est := tcpState(5)
	est.ID = 1

	p.a.Local(&Event{Type: EventNew, State: syn})
	p.clk.Advance(DefaultFlushInterval)
	p.tickDue(p.a) // SYN_SENT on the wire
	p.clk.Advance(500 * time.Microsecond)
	p.a.Local(&Event{Type: EventUpdate, State: est}) // just after the flush
	for _, m := range p.toB {
		p.b.Receive(m)
	}
	p.toB = nil
	if got := kb.m[syn.Key()]; got.TCP.State != TCPSynRecv || got.TCP.WScale != [2]uint8{} {
		t.Fatalf("B's kernel after the inject: %+v, want SYN_SENT written as SYN_RECV, without window scales", got.TCP)
	}
	p.clk.Advance(500 * time.Microsecond)
	kb.echo(p.b) // B's kernel reports its write after A's change
	sentB := p.b.Stats().StatesSent
	p.advance(time.Second)
	kb.echo(p.b)
	p.advance(time.Second)

	if got := kb.m[syn.Key()]; got.TCP.State != TCPEstablished || got.TCP.WScale != [2]uint8{7, 7} {
		t.Fatalf("B's kernel: %+v (stale updates %d), want A's ESTABLISHED", got.TCP, p.b.Stats().Stale)
	}
	if n := p.b.Stats().StatesSent - sentB; n != 0 {
		t.Fatalf("B sent %d states back to A (echoes of its own writes)", n)
	}
	if got := p.ta.m[syn.Key()]; p.ta.injects != 0 {
		t.Fatalf("A's table overwritten by B (%d injects): %+v", p.ta.injects, got.TCP)
	}
	// A real change on B afterwards (B carries the flow now) still syncs.
	fin := kb.m[syn.Key()]
	fin.TCP.State = TCPFinWait
	p.b.Local(&Event{Type: EventUpdate, State: fin})
	p.advance(time.Second)
	if got := p.ta.m[syn.Key()]; got.TCP.State != TCPFinWait {
		t.Fatalf("B's own change did not reach A: %+v", got.TCP)
	}
}

// A change whose kernel event was lost (the table changed, Local was not
// called) reaches the peer at the next periodic resync, and only once;
// entries that match are neither sent nor counted as echoes.
func TestPeriodicResyncSendsLostChanges(t *testing.T) {
	p := newPair(t, func(o *Options) { o.ResyncInterval = time.Second })
	live := tcpState(1)
	p.ta.m[live.Key()] = live
	p.a.Start()
	p.b.Start()
	p.pump()
	p.advance(time.Second) // settle: bulk updates, a first resync
	if _, ok := p.tb.m[live.Key()]; !ok {
		t.Fatal("bulk update did not carry A's entry")
	}
	echoes, sent := p.a.Stats().Echoes, p.a.Stats().StatesSent
	repairs := p.a.Stats().ResyncRepairs

	lost := tcpState(2)
	p.ta.m[lost.Key()] = lost // its NEW event never reached the Engine
	p.advance(900 * time.Millisecond)
	if _, ok := p.tb.m[lost.Key()]; ok {
		t.Fatal("sent before the resync interval (test assumption broken)")
	}
	p.advance(200 * time.Millisecond)
	if _, ok := p.tb.m[lost.Key()]; !ok {
		t.Fatal("lost NEW not sent by the periodic resync")
	}
	if n := p.a.Stats().ResyncRepairs - repairs; n != 1 {
		t.Fatalf("resync repairs %d, want 1", n)
	}
	p.advance(3 * time.Second)
	if n := p.a.Stats().StatesSent - sent; n != 1 {
		t.Fatalf("A sent %d states over several resyncs, want the one repair", n)
	}
	if p.a.Stats().Echoes != echoes || p.b.Stats().ResyncRepairs != 0 {
		t.Fatalf("matching entries counted: echoes %d->%d, B repairs %d", echoes, p.a.Stats().Echoes, p.b.Stats().ResyncRepairs)
	}
	delete(p.ta.m, lost.Key()) // its DESTROY event was lost too
	p.advance(1100 * time.Millisecond)
	if _, ok := p.tb.m[lost.Key()]; ok {
		t.Fatal("lost DESTROY not sent by the periodic resync")
	}
	if _, ok := p.tb.m[live.Key()]; !ok {
		t.Fatal("resync deleted a live entry on the peer")
	}
}

// The echo rule covers the entry we wrote: a first event after the write
// showing another reply tuple is another connection on the tuple (the
// kernel never changes an entry's tuples) and is synced as one.
func TestFirstEventOfOtherConnectionIsNoEcho(t *testing.T) {
	p := newPair(t, nil)
	s := tcpState(3)
	s.ID = 9
	p.a.Local(&Event{Type: EventNew, State: s})
	p.advance(time.Second)
	other := tcpState(3)
	other.ID = 50
	other.Reply.Src = netip.MustParseAddr("198.51.100.21")
	echoes := p.b.Stats().Echoes
	p.b.Local(&Event{Type: EventNew, State: other})
	p.advance(time.Second)
	if got := p.ta.m[s.Key()]; got.Reply != other.Reply || p.b.Stats().Echoes != echoes {
		t.Fatalf("A holds reply %v (B echoes %d->%d), want B's other connection %v", got.Reply, echoes, p.b.Stats().Echoes, other.Reply)
	}
}

// TestSynSentWrittenAsSynRecv: the peer writes a SYN_SENT state as
// SYN_RECV (see applyState) and keeps what it wrote, so that its echo and
// a resync find nothing changed and send nothing back.
func TestSynSentWrittenAsSynRecv(t *testing.T) {
	p := newPair(t, nil)
	p.pump()
	s := tcpState(1)
	s.Status &^= StatusSeenReply | StatusAssured
	s.TCP.State = TCPSynSent
	p.a.Local(&Event{Type: EventNew, State: s})
	p.advance(DefaultFlushInterval)
	got := p.tb.m[s.Key()]
	if got.TCP.State != TCPSynRecv {
		t.Fatalf("B wrote tcp state %d, want SYN_RECV", got.TCP.State)
	}
	sent := p.b.Stats().StatesSent
	p.b.Local(&Event{Type: EventNew, State: got}) // the write's echo
	if err := p.b.Resync(); err != nil {
		t.Fatal(err)
	}
	p.advance(DefaultFlushInterval)
	if p.b.Stats().StatesSent != sent || p.b.Stats().ResyncRepairs != 0 {
		t.Fatalf("B sent %d states back (repairs %d)", p.b.Stats().StatesSent-sent, p.b.Stats().ResyncRepairs)
	}
	// UDP and the other TCP states are written as they are.
	for _, st := range []uint8{TCPSynRecv, TCPEstablished, TCPFinWait} {
		s.TCP.State = st
		p.a.Local(&Event{Type: EventUpdate, State: s})
		p.advance(DefaultFlushInterval)
		if got := p.tb.m[s.Key()].TCP.State; got != st {
			t.Fatalf("B wrote tcp state %d for %d", got, st)
		}
	}
}

// TestPromptSends: a state the peer does not hold and the handshake steps
// (SYN_RECV, ESTABLISHED) are sent at the next Tick, without waiting for
// the flush interval, and together when they come together; plain updates
// (here a FIN_WAIT and a new mark) wait for the flush interval.
// PromptDelay delays prompt sends; a negative one turns them off.
func TestPromptSends(t *testing.T) {
	syn := tcpState(1)
	syn.Status &^= StatusSeenReply | StatusAssured
	syn.TCP.State = TCPSynSent
	for _, tc := range []struct {
		name  string
		delay time.Duration
		wait  time.Duration // fake time before the prompt sends go
	}{
		{"at once", 0, 0},
		{"window", 500 * time.Microsecond, 500 * time.Microsecond},
		{"off", -1, DefaultFlushInterval},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, func(o *Options) { o.PromptDelay = tc.delay })
			p.pump()
			p.toA, p.toB = nil, nil
			base := p.a.Stats().MsgsSent
			step := func(what string, ev Event, prompt bool) {
				t.Helper()
				p.a.Local(&ev)
				want := ev.State
				if want.TCP.State == TCPSynSent {
					want.TCP.State = TCPSynRecv // as B writes it
				}
				p.pump() // no time passes
				if tc.wait > 0 && prompt {
					if got := p.tb.m[keyOf(want)]; got.TCP.State == want.TCP.State && got.Mark == want.Mark && got.Status == want.Status {
						t.Fatalf("%s: sent before PromptDelay %v", what, tc.delay)
					}
					p.clk.Advance(tc.wait)
					p.pump()
				}
				got, ok := p.tb.m[keyOf(want)]
				sent := ok && got.TCP.State == want.TCP.State && got.Mark == want.Mark && got.Status == want.Status
				if sent != prompt {
					t.Fatalf("%s: on B at once %v, want %v (B holds %+v)", what, sent, prompt, got)
				}
				if !prompt {
					p.advance(DefaultFlushInterval)
					if got := p.tb.m[keyOf(want)]; got.TCP.State != want.TCP.State || got.Mark != want.Mark || got.Status != want.Status {
						t.Fatalf("%s: not on B after the flush interval: %+v", what, got)
					}
				}
			}
			on := tc.delay >= 0
			step("new SYN_SENT", Event{Type: EventNew, State: syn}, on)
			s := syn
			s.TCP.State = TCPSynRecv
			s.Status |= StatusSeenReply
			step("SYN_RECV", Event{Type: EventUpdate, State: s}, on)
			s.TCP.State = TCPEstablished
			s.Status |= StatusAssured
			step("ESTABLISHED", Event{Type: EventUpdate, State: s}, on)
			s.Mark = 7
			step("a new mark", Event{Type: EventUpdate, State: s}, false)
			s.TCP.State = TCPFinWait
			step("FIN_WAIT", Event{Type: EventUpdate, State: s}, false)

			// Several new states that come together go in one message.
			before := p.a.Stats().MsgsSent
			for i := 10; i < 14; i++ {
				p.a.Local(&Event{Type: EventNew, State: tcpState(i)})
			}
			p.advance(DefaultFlushInterval)
			if n := p.a.Stats().MsgsSent - before; n != 1 {
				t.Fatalf("4 new states in %d messages, want 1", n)
			}
			if p.a.Stats().MsgsSent == base {
				t.Fatal("nothing sent")
			}
		})
	}
}

// batchFake is a fakeTable that records InjectBatch calls.
type batchFake struct {
	*fakeTable
	calls  int
	exists [][]bool
}

func (f *batchFake) InjectBatch(ss []State, exists []bool) []error {
	f.calls++
	f.exists = append(f.exists, slices.Clone(exists))
	for i := range ss {
		f.Inject(&ss[i])
	}
	return make([]error, len(ss))
}

// TestReceiveInjectsInOneBatch: the states of one message reach a
// BatchTable in one call, flagged as known when the Engine held them.
func TestReceiveInjectsInOneBatch(t *testing.T) {
	bt := &batchFake{fakeTable: newFakeTable()}
	p := newPair(t, func(o *Options) {
		o.PromptDelay = -1 // everything in the flush, for one message
		if o.NodeID == 2 {
			o.Table = bt
		}
	})
	p.tb = bt.fakeTable
	p.pump()
	for i := 1; i <= 3; i++ {
		p.a.Local(&Event{Type: EventNew, State: tcpState(i)})
	}
	p.advance(DefaultFlushInterval)
	s := tcpState(2)
	s.TCP.State = TCPFinWait
	p.a.Local(&Event{Type: EventUpdate, State: s})
	p.a.Local(&Event{Type: EventNew, State: tcpState(4)})
	p.advance(DefaultFlushInterval)
	want := [][]bool{{false, false, false}, {true, false}}
	if !slices.EqualFunc(bt.exists, want, slices.Equal) || len(bt.m) != 4 {
		t.Fatalf("batches %v (want %v), B holds %d", bt.exists, want, len(bt.m))
	}
}

// TestDefer: a held packet is released when the peer acknowledges its
// state (which is then in the peer's table), after DeferTimeout when no
// ack comes (a lost message, or a peer that does not ack), and at once
// for the oldest when DeferMax packets are held.
func TestDefer(t *testing.T) {
	type rel struct {
		i     int
		acked bool
	}
	var got []rel
	release := func(i int) func(bool) { return func(a bool) { got = append(got, rel{i, a}) } }

	t.Run("ack", func(t *testing.T) {
		got = nil
		p := newPair(t, nil)
		p.pump()
		s := tcpState(1)
		s.TCP.State, s.Status = TCPSynSent, StatusDstNAT
		p.a.Defer(&s, release(1))
		if len(got) != 0 || len(p.toB) != 1 {
			t.Fatalf("released %v, %d messages queued to B; want held, 1", got, len(p.toB))
		}
		p.pump() // no time passes: B applies, acks, A releases
		if !slices.Equal(got, []rel{{1, true}}) {
			t.Fatalf("released %v, want [{1 true}]", got)
		}
		if _, ok := p.tb.m[keyOf(s)]; !ok {
			t.Fatal("acked before the state was in B's table")
		}
		if st := p.a.Stats(); st.Deferred != 1 || st.DeferAcked != 1 || p.b.Stats().AcksSent != 1 {
			t.Fatalf("A %+v B acks %d", st, p.b.Stats().AcksSent)
		}
		// The kernel's NEW event once the packet passed is an echo: not sent again.
		sent := p.a.Stats().StatesSent
		p.a.Local(&Event{Type: EventNew, State: s})
		p.advance(DefaultFlushInterval)
		if p.a.Stats().StatesSent != sent {
			t.Fatal("the deferred state was sent again on its NEW event")
		}
	})
	t.Run("timeout", func(t *testing.T) {
		got = nil
		p := newPair(t, nil)
		p.pump()
		p.cut = true
		s := tcpState(2)
		p.a.Defer(&s, release(2))
		p.clk.Advance(DefaultDeferTimeout - time.Millisecond)
		p.pump()
		if len(got) != 0 {
			t.Fatalf("released %v before the timeout", got)
		}
		p.clk.Advance(time.Millisecond)
		p.pump()
		if !slices.Equal(got, []rel{{2, false}}) || p.a.Stats().DeferTimeouts != 1 {
			t.Fatalf("released %v, timeouts %d", got, p.a.Stats().DeferTimeouts)
		}
	})
	t.Run("limit", func(t *testing.T) {
		got = nil
		p := newPair(t, func(o *Options) { o.DeferMax = 2 })
		p.pump()
		p.cut = true
		for i := 1; i <= 3; i++ {
			s := tcpState(i)
			p.a.Defer(&s, release(i))
		}
		if !slices.Equal(got, []rel{{1, false}}) || p.a.Stats().DeferOverflows != 1 {
			t.Fatalf("released %v with 3 held of at most 2", got)
		}
		p.advance(DefaultDeferTimeout)
		if !slices.Equal(got, []rel{{1, false}, {2, false}, {3, false}}) {
			t.Fatalf("released %v after the timeout", got)
		}
	})
	t.Run("no-sync", func(t *testing.T) {
		got = nil
		p := newPair(t, nil)
		s := tcpState(4)
		s.Mark = 0x1000 // the pair's NoSyncMask
		p.a.Defer(&s, release(4))
		if !slices.Equal(got, []rel{{4, false}}) || len(p.toB) != 0 {
			t.Fatalf("released %v, %d messages", got, len(p.toB))
		}
	})
}

// TestRefreshBulkWithoutDemotion: a master that hears another master asks
// for the peer's table (the states created while they could not hear each
// other) without demoting CARP.
func TestRefreshBulkWithoutDemotion(t *testing.T) {
	p := newPair(t, nil)
	p.cut = true // a split: A's new states go nowhere
	for i := 1; i <= 3; i++ {
		p.a.Local(&Event{Type: EventNew, State: tcpState(i)})
	}
	p.advance(time.Second)
	if len(p.tb.m) != 0 {
		t.Fatal("states crossed the cut")
	}
	p.cut = false
	p.b.Refresh("test")
	p.advance(time.Second)
	if len(p.tb.m) != 3 || p.b.Stats().BulkDone != 1 {
		t.Fatalf("after the refresh B holds %d states (%d bulk updates done), want 3 in 1", len(p.tb.m), p.b.Stats().BulkDone)
	}
	if p.demB != 0 {
		t.Fatalf("a refresh demoted CARP (%d)", p.demB)
	}
	// A refresh while a bulk update runs changes nothing.
	p.b.RequestBulk("test")
	p.b.Refresh("test")
	if p.demB != 1 {
		t.Fatalf("demotion %d during a bulk update, want 1", p.demB)
	}
	p.advance(time.Second)
	if p.demB != 0 || p.b.Stats().BulkDone != 2 {
		t.Fatalf("after the bulk: demotion %d, %d done", p.demB, p.b.Stats().BulkDone)
	}
}

// TestPeerReplacesPickup: an entry our kernel picked up mid-connection
// (born ESTABLISHED) yields to the peer's older version of the connection,
// NAT included; one born with a SYN (a connection of ours) does not.
func TestPeerReplacesPickup(t *testing.T) {
	p := newPair(t, nil)
	p.cut = true
	peer := tcpState(1)  // A's connection, to backend .20
	other := tcpState(2) // A's too
	p.a.Local(&Event{Type: EventNew, State: peer})
	p.a.Local(&Event{Type: EventNew, State: other})
	p.advance(100 * time.Millisecond)
	picked := tcpState(1) // B's kernel picks the same flow up, to backend .21
	picked.Reply.Src = netip.MustParseAddr("198.51.100.21")
	p.b.Local(&Event{Type: EventNew, State: picked})
	own := tcpState(2) // a connection B saw from its SYN on
	own.TCP.State = TCPSynSent
	p.b.Local(&Event{Type: EventNew, State: own})
	own.TCP.State = TCPEstablished
	p.b.Local(&Event{Type: EventUpdate, State: own})
	p.advance(100 * time.Millisecond)
	p.cut = false
	p.b.Refresh("test")
	p.advance(time.Second)
	if got := p.tb.m[keyOf(peer)]; got.Reply != peer.Reply {
		t.Fatalf("B's pickup kept its reply %v, want the peer's %v", got.Reply, peer.Reply)
	}
	if n := p.b.Stats().PickupsReplaced; n != 1 {
		t.Fatalf("%d pickups replaced, want 1", n)
	}
	if p.b.Stats().Stale == 0 {
		t.Fatal("the peer's older version of B's own connection was not taken for stale")
	}
}
