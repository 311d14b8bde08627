package pfsync

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Transport carries pfsync messages to the peer(s) and back.
type Transport interface {
	// Send transmits one message (to the multicast group or the peer).
	Send(msg []byte) error
	// Recv blocks for the next message, copies it into buf and returns its
	// length and the IP TTL it arrived with (255 when not applicable).
	// After Close it returns an error.
	Recv(buf []byte) (n int, ttl int, err error)
	Close() error
}

// RequiredTTL is the TTL pfsync messages are sent with and must arrive
// with, as in BSD pfsync: a message from beyond the sync link is dropped.
const RequiredTTL = 255

const (
	eventQueueLen = 4096 // local events waiting for the loop; overflow forces a resync
	rxQueueLen    = 256
)

// Runner runs an Engine: one loop goroutine owns it, a reader goroutine
// feeds it the transport's messages, and Local feeds it kernel events.
type Runner struct {
	e   *Engine
	tr  Transport
	ev  chan Event
	rx  chan []byte
	cmd chan func(*Engine)
	def chan deferReq
	// stickySets carries the peer's bindings to setSticky
	stickySets chan []Sticky
	stop       chan struct{}
	wg         sync.WaitGroup
	once       sync.Once

	overflow atomic.Uint64 // local events dropped (queue full); each forces a resync
	resync   atomic.Bool
	badTTL   atomic.Uint64
	// deferDrops counts packets Defer let go at once (queue full)
	deferDrops atomic.Uint64
	// stickySetErrs counts the peer's bindings setSticky could not write
	stickySetErrs atomic.Uint64
}

// NewRunner builds an Engine over tr (o.Send is set to tr.Send).
func NewRunner(o Options, tr Transport) (*Runner, error) {
	o.Send = tr.Send
	e, err := NewEngine(o)
	if err != nil {
		return nil, err
	}
	return &Runner{e: e, tr: tr, ev: make(chan Event, eventQueueLen), rx: make(chan []byte, rxQueueLen),
		cmd: make(chan func(*Engine)), def: make(chan deferReq, DefaultDeferMax), stickySets: make(chan []Sticky, 64), stop: make(chan struct{})}, nil
}

// Start loads the local table, requests a bulk update (so CARP is demoted
// when Start returns) and starts the goroutines.
func (r *Runner) Start() {
	r.e.Start()
	r.wg.Add(2)
	go r.read()
	go r.loop()
	if r.e.o.Sticky != nil && r.e.o.StickyAsync {
		r.wg.Add(2)
		go r.pollSticky()
		go r.setSticky()
	}
}

// setSticky writes the peer's sticky bindings off the loop, in the order
// they came (Options.StickyAsync).
func (r *Runner) setSticky() {
	defer r.wg.Done()
	for {
		select {
		case <-r.stop:
			return
		case ks := <-r.stickySets:
			for i := range ks {
				if err := r.e.o.Sticky.Set(&ks[i]); err != nil {
					// counted, not handed to the loop: it may be waiting
					// to give us more
					r.stickySetErrs.Add(1)
				}
			}
		}
	}
}

// pollSticky reads the sticky maps every StickyPoll off the loop and hands
// each dump to the Engine (Options.StickyAsync).
func (r *Runner) pollSticky() {
	defer r.wg.Done()
	clk := r.e.o.Clock
	tm := clk.NewTimer(0)
	defer tm.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-tm.C():
		}
		ks, err := r.e.o.Sticky.Dump()
		at := clk.Now()
		if !r.Do(func(e *Engine) { e.StickyDumped(at, ks, err) }) {
			return
		}
		tm.Reset(r.e.o.StickyPoll)
	}
}

// Local queues a local table change without blocking; when the queue is
// full the event is dropped, counted, and the Engine resynchronises from
// the kernel table.
func (r *Runner) Local(ev Event) {
	select {
	case r.ev <- ev:
	default:
		r.overflow.Add(1)
		r.resync.Store(true)
	}
}

// Defer hands the Engine a held first packet of the new local state s
// (Engine.Defer); release runs on the loop goroutine, or at once with
// false when the Runner is closed or its queue is full.
func (r *Runner) Defer(s State, release func(acked bool)) {
	select {
	case r.def <- deferReq{s, release}:
	case <-r.stop:
		release(false)
	default:
		r.deferDrops.Add(1)
		release(false)
	}
}

type deferReq struct {
	s       State
	release func(acked bool)
}

// Overflowed records that events were lost before reaching Local (the
// kernel's event socket overran): the Engine resynchronises.
func (r *Runner) Overflowed() {
	r.overflow.Add(1)
	r.resync.Store(true)
	select {
	case r.ev <- Event{}: // wake the loop
	default:
	}
}

// Do runs fn on the loop goroutine and waits for it; it reports false if
// the Runner is closed.
func (r *Runner) Do(fn func(*Engine)) bool {
	done := make(chan struct{})
	select {
	case r.cmd <- func(e *Engine) { fn(e); close(done) }:
		<-done
		return true
	case <-r.stop:
		return false
	}
}

// Status reports the Engine's status plus the Runner's counters.
func (r *Runner) Status() Status {
	var st Status
	r.Do(func(e *Engine) { st = e.Status() })
	st.EventOverflows = r.overflow.Load()
	st.DeferOverflows += r.deferDrops.Load() // let go before reaching the Engine
	st.InjectErrors += r.stickySetErrs.Load()
	if n := r.badTTL.Load(); n > 0 {
		if st.Dropped == nil {
			st.Dropped = map[string]uint64{}
		}
		st.Dropped["bad-ttl"] = n
	}
	return st
}

// LinkUp starts a bulk update after the sync link healed.
func (r *Runner) LinkUp() { r.Do(func(e *Engine) { e.LinkUp() }) }

// RequestBulk starts a bulk update for another reason (logged and passed
// to the demotion hook); it returns once the request is sent and CARP
// demoted.
func (r *Runner) RequestBulk(reason string) { r.Do(func(e *Engine) { e.RequestBulk(reason) }) }

// Refresh runs Engine.Refresh on the Engine's goroutine.
func (r *Runner) Refresh(reason string) { r.Do(func(e *Engine) { e.Refresh(reason) }) }

// Close stops the goroutines and closes the transport. A bulk update in
// progress is abandoned and its demotion lifted, so a node never stays
// demoted.
func (r *Runner) Close() error {
	var err error
	r.once.Do(func() {
		r.Do(func(e *Engine) {
			if e.bulk != BulkIdle { // not a failure: lift the demotion quietly
				e.bulk = BulkIdle
				if e.bulkDemoted && e.o.Demote != nil {
					e.o.Demote(-1, "pfsync stopping")
				}
				e.bulkDemoted = false
			}
			e.flushPending()
			for len(e.deferred) > 0 { // held packets go now
				e.undefer(0, false)
			}
		})
		close(r.stop)
		err = r.tr.Close()
		r.wg.Wait()
		for {
			select {
			case d := <-r.def: // queued too late: let them go
				d.release(false)
				continue
			default:
			}
			break
		}
	})
	return err
}

func (r *Runner) read() {
	defer r.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, ttl, err := r.tr.Recv(buf)
		if err != nil {
			select {
			case <-r.stop:
				return
			default:
			}
			time.Sleep(10 * time.Millisecond) // a transient socket error: do not spin
			continue
		}
		if ttl != RequiredTTL {
			r.badTTL.Add(1)
			continue
		}
		m := make([]byte, n)
		copy(m, buf[:n])
		// Wait while the loop is busy (a bulk update's writes, a liberal
		// pass): the messages wait in the socket's receive buffer
		// (syncSocketBuffer), which holds seconds of a bulk update. Dropping
		// here instead lost 131 messages of a bulk, its BULK END among
		// them, while the loop wrote a healed split's states.
		select {
		case r.rx <- m:
		case <-r.stop:
			return
		}
	}
}

func (r *Runner) loop() {
	defer r.wg.Done()
	e := r.e
	clk := e.o.Clock
	tm := clk.NewTimer(time.Hour)
	defer tm.Stop()
	for {
		if r.resync.Swap(false) {
			if err := e.Resync(); err != nil {
				e.log.Warn("pfsync: resync", "err", err)
			}
		}
		if d, ok := e.Deadline(); ok {
			tm.Reset(max(d.Sub(clk.Now()), 0))
		} else {
			tm.Reset(time.Hour)
		}
		select {
		case <-r.stop:
			return
		case ev := <-r.ev:
			if ev.Type != 0 {
				e.Local(&ev)
			}
			// Drain what else is queued before touching the timer again.
		drain:
			for i := 0; i < 256; i++ {
				select {
				case ev := <-r.ev:
					if ev.Type != 0 {
						e.Local(&ev)
					}
				default:
					break drain
				}
			}
		case m := <-r.rx:
			e.Receive(m)
			if ks := e.TakeStickySets(); len(ks) > 0 {
				select {
				case r.stickySets <- ks:
				case <-r.stop:
					return
				}
			}
		case fn := <-r.cmd:
			fn(e)
		case d := <-r.def:
			e.Defer(&d.s, d.release)
		case <-tm.C():
			e.Tick()
		}
		if d, ok := e.Deadline(); ok && !d.After(clk.Now()) {
			e.Tick()
		}
	}
}

// Resync re-reads the local table after lost events: entries that are new
// or changed are queued as updates, entries that vanished as deletes.
func (e *Engine) Resync() error {
	states, err := e.o.Table.Dump()
	if err != nil {
		return fmt.Errorf("pfsync: resync: %w", err)
	}
	// Entries that match are counted as echoes by Local; they are not
	// echoes of anything, so they are taken back out of that count.
	echoes, checked := e.stats.Echoes, uint64(0)
	seen := make(map[Key]bool, len(states))
	for i := range states {
		s := &states[i]
		if e.noSync(s) {
			continue
		}
		seen[s.Key()] = true
		checked++
		e.Local(&Event{Type: EventUpdate, State: *s})
	}
	for k, ent := range e.table {
		if !seen[k] {
			s := ent.s
			checked++
			e.Local(&Event{Type: EventDestroy, State: s})
		}
	}
	quiet := e.stats.Echoes - echoes
	e.stats.Echoes = echoes
	if n := checked - quiet; n > 0 {
		e.stats.ResyncRepairs += n
		e.log.Info("pfsync: resync found changes no event reported", "entries", n)
	}
	return nil
}
