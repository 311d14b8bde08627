package pfsync

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/pfcarp/pfcarp/internal/clock"
)

// Table is the local state table the Engine replicates: the kernel's
// conntrack (Conntrack) or a fake in tests.
type Table interface {
	// Dump returns the entries to sync (the caller filters no-sync ones
	// again, so a table may return them).
	Dump() ([]State, error)
	// Inject creates or updates an entry received from the peer.
	Inject(s *State) error
	// Delete removes the entry with s's key; a missing one is not an error.
	Delete(s *State) error
}

// BatchTable is a Table that applies several of the peer's states at
// once (KernelTable: one netlink write for a message's worth, not one
// round trip each). exists[i] reports that the Engine already holds
// states[i]'s entry, so the kernel most likely has it and an update is
// tried first. It returns one error per state (nil: applied).
type BatchTable interface {
	Table
	InjectBatch(states []State, exists []bool) []error
}

// StickyTable holds sticky-address bindings (nftables dynamic maps).
type StickyTable interface {
	Dump() ([]Sticky, error)
	Set(k *Sticky) error // Set with k.Delete removes the binding
}

// EventType says what happened to a local entry.
type EventType uint8

// Event types, as conntrack's NEW, UPDATE and DESTROY groups.
const (
	EventNew EventType = iota + 1
	EventUpdate
	EventDestroy
)

// Event is a change in the local table.
type Event struct {
	Type  EventType
	State State
}

// Defaults, after FreeBSD's if_pfsync.c where it has them.
const (
	DefaultMaxUpd = 128 // pfsync(4)'s maxupd default
	// DefaultFlushInterval bounds how long a queued change waits for
	// company. FreeBSD waits up to 1 s; pfcarp flushes sooner because the
	// sync lag is the window in which a failover loses a new flow.
	DefaultFlushInterval = 100 * time.Millisecond
	// DefaultPromptDelay is how long a prompt change (a state the peer
	// does not hold yet, or a TCP handshake step: SYN_RECV, ESTABLISHED)
	// waits for company: zero, it goes out once the events already queued
	// have been taken in (Options.PromptDelay). A connection whose
	// handshake completed on the master survives a failover only once the
	// peer holds it past SYN_SENT, so these do not wait for the flush
	// interval; plain updates do, and coalesce.
	DefaultPromptDelay = 0
	// DefaultDeferTimeout and DefaultDeferMax bound `defer`, as FreeBSD's
	// if_pfsync.c does: a held packet goes after PFSYNC_DEFER_TIMEOUT
	// (20 ms) without the peer's ack, and when 128 packets are held (its
	// limit per bucket) the oldest goes at once.
	DefaultDeferTimeout = 20 * time.Millisecond
	DefaultDeferMax     = 128
	// DefaultBulkTimeout and DefaultBulkTries: FreeBSD's bulk-fail callout
	// is 5 s and a request is retried up to PFSYNC_MAX_BULKTRIES (12)
	// times before it gives up and lifts the demotion anyway.
	DefaultBulkTimeout = 5 * time.Second
	DefaultBulkTries   = 12
	// DefaultLinkRetry and linkRetries: after the sync link returns, the
	// first requests are repeated this soon rather than after BulkTimeout.
	// Both nodes see the link return at about the same time and each
	// request can be lost: the peer's link, or the switch port between
	// them, may not pass traffic yet (Linux reports and acts on most
	// carrier changes up to a second late).
	DefaultLinkRetry = time.Second
	linkRetries      = 2
	// DefaultBulkMax caps a bulk update that keeps making progress.
	DefaultBulkMax = 5 * time.Minute
	DefaultMTU     = 1500
	// DefaultStickyPoll: sticky-address bindings are made by the kernel's
	// packet path (nftables dynset), which sends no netlink events, so the
	// Engine diffs the maps this often. A binding made in the last poll
	// interval before a failover can be lost; the client is then bound
	// afresh by the new master.
	DefaultStickyPoll = 200 * time.Millisecond
	// bulkBurst messages go every bulkPace while a bulk update is served:
	// 1,000 messages/s, some 24,000 IPv4 states/s, about what the peer's
	// kernel takes in (lab bench: 24,000 injections/s). Unpaced, the
	// messages of 10,000 states overran the peer's socket, its BULK END
	// among them, and it waited out BulkTimeout to ask again (10.4 s for
	// 10,000 states). FreeBSD's pfsync_bulk_update sends one full packet
	// per clock tick.
	bulkBurst = 4
	bulkPace  = 4 * time.Millisecond
	// DefaultResyncInterval is how often the daemon compares the kernel's
	// table with what pfsync last saw of it (Options.ResyncInterval). A
	// netlink event can be lost without a report (one the kernel fails to
	// allocate; an overrun is reported and resyncs at once, and Watch
	// keeps its socket, so none are lost reopening it); a change it
	// carried, and so the peer's copy, is then
	// behind for at most this long. The cost is one conntrack dump per
	// interval (a kernel walk of every entry plus decoding) and a
	// comparison; only entries that differ are sent. BenchmarkPeriodicResync
	// measured 147 ms for 20,000 entries (7.4 µs each) on a 2-core test
	// machine; the Engine's loop waits meanwhile, its events queue
	// (eventQueueLen), and a queue that overflows forces another resync.
	DefaultResyncInterval = 30 * time.Second
)

// Options configure an Engine. Table, Clock and Send are required.
type Options struct {
	Clock  clock.Clock
	Logger *slog.Logger
	Table  Table
	Sticky StickyTable // nil: no sticky-address sync
	// StickyPoll is how often Sticky is read for new or renewed bindings
	// (the kernel reports no events for elements its packet path adds).
	// Default DefaultStickyPoll.
	StickyPoll time.Duration
	// StickyAsync: Sticky is read and written by the Runner on a goroutine
	// of its own (StickyDumped hands a dump in, TakeStickySets hands the
	// peer's bindings out), not on the loop: a dump of the nftables maps
	// or a transaction that writes one binding takes milliseconds, and on
	// the loop it held up every state behind it (lab bench, p99 sync lag
	// at 500 new conn/s: 23 ms with both on the loop, 15 ms with the dump
	// off it, 7 ms with neither).
	StickyAsync bool
	// Send transmits one sealed message to the peer(s).
	Send func(msg []byte) error
	// Demote adjusts CARP's node-wide demotion (nil: no CARP).
	Demote func(delta int, reason string)
	Key    []byte // pfsync_key; empty: unauthenticated
	NodeID uint32 // this node's id on the wire (non-zero)
	// Epoch starts this run's sequence space; zero means Clock.Now().
	Epoch uint64
	// NoSyncMask: entries with mark&NoSyncMask != 0 are neither sent nor
	// accepted (pf's no-sync). Zero disables the check.
	NoSyncMask    uint32
	MaxUpd        int
	FlushInterval time.Duration
	// PromptDelay is how long a prompt change (see DefaultPromptDelay)
	// may wait to be sent with others. Zero: as soon as the Runner has
	// taken in the events queued with it (Tick sends it). Negative: no
	// prompt sends, every change waits for FlushInterval or MaxUpd (the
	// behaviour before prompt sends, kept for the benchmark's baseline).
	PromptDelay time.Duration
	// DeferTimeout and DeferMax bound the packets held by Defer (defaults
	// DefaultDeferTimeout, DefaultDeferMax).
	DeferTimeout time.Duration
	DeferMax     int
	BulkTimeout  time.Duration
	BulkTries    int
	// LinkRetry is how soon the first requests after LinkUp are repeated
	// without an answer (default DefaultLinkRetry).
	LinkRetry time.Duration
	BulkMax   time.Duration
	// ResyncInterval, when positive, is how often Table is read whole and
	// compared with the Engine's view (Resync): a local change whose event
	// was lost is sent then. Zero: only after reported losses.
	ResyncInterval time.Duration
	MTU            int
	// SyncDev and SyncPeer are reported in Status only.
	SyncDev  string
	SyncPeer netip.Addr
}

// BulkState is the requesting side of a bulk update.
//
//	       Start / link heal             peer's BULK START
//	Idle ───────────────────> Requested ───────────────────> Receiving
//	 ^  (demote +1, request)   │  timeout: retry request       │ progress resets the timer
//	 │                         │  after BulkTries: give up     │ BULK END, timeout after
//	 └─────────────────────────┴───────────────────────────────┘ BulkTries, or BulkMax
//	                   (demote -1; a give-up logs at error level)
type BulkState uint8

// Bulk states.
const (
	BulkIdle BulkState = iota
	BulkRequested
	BulkReceiving
)

func (b BulkState) String() string {
	switch b {
	case BulkIdle:
		return "idle"
	case BulkRequested:
		return "requested"
	case BulkReceiving:
		return "receiving"
	}
	return "?"
}

type stickyKey struct {
	m   string
	src netip.Addr
}

type stickyRec struct {
	backend netip.Addr
	expires time.Time
}

type entry struct {
	s       State
	updated int64 // unix ns of the newest version we hold (ours or the peer's)
	peer    bool  // last written by the peer
	// pickup: our kernel made the entry up from a packet in the middle of
	// a connection (a TCP entry born past SYN_SENT: conntrack's loose
	// pickup, which a ruleset without block rules lets through). It knows
	// nothing the peer's version of the connection does not, and is newer
	// only because the connection's packets reached us before the peer's
	// state did (right after a takeover): the peer's version wins.
	pickup bool
}

type pendOp uint8

const (
	pendUpdate pendOp = iota + 1
	pendDelete
)

type pending struct {
	op    pendOp
	s     State
	count int // updates coalesced
	// replace: the key's old connection ended and a new one reuses its
	// tuple (a client reusing a source port): the peer must delete the
	// old entry before creating the new, since tuples and NAT bindings of
	// a kernel entry cannot be changed.
	replace bool
	prompt  bool // listed in Engine.prompt: sent after PromptDelay
	ack     bool // sent with RecFlagAck: a packet is held until the peer acks
}

// deferral is a packet held until the peer acknowledges its state.
type deferral struct {
	k       Key
	due     time.Time
	release func(acked bool)
}

// Engine is pfsync's protocol core: it turns local table changes into
// batched, authenticated messages, applies the peer's messages to the local
// table, and runs the bulk update (both serving and requesting). It is not
// safe for concurrent use: one goroutine (a Runner, or a test) calls every
// method, and drives time through Deadline and Tick.
type Engine struct {
	o    Options
	log  *slog.Logger
	auth *Auth // sealing
	open *Auth // opening (separate hash state)
	seq  uint64

	table map[Key]*entry

	pend      map[Key]*pending
	order     []Key // keys in queueing order; may hold keys sent since (skipped)
	pendSince time.Time
	// prompt holds the keys of pending prompt changes, promptSince when
	// the first was queued (see DefaultPromptDelay).
	prompt      []Key
	promptSince time.Time

	// requesting side
	bulk        BulkState
	bulkTries   int
	bulkDemoted bool
	// bulkNoDemote: the bulk request being made is a Refresh.
	bulkNoDemote bool
	bulkBegan    time.Time
	bulkDue      time.Time
	bulkGot      uint64
	bulkKicked   bool // this try was already repeated early (see Receive)
	bulkQuick    int  // requests left that are repeated after LinkRetry

	// sticky-address bindings as last sent or received, to send only new,
	// moved or renewed ones (and not echo the peer's)
	sticky    map[stickyKey]stickyRec
	stickyDue time.Time

	resyncDue time.Time // zero: no periodic resync

	// serving side
	serve     []State
	serveSent uint64
	serveDue  time.Time // the next burst (bulkPace after the last)

	// stickySets are the peer's bindings received and not yet written
	// (Options.StickyAsync: the Runner writes them)
	stickySets []Sticky

	replay map[uint32]*replayWindow

	// the peer's states of the message being received, applied to the
	// table together (flushInjects) before any delete and at its end
	injQ     []State
	injKnown []bool
	// injUpd: the queued states' update stamps, 0 for those of a bulk
	// update (their lag is the bulk's, not the sync's).
	injUpd []int64
	// acks are the keys of the message being received whose states asked
	// for an ack; sent once they are in the table
	acks []State

	// deferred packets, oldest first (they share one timeout, so this is
	// also the order they fall due)
	deferred []deferral

	stats Stats
	buf   []byte
	nrec  int
}

// Stats are the Engine's counters.
type Stats struct {
	MsgsSent, MsgsReceived     uint64
	StatesSent, StatesReceived uint64
	DeletesSent, DeletesRecv   uint64
	StickySent, StickyRecv     uint64
	Dropped                    [NumDrops]uint64
	SendErrors                 uint64
	InjectErrors               uint64
	Stale                      uint64 // peer updates older than ours, ignored
	NoSyncSkipped              uint64
	Echoes                     uint64 // local events that carried nothing new
	BulkRequestsSent           uint64
	BulkRequestsServed         uint64
	BulkDone, BulkFailed       uint64
	LastBulkDuration           time.Duration
	LastBulkStates             uint64
	LastBulkEnd                time.Time // when the last bulk update we requested completed
	StickyErrors               uint64    // reading the sticky maps failed
	// ResyncRepairs counts entries a resync found changed or gone without
	// an event having told us (each is sent to the peer).
	ResyncRepairs uint64
	// Defer: packets held, released on the peer's ack, released after
	// DeferTimeout, released early because DeferMax were held; acks sent
	// and received.
	Deferred, DeferAcked, DeferTimeouts, DeferOverflows uint64
	AcksSent, AcksReceived                              uint64
	// Lag: received updates' sync lag (see Lag).
	Lag Lag
	// PickupsReplaced counts entries our kernel picked up mid-connection
	// that the peer's version replaced (see entry.pickup).
	PickupsReplaced uint64
}

// NewEngine returns an Engine; it sends nothing until Start.
func NewEngine(o Options) (*Engine, error) {
	if o.Table == nil || o.Clock == nil || o.Send == nil {
		return nil, fmt.Errorf("pfsync: NewEngine needs a Table, a Clock and Send")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxUpd <= 0 {
		o.MaxUpd = DefaultMaxUpd
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.BulkTimeout <= 0 {
		o.BulkTimeout = DefaultBulkTimeout
	}
	if o.BulkTries <= 0 {
		o.BulkTries = DefaultBulkTries
	}
	if o.LinkRetry <= 0 {
		o.LinkRetry = DefaultLinkRetry
	}
	if o.BulkMax <= 0 {
		o.BulkMax = DefaultBulkMax
	}
	if o.MTU <= 0 {
		o.MTU = DefaultMTU
	}
	if o.StickyPoll <= 0 {
		o.StickyPoll = DefaultStickyPoll
	}
	if o.DeferTimeout <= 0 {
		o.DeferTimeout = DefaultDeferTimeout
	}
	if o.DeferMax <= 0 {
		o.DeferMax = DefaultDeferMax
	}
	if o.MTU < 20+HeaderLen+MACLen+recHdrLen+stateFixed+4*16+8 {
		return nil, fmt.Errorf("pfsync: MTU %d too small for one state", o.MTU)
	}
	if o.Epoch == 0 {
		o.Epoch = uint64(o.Clock.Now().UnixNano())
	}
	e := &Engine{o: o, log: o.Logger, auth: NewAuth(o.Key), open: NewAuth(o.Key),
		table: map[Key]*entry{}, pend: map[Key]*pending{}, replay: map[uint32]*replayWindow{},
		sticky: map[stickyKey]stickyRec{}}
	return e, nil
}

// Stats returns the counters.
func (e *Engine) Stats() Stats { return e.stats }

// Bulk returns the requesting side's bulk state.
func (e *Engine) Bulk() BulkState { return e.bulk }

// Len is the number of states the Engine tracks.
func (e *Engine) Len() int { return len(e.table) }

func (e *Engine) noSync(s *State) bool { return e.o.NoSyncMask != 0 && s.Mark&e.o.NoSyncMask != 0 }

// Start loads the local table and requests a bulk update from the peer,
// demoting CARP until it completes or gives up.
func (e *Engine) Start() {
	if states, err := e.o.Table.Dump(); err != nil {
		e.log.Warn("pfsync: reading the local table", "err", err)
	} else {
		// When these entries last changed is unknown (the node may have
		// been away while the peer carried their flows on), so they are
		// stamped oldest: any version the peer sends, in the bulk update
		// above all, wins and refreshes them here.
		for i := range states {
			if !e.noSync(&states[i]) {
				e.table[states[i].Key()] = &entry{s: states[i], updated: 0}
			}
		}
	}
	if !e.o.StickyAsync {
		e.stickyDue = e.o.Clock.Now()
	}
	if e.o.ResyncInterval > 0 {
		e.resyncDue = e.o.Clock.Now().Add(e.o.ResyncInterval)
	}
	e.bulkQuick = 0
	e.requestBulk("pfsync bulk start")
}

// LinkUp tells the Engine the sync interface's carrier returned: as after
// a start, it requests a bulk update (BSD pfsync does so when its syncdev
// comes back up).
//
// Its first linkRetries requests are repeated after LinkRetry, not
// BulkTimeout: both nodes request at once when the link returns, and both
// requests are lost when neither peer's path passed traffic yet.
func (e *Engine) LinkUp() {
	e.bulkQuick = linkRetries
	e.requestBulk("pfsync bulk start (sync link up)")
}

// RequestBulk requests a bulk update for reason (the daemon does when a
// CARP interface returns: this node's entries for flows the peer carried
// meanwhile are stale), demoting CARP until it completes.
func (e *Engine) RequestBulk(reason string) {
	e.bulkQuick = 0
	e.requestBulk(reason)
}

// Refresh asks the peer for a bulk update without demoting CARP: this node
// is master and serving, and another master has just been heard (a healed
// split brain), whose side may hold states created while the two could
// not hear each other; pfsync sent them into the void and will not send
// them again. A demotion would hand the VIPs straight back. A bulk update
// already running is left alone.
func (e *Engine) Refresh(reason string) {
	if e.bulk != BulkIdle {
		return
	}
	e.bulkQuick = 0
	e.bulkNoDemote = true
	e.requestBulk(reason)
	e.bulkNoDemote = false
}

func (e *Engine) requestBulk(reason string) {
	now := e.o.Clock.Now()
	if e.bulk == BulkIdle {
		e.bulkBegan = now
		e.bulkTries = 0
		e.bulkGot = 0
		if !e.bulkDemoted && e.o.Demote != nil && !e.bulkNoDemote {
			e.o.Demote(1, reason)
			e.bulkDemoted = true
		}
	}
	e.bulk = BulkRequested
	e.bulkDue = now.Add(e.o.BulkTimeout)
	if e.bulkQuick > 0 {
		e.bulkQuick--
		e.bulkDue = now.Add(e.o.LinkRetry)
	}
	e.bulkKicked = false
	e.stats.BulkRequestsSent++
	e.log.Info("pfsync: requesting bulk update", "try", e.bulkTries+1)
	e.flush() // queued changes first: they are older than what we ask for
	e.addRecord(recHdrLen, func(b []byte) []byte { return AppendBulkRequest(b) })
	e.flush()
}

func (e *Engine) endBulk(ok bool, why string) {
	d := e.o.Clock.Now().Sub(e.bulkBegan)
	e.bulk = BulkIdle
	e.bulkQuick = 0
	if ok {
		e.stats.BulkDone++
		e.stats.LastBulkDuration = d
		e.stats.LastBulkStates = e.bulkGot
		e.stats.LastBulkEnd = e.o.Clock.Now()
		e.log.Info("pfsync: bulk update done", "states", e.bulkGot, "duration", d)
	} else {
		e.stats.BulkFailed++
		e.log.Error("pfsync: BULK UPDATE FAILED; lifting the CARP demotion anyway, this node may take over without the peer's states",
			"reason", why, "tries", e.bulkTries, "states_received", e.bulkGot, "after", d)
	}
	if e.bulkDemoted && e.o.Demote != nil {
		r := "pfsync bulk done"
		if !ok {
			r = "pfsync bulk fail"
		}
		e.o.Demote(-1, r)
	}
	e.bulkDemoted = false
}

// Local handles one change in the local table.
func (e *Engine) Local(ev *Event) {
	s := &ev.State
	if !s.Orig.Src.IsValid() || !s.Orig.Dst.IsValid() {
		return
	}
	if e.noSync(s) {
		e.stats.NoSyncSkipped++
		return
	}
	k := s.Key()
	cur := e.table[k]
	// The kernel's entry id tells connections on one tuple apart (a
	// client reusing a source port while the old entry lingers in
	// TIME_WAIT): the old entry's DESTROY can arrive after the new one's
	// NEW. An entry we injected has id 0 until its NEW comes back; a
	// DESTROY meanwhile is for the entry it replaced (our own delete).
	otherEntry := cur != nil && s.ID != 0 && cur.s.ID != s.ID && (cur.s.ID != 0 || cur.peer)
	if ev.Type == EventDestroy {
		if cur == nil || otherEntry {
			e.stats.Echoes++ // the peer's delete applied by us, never synced, or an older entry's
			return
		}
		delete(e.table, k)
		e.queue(k, pendDelete, s)
		return
	}
	if cur != nil && cur.peer && cur.s.ID == 0 && s.ID != 0 && s.Reply == cur.s.Reply {
		// The first event for an entry since we wrote the peer's version
		// into the kernel is that write's echo (the kernel reports every
		// ctnetlink create and update, queued before any later change).
		// Its contents are not always what we wrote: the kernel applies
		// window scales only once both directions carry the window-scale
		// flag (so a SYN_SENT entry comes back with none), and status
		// bits can only be set. Taken for a local change, the echo would
		// be stamped with our clock, sent back, and outrank the peer's
		// next, genuinely newer version: that one is stamped when the
		// peer's kernel saw the change, which can be before our echo,
		// so it would be dropped as stale and the entry stay behind for
		// good (a handshake that straddles the peer's flush). Tuples are
		// never changed by a write: another reply tuple is another
		// connection, handled below.
		cur.s.Timeout, cur.s.ID = s.Timeout, s.ID
		e.stats.Echoes++
		return
	}
	now := e.o.Clock.Now().UnixNano()
	if cur != nil && sameReplicated(&cur.s, s) {
		cur.s.Timeout, cur.s.ID = s.Timeout, s.ID // (an inject's echo tells us its id)
		e.stats.Echoes++
		return
	}
	reused, prompt := false, false
	pickup := false
	if cur == nil {
		cur = &entry{}
		e.table[k] = cur
		prompt = true // the peer does not hold it yet
		pickup = ev.Type == EventNew && s.Proto == 6 && s.TCP.State != TCPNone && s.TCP.State != TCPSynSent
	} else if (otherEntry && cur.s.ID != 0) || cur.s.Reply != s.Reply {
		// A new connection on a known tuple: the peer must drop the old
		// entry (tuples and NAT bindings cannot be updated).
		reused, prompt = true, true
	} else if s.TCP.State != cur.s.TCP.State && (s.TCP.State == TCPSynRecv || s.TCP.State == TCPEstablished) {
		// A handshake step: a peer that holds the entry in SYN_SENT
		// would take the client's ACK after a takeover for INVALID.
		prompt = true
	}
	cur.s, cur.updated, cur.peer = *s, now, false
	cur.pickup = pickup || (cur.pickup && !reused)
	e.queue(k, pendUpdate, s)
	if reused {
		e.pend[k].replace = true
	}
	if prompt {
		e.markPrompt(k)
	}
}

// Defer is pf's `defer` for one packet: the caller holds the first packet
// of the new local state s (read from the kernel's queue before the entry
// is confirmed, so before its NEW event) and passes it on when release is
// called. The Engine records s as a local change and sends it at once,
// asking the peer for an ack; release runs (once, on the Engine's
// goroutine) with acked true when the ack arrives, or with false after
// DeferTimeout, or at once when DeferMax packets are held already (the
// oldest goes), as FreeBSD's pfsync_defer bounds it. A state that cannot
// be synced (no valid tuple, no-sync mark) is released at once.
func (e *Engine) Defer(s *State, release func(acked bool)) {
	if !s.Orig.Src.IsValid() || !s.Orig.Dst.IsValid() || e.noSync(s) {
		release(false)
		return
	}
	for len(e.deferred) >= e.o.DeferMax {
		e.stats.DeferOverflows++
		e.undefer(0, false)
	}
	k := s.Key()
	e.Local(&Event{Type: EventNew, State: *s})
	p := e.pend[k]
	if p == nil {
		// Nothing new to send (the peer's version, or an unchanged entry):
		// a pending ack would never come.
		p = &pending{op: pendUpdate, s: *s}
		e.pend[k] = p
	}
	p.ack = true
	if !p.prompt {
		p.prompt = true
		e.prompt = append(e.prompt, k)
	}
	e.stats.Deferred++
	e.deferred = append(e.deferred, deferral{k: k, due: e.o.Clock.Now().Add(e.o.DeferTimeout), release: release})
	e.flushPrompt() // at once, as pfsync_defer pushes
}

// acked releases the packets held for k's state.
func (e *Engine) acked(k Key) {
	for i := 0; i < len(e.deferred); {
		if e.deferred[i].k == k {
			e.stats.DeferAcked++
			e.undefer(i, true)
			continue
		}
		i++
	}
}

// undefer takes the i'th held packet off the list and releases it.
func (e *Engine) undefer(i int, acked bool) {
	d := e.deferred[i]
	e.deferred = slices.Delete(e.deferred, i, i+1)
	d.release(acked)
}

// markPrompt lists k's pending change for sending after PromptDelay.
func (e *Engine) markPrompt(k Key) {
	p := e.pend[k]
	if p == nil || p.prompt || e.o.PromptDelay < 0 {
		return
	}
	p.prompt = true
	if len(e.prompt) == 0 {
		e.promptSince = e.o.Clock.Now()
	}
	e.prompt = append(e.prompt, k)
}

// LocalSticky queues a sticky binding change for the peer.
func (e *Engine) LocalSticky(k *Sticky) {
	if len(k.Map) == 0 || len(k.Map) > MaxMapName || !k.Source.IsValid() || k.Source.Is4() != k.Backend.Is4() {
		return
	}
	e.stats.StickySent++
	kk := *k
	e.addRecord(StickyLen(&kk), func(b []byte) []byte { return AppendSticky(b, &kk) })
}

func (e *Engine) queue(k Key, op pendOp, s *State) {
	p := e.pend[k]
	if p == nil {
		p = &pending{}
		e.pend[k] = p
		e.order = append(e.order, k)
		if len(e.order) == 1 {
			e.pendSince = e.o.Clock.Now()
		}
	}
	switch {
	case op == pendUpdate && p.op == pendDelete:
		p.replace = true // a DESTROY then a NEW of the same tuple
	case op == pendDelete:
		p.replace = false
	}
	p.op, p.s = op, *s
	p.count++
	if p.count >= e.o.MaxUpd {
		e.flushPending()
	}
}

// flushPending encodes every queued change and sends the messages.
func (e *Engine) flushPending() {
	for _, k := range e.order {
		e.encodePending(k)
	}
	e.order = e.order[:0]
	e.prompt = e.prompt[:0]
	e.flush()
}

// flushPrompt sends the pending prompt changes and leaves the others
// queued (their keys stay in order, where sent ones are skipped).
func (e *Engine) flushPrompt() {
	for _, k := range e.prompt {
		e.encodePending(k)
	}
	e.prompt = e.prompt[:0]
	if len(e.pend) == 0 {
		e.order = e.order[:0] // nothing left for the flush timer
	}
	e.flush()
}

// encodePending adds k's pending change, if any, to the message being
// built and takes it off the queue.
func (e *Engine) encodePending(k Key) {
	p := e.pend[k]
	if p == nil {
		return
	}
	s := p.s
	if p.op == pendUpdate && p.replace {
		e.stats.DeletesSent++
		e.addRecord(DeleteLen(&s), func(b []byte) []byte { return AppendDelete(b, &s) })
	}
	if p.op == pendDelete {
		e.stats.DeletesSent++
		e.addRecord(DeleteLen(&s), func(b []byte) []byte { return AppendDelete(b, &s) })
	} else {
		upd := e.o.Clock.Now().UnixNano()
		if ent := e.table[k]; ent != nil {
			upd = ent.updated
		}
		var fl uint8
		if p.ack {
			fl = RecFlagAck
		}
		e.stats.StatesSent++
		e.addState(&s, upd, fl)
	}
	delete(e.pend, k)
}

// addState adds s's RecState record and, when s has connection labels,
// its RecLabels right after it in the same message.
func (e *Engine) addState(s *State, upd int64, flags uint8) {
	if s.Labels == ([16]byte{}) {
		e.addRecord(StateLen(s), func(b []byte) []byte { return AppendStateFlags(b, s, upd, flags) })
		return
	}
	e.addRecords(StateLen(s)+LabelsLen(s), 2, func(b []byte) []byte {
		return AppendLabels(AppendStateFlags(b, s, upd, flags), s)
	})
}

// addRecord appends one record of size n, sending the message first when
// the record would not fit.
func (e *Engine) addRecord(n int, enc func([]byte) []byte) { e.addRecords(n, 1, enc) }

// addRecords appends recs records of n bytes in all that must share a
// message (a state and its labels).
func (e *Engine) addRecords(n, recs int, enc func([]byte) []byte) {
	limit := e.o.MTU - 20
	if e.auth.Enabled() {
		limit -= MACLen
	}
	if e.nrec > 0 && (len(e.buf)+n > limit || e.nrec > 0xffff-recs) {
		e.flush()
	}
	if e.nrec == 0 {
		e.seq++
		h := Header{Sender: e.o.NodeID, Epoch: e.o.Epoch, Seq: e.seq}
		e.buf = h.AppendTo(e.buf[:0])
	}
	e.buf = enc(e.buf)
	e.nrec += recs
}

// flush seals and sends the message being built, if any.
func (e *Engine) flush() {
	if e.nrec == 0 {
		return
	}
	msg := e.auth.Seal(e.buf, e.nrec)
	e.buf, e.nrec = msg[:0], 0
	e.stats.MsgsSent++
	if err := e.o.Send(msg); err != nil {
		e.stats.SendErrors++
		e.log.Debug("pfsync: send", "err", err)
	}
}

// Deadline reports when Tick must next run (ok false: nothing scheduled).
func (e *Engine) Deadline() (t time.Time, ok bool) {
	if len(e.serve) > 0 {
		return e.serveDue, true
	}
	if len(e.order) > 0 {
		t, ok = e.pendSince.Add(e.o.FlushInterval), true
	}
	if len(e.prompt) > 0 {
		if p := e.promptSince.Add(e.o.PromptDelay); !ok || p.Before(t) {
			t, ok = p, true
		}
	}
	if e.bulk != BulkIdle && (!ok || e.bulkDue.Before(t)) {
		t, ok = e.bulkDue, true
	}
	if len(e.deferred) > 0 && (!ok || e.deferred[0].due.Before(t)) {
		t, ok = e.deferred[0].due, true
	}
	if e.o.Sticky != nil && !e.stickyDue.IsZero() && (!ok || e.stickyDue.Before(t)) {
		t, ok = e.stickyDue, true
	}
	if !e.resyncDue.IsZero() && (!ok || e.resyncDue.Before(t)) {
		t, ok = e.resyncDue, true
	}
	return t, ok
}

// Tick runs what is due: the flush of queued changes (prompt ones after
// PromptDelay, the others after FlushInterval), the bulk update's
// retry or give-up, and the next burst of a bulk update being served.
func (e *Engine) Tick() {
	now := e.o.Clock.Now()
	if len(e.order) > 0 && !now.Before(e.pendSince.Add(e.o.FlushInterval)) {
		e.flushPending()
	}
	if len(e.prompt) > 0 && !now.Before(e.promptSince.Add(e.o.PromptDelay)) {
		e.flushPrompt()
	}
	for len(e.deferred) > 0 && !now.Before(e.deferred[0].due) {
		e.stats.DeferTimeouts++
		e.undefer(0, false)
	}
	if e.bulk != BulkIdle && !now.Before(e.bulkDue) {
		switch {
		case now.Sub(e.bulkBegan) >= e.o.BulkMax:
			e.endBulk(false, fmt.Sprintf("not finished after %v", e.o.BulkMax))
		case e.bulkTries+1 < e.o.BulkTries:
			e.bulkTries++
			e.requestBulk("")
		default:
			e.bulkTries++
			e.endBulk(false, fmt.Sprintf("no complete bulk update after %d requests %v apart", e.bulkTries, e.o.BulkTimeout))
		}
	}
	if e.o.Sticky != nil && !e.stickyDue.IsZero() && !now.Before(e.stickyDue) {
		e.pollSticky(now)
	}
	if !e.resyncDue.IsZero() && !now.Before(e.resyncDue) {
		e.resyncDue = now.Add(e.o.ResyncInterval)
		if err := e.Resync(); err != nil {
			e.log.Warn("pfsync: periodic resync", "err", err)
		}
	}
	if len(e.serve) > 0 && !now.Before(e.serveDue) {
		e.serveBurst()
	}
}

// pollSticky reads the sticky maps and sends the bindings that are new,
// point at another backend, or were renewed by at least a quarter of their
// lifetime since we last sent them (so the peer's copy always has most of
// ours left, without a message per renewal). Bindings that expired here
// are forgotten; the peer's copies expire by themselves.
func (e *Engine) pollSticky(now time.Time) {
	e.stickyDue = now.Add(e.o.StickyPoll)
	ks, err := e.o.Sticky.Dump()
	e.StickyDumped(now, ks, err)
}

// TakeStickySets returns the peer's sticky bindings received since the
// last call, for the caller to write (Options.StickyAsync), in order.
func (e *Engine) TakeStickySets() []Sticky {
	ks := e.stickySets
	e.stickySets = nil
	return ks
}

// StickyDumped takes in a dump of the sticky maps made at now (ks, or the
// error that stopped it): what pollSticky does after reading them, for a
// dump read off the loop (Options.StickyAsync).
func (e *Engine) StickyDumped(now time.Time, ks []Sticky, err error) {
	if err != nil {
		e.stats.StickyErrors++
		e.log.Debug("pfsync: reading sticky bindings", "err", err)
		return
	}
	seen := make(map[stickyKey]bool, len(ks))
	sent := false
	for i := range ks {
		k := &ks[i]
		key := stickyKey{k.Map, k.Source}
		seen[key] = true
		life := time.Duration(k.Timeout) * time.Second
		exp := now.Add(life)
		cur, ok := e.sticky[key]
		if ok && cur.backend == k.Backend && exp.Sub(cur.expires) < max(time.Second, life/4) {
			continue
		}
		e.sticky[key] = stickyRec{k.Backend, exp}
		e.LocalSticky(k)
		sent = true
	}
	for key := range e.sticky {
		if !seen[key] {
			delete(e.sticky, key)
		}
	}
	if sent {
		e.flush()
	}
}

func (e *Engine) serveBurst() {
	e.serveDue = e.o.Clock.Now().Add(bulkPace)
	start := e.stats.MsgsSent
	for len(e.serve) > 0 && e.stats.MsgsSent-start < bulkBurst {
		s := &e.serve[0]
		upd := e.o.Clock.Now().UnixNano()
		if ent := e.table[s.Key()]; ent != nil {
			upd = ent.updated
		}
		e.addState(s, upd, 0)
		e.serve = e.serve[1:]
		e.serveSent++
		e.stats.StatesSent++
	}
	if len(e.serve) == 0 {
		e.serve = nil
		n := uint32(e.serveSent)
		e.addRecord(recHdrLen+8, func(b []byte) []byte { return AppendBulkStatus(b, BulkEnd, n) })
		e.flush()
		e.log.Info("pfsync: bulk update sent", "states", e.serveSent)
	} else {
		e.flush()
	}
}

// startServing answers a bulk request: BULK START, every syncable state
// (in bursts, from Tick) and the sticky bindings, then BULK END.
func (e *Engine) startServing() {
	e.stats.BulkRequestsServed++
	// What we send is our view of the table: local and peer-written
	// entries alike, so a flow that began here while the requester was
	// away reaches it too.
	e.flushPending()
	states := make([]State, 0, len(e.table))
	for _, ent := range e.table {
		states = append(states, ent.s)
	}
	e.serve, e.serveSent = states, 0
	n := uint32(len(states))
	e.addRecord(recHdrLen+8, func(b []byte) []byte { return AppendBulkStatus(b, BulkStart, n) })
	if e.o.Sticky != nil {
		if ks, err := e.o.Sticky.Dump(); err != nil {
			e.log.Warn("pfsync: reading sticky bindings", "err", err)
		} else {
			for i := range ks {
				e.LocalSticky(&ks[i])
			}
		}
	}
	if len(states) == 0 {
		e.serveBurst()
	}
}

// Receive handles one datagram from the peer. It returns the drop reason
// when the message was dropped (also counted).
func (e *Engine) Receive(b []byte) (Drop, bool) {
	h, body, err := e.open.Open(b)
	if err != nil {
		return e.drop(err), false
	}
	if h.Sender == e.o.NodeID && h.Epoch == e.o.Epoch {
		e.stats.Dropped[DropSelf]++
		return DropSelf, false
	}
	// Check every record before acting on any: a malformed message is
	// dropped whole.
	if err := validate(body, h.Count); err != nil {
		return e.drop(err), false
	}
	w := e.replay[h.Sender]
	if w == nil {
		if len(e.replay) >= 64 { // a bounded map: forget strangers
			clear(e.replay)
		}
		w = &replayWindow{}
		e.replay[h.Sender] = w
	}
	// A sender or epoch not heard before: the peer (re)started and is
	// listening now, so a bulk request of ours it may have missed is worth
	// repeating at once rather than after BulkTimeout.
	fresh := w.top == 0 || h.Epoch > w.epoch
	if !w.check(h.Epoch, h.Seq) {
		e.stats.Dropped[DropReplay]++
		return DropReplay, false
	}
	e.stats.MsgsReceived++
	recs := NewRecords(body, h.Count)
	var s State
	var k Sticky
	peerAsked := false
	for {
		typ, rb, ok := recs.Next()
		if !ok {
			break
		}
		switch typ {
		case RecState:
			upd, _ := DecodeState(rb, &s)
			e.applyState(&s, upd)
			if recs.Flags()&RecFlagAck != 0 {
				e.acks = append(e.acks, s)
			}
		case RecStateAck:
			_ = DecodeStateAck(rb, &s) // validate (above) checked every record
			e.stats.AcksReceived++
			e.acked(s.Key())
		case RecLabels:
			_ = DecodeLabels(rb, &s) // validate (above) checked every record
			e.applyLabels(&s)
		case RecDelete:
			_ = DecodeDelete(rb, &s) // validate (above) checked every record
			e.stats.DeletesRecv++
			key := s.Key()
			if _, ok := e.table[key]; ok {
				delete(e.table, key)
				delete(e.pend, key)
				e.flushInjects()
				if err := e.o.Table.Delete(&s); err != nil {
					e.stats.InjectErrors++
					e.log.Debug("pfsync: delete", "err", err)
				}
			}
		case RecSticky:
			_ = DecodeSticky(rb, &k) // validate (above) checked every record
			e.stats.StickyRecv++
			if e.o.Sticky != nil && (k.Delete || k.Timeout > 0) {
				key := stickyKey{k.Map, k.Source}
				if k.Delete {
					delete(e.sticky, key)
				} else {
					// Known as sent: our next poll does not echo it.
					e.sticky[key] = stickyRec{k.Backend, e.o.Clock.Now().Add(time.Duration(k.Timeout) * time.Second)}
				}
				if e.o.StickyAsync {
					// written by the Runner off the loop (TakeStickySets):
					// an nftables transaction each
					e.stickySets = append(e.stickySets, k)
				} else if err := e.o.Sticky.Set(&k); err != nil {
					e.stats.InjectErrors++
					e.log.Debug("pfsync: sticky", "err", err)
				}
			}
		case RecBulkRequest:
			peerAsked = true
			e.startServing()
		case RecBulkStatus:
			st, n, _ := DecodeBulkStatus(rb)
			e.bulkStatus(st, n)
		}
	}
	e.flushInjects()
	if len(e.acks) > 0 {
		// The states are in the table now: the peer's held packets may go.
		e.flush()
		for i := range e.acks {
			a := &e.acks[i]
			e.stats.AcksSent++
			e.addRecord(StateAckLen(a), func(b []byte) []byte { return AppendStateAck(b, a) })
		}
		e.flush()
		e.acks = e.acks[:0]
	}
	if e.bulk == BulkReceiving {
		e.bulkDue = e.o.Clock.Now().Add(e.o.BulkTimeout) // progress
	}
	if e.bulk == BulkRequested && (fresh || peerAsked) && !e.bulkKicked {
		// Both nodes started (or saw the sync link return) together and
		// our request went out before the peer listened: its own request,
		// or its first message, shows it listens now. Once per try, so two
		// waiting nodes do not ping-pong requests.
		e.log.Info("pfsync: peer is listening now: repeating the bulk request at once")
		e.requestBulk("")
		e.bulkKicked = true
	}
	return 0, true
}

func (e *Engine) bulkStatus(st uint8, n uint32) {
	switch {
	case st == BulkStart && e.bulk != BulkIdle:
		e.bulk = BulkReceiving
		e.log.Info("pfsync: receiving bulk update", "states", n)
	case st == BulkEnd && e.bulk != BulkIdle:
		e.endBulk(true, "")
	}
}

func (e *Engine) applyState(s *State, upd int64) {
	e.stats.StatesReceived++
	if e.bulk == BulkReceiving {
		e.bulkGot++
	}
	if e.noSync(s) {
		e.stats.NoSyncSkipped++
		return
	}
	if s.Proto == 6 && s.TCP.State == TCPSynSent {
		// Written as SYN_RECV: should this node take over before the
		// peer's next step arrives, the kernel carries the connection on
		// from either state the handshake may be in by then (the
		// server's SYN/ACK, or the client's ACK that completed it),
		// where a SYN_SENT entry would take the client's ACK for INVALID
		// (TestHandshakeStateOnPeer, TestSynSentAsSynRecvOnPeer).
		s.TCP.State = TCPSynRecv
	}
	k := s.Key()
	cur := e.table[k]
	if cur != nil && cur.updated > upd && !cur.pickup {
		e.stats.Stale++
		return
	}
	if cur != nil && cur.pickup {
		e.stats.PickupsReplaced++
	}
	exists := cur != nil
	if cur == nil {
		cur = &entry{}
		e.table[k] = cur
	} else if cur.s.Reply.Src.IsValid() && cur.s.Reply != s.Reply {
		// Another connection with the same original tuple (other NAT
		// bindings): the kernel cannot change an entry's tuples, so the
		// old one goes first.
		exists = false
		old := cur.s
		e.flushInjects()
		if err := e.o.Table.Delete(&old); err != nil {
			e.stats.InjectErrors++
			e.log.Debug("pfsync: delete before re-create", "err", err)
		}
	}
	if p := e.pend[k]; p != nil && p.op == pendUpdate {
		// The peer's version is newer than the one we were about to send.
		delete(e.pend, k)
	}
	cur.s, cur.updated, cur.peer, cur.pickup = *s, upd, true, false
	e.injQ = append(e.injQ, *s)
	e.injKnown = append(e.injKnown, exists)
	if e.bulk == BulkReceiving {
		upd = 0
	}
	e.injUpd = append(e.injUpd, upd)
}

// applyLabels gives the peer's labels (s: key and labels) to the state of
// that key the same message brought just before (still queued to be
// written), as the sender puts them; labels for a state not taken (stale,
// no-sync) or not known change nothing.
func (e *Engine) applyLabels(s *State) {
	k := s.Key()
	n := len(e.injQ)
	if n == 0 || e.injQ[n-1].Key() != k {
		return
	}
	e.injQ[n-1].Labels = s.Labels
	if cur := e.table[k]; cur != nil {
		cur.s.Labels = s.Labels
	}
}

// flushInjects writes the queued peer states into the table.
func (e *Engine) flushInjects() {
	if len(e.injQ) == 0 {
		return
	}
	errs := make([]error, len(e.injQ))
	if bt, ok := e.o.Table.(BatchTable); ok {
		errs = bt.InjectBatch(e.injQ, e.injKnown)
	} else {
		for i := range e.injQ {
			errs[i] = e.o.Table.Inject(&e.injQ[i])
		}
	}
	now := e.o.Clock.Now().UnixNano()
	for i, err := range errs {
		if err != nil {
			e.stats.InjectErrors++
			e.log.Debug("pfsync: inject", "err", err)
		} else if upd := e.injUpd[i]; upd != 0 {
			e.stats.Lag.observe(time.Duration(now - upd))
		}
	}
	clear(e.injQ) // (no references kept)
	e.injQ, e.injKnown, e.injUpd = e.injQ[:0], e.injKnown[:0], e.injUpd[:0]
}

func (e *Engine) drop(err error) Drop {
	r := DropMalformed
	if de, ok := err.(*DropError); ok {
		r = de.Reason
	}
	e.stats.Dropped[r]++
	return r
}

// validate decodes every record of a message body without acting on it.
func validate(body []byte, count uint16) error {
	recs := NewRecords(body, count)
	var s State
	for {
		typ, rb, ok := recs.Next()
		if !ok {
			break
		}
		var err error
		switch typ {
		case RecState:
			_, err = DecodeState(rb, &s)
		case RecDelete:
			err = DecodeDelete(rb, &s)
		case RecStateAck:
			err = DecodeStateAck(rb, &s)
		case RecLabels:
			err = DecodeLabels(rb, &s)
		case RecSticky:
			err = validateSticky(rb)
		case RecBulkRequest:
			if len(rb) != 0 {
				err = dropErr(DropMalformed, "bulk request with a body")
			}
		case RecBulkStatus:
			_, _, err = DecodeBulkStatus(rb)
		}
		if err != nil {
			return err
		}
	}
	return recs.Err()
}
