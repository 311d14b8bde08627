package clock

import (
	"sort"
	"sync"
	"time"
)

// Fake is a Clock whose time only moves when Advance or AdvanceTo is called.
// Timers fire inside Advance, in deadline order (ties in creation order):
// channel timers get a non-blocking send, AfterFunc callbacks run on the
// caller's goroutine with no lock held. Fake is safe for concurrent use.
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	seq    uint64
	timers []*fakeTimer // active timers, unordered
}

// NewFake returns a Fake clock reading start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// NewTimer returns a timer firing when the fake time reaches Now()+d.
func (f *Fake) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{clk: f, c: make(chan time.Time, 1)}
	t.Reset(d)
	return t
}

// AfterFunc returns a timer that calls fn inside Advance once the fake time
// reaches Now()+d.
func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	t := &fakeTimer{clk: f, fn: fn}
	t.Reset(d)
	return t
}

// Advance moves the time forward by d (d < 0 is treated as 0), firing every
// timer whose deadline is reached, each at its own deadline.
func (f *Fake) Advance(d time.Duration) {
	if d < 0 {
		d = 0
	}
	f.AdvanceTo(f.Now().Add(d))
}

// AdvanceTo moves the time to t (never backwards), firing due timers in order.
func (f *Fake) AdvanceTo(t time.Time) {
	for {
		f.mu.Lock()
		next := f.nextLocked()
		if next == nil || next.when.After(t) {
			if t.After(f.now) {
				f.now = t
			}
			f.mu.Unlock()
			return
		}
		if next.when.After(f.now) {
			f.now = next.when
		}
		f.removeLocked(next)
		now := f.now
		f.mu.Unlock()
		next.fire(now)
	}
}

// NextDeadline reports the earliest pending timer deadline.
func (f *Fake) NextDeadline() (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.nextLocked()
	if n == nil {
		return time.Time{}, false
	}
	return n.when, true
}

// Pending reports how many timers are active.
func (f *Fake) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

func (f *Fake) nextLocked() *fakeTimer {
	if len(f.timers) == 0 {
		return nil
	}
	sort.Slice(f.timers, func(i, j int) bool {
		a, b := f.timers[i], f.timers[j]
		if !a.when.Equal(b.when) {
			return a.when.Before(b.when)
		}
		return a.seq < b.seq
	})
	return f.timers[0]
}

func (f *Fake) removeLocked(t *fakeTimer) bool {
	for i, x := range f.timers {
		if x == t {
			f.timers = append(f.timers[:i], f.timers[i+1:]...)
			return true
		}
	}
	return false
}

type fakeTimer struct {
	clk  *Fake
	c    chan time.Time // nil for AfterFunc timers
	fn   func()
	when time.Time
	seq  uint64
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Reset(d time.Duration) bool {
	f := t.clk
	f.mu.Lock()
	defer f.mu.Unlock()
	active := f.removeLocked(t)
	t.drain()
	f.seq++
	t.seq = f.seq
	t.when = f.now.Add(d)
	f.timers = append(f.timers, t)
	return active
}

func (t *fakeTimer) Stop() bool {
	f := t.clk
	f.mu.Lock()
	defer f.mu.Unlock()
	active := f.removeLocked(t)
	t.drain()
	return active
}

// drain empties the channel so no stale tick is seen after Reset or Stop.
func (t *fakeTimer) drain() {
	if t.c == nil {
		return
	}
	select {
	case <-t.c:
	default:
	}
}

func (t *fakeTimer) fire(now time.Time) {
	if t.fn != nil {
		t.fn()
		return
	}
	select {
	case t.c <- now:
	default:
	}
}
