package pfsync

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/pfcarp/pfcarp/internal/clock"
)

// chanTransport is a Transport whose received messages come from a
// channel (the kernel's socket buffer, here as deep as the test needs).
type chanTransport struct {
	in     chan []byte
	sent   chan []byte // nil: sends are dropped
	closed chan struct{}
	once   sync.Once
}

func (c *chanTransport) Send(m []byte) error {
	if c.sent != nil {
		c.sent <- append([]byte(nil), m...)
	}
	return nil
}

func (c *chanTransport) Recv(buf []byte) (int, int, error) {
	select {
	case m := <-c.in:
		return copy(buf, m), RequiredTTL, nil
	case <-c.closed:
		return 0, 0, errors.New("closed")
	}
}

func (c *chanTransport) Close() error { c.once.Do(func() { close(c.closed) }); return nil }

// lockedTable is a fakeTable the Runner's loop and the test share.
type lockedTable struct {
	mu sync.Mutex
	f  *fakeTable
}

func (l *lockedTable) Dump() ([]State, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.f.Dump() }
func (l *lockedTable) Inject(s *State) error  { l.mu.Lock(); defer l.mu.Unlock(); return l.f.Inject(s) }
func (l *lockedTable) Delete(s *State) error  { l.mu.Lock(); defer l.mu.Unlock(); return l.f.Delete(s) }
func (l *lockedTable) len() int               { l.mu.Lock(); defer l.mu.Unlock(); return len(l.f.m) }

// While the loop is busy, received messages wait (in the socket) rather
// than being dropped: more messages than the Runner's queue holds arrive
// during a long step of the loop, and every state reaches the table.
func TestRunnerWaitsWhileLoopBusy(t *testing.T) {
	tr := &chanTransport{in: make(chan []byte, 4*rxQueueLen), closed: make(chan struct{})}
	tb := &lockedTable{f: newFakeTable()}
	r, err := NewRunner(Options{Clock: clock.Real{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Table: tb, NodeID: 2, Key: []byte("secret")}, tr)
	if err != nil {
		t.Fatal(err)
	}
	r.Start()
	defer r.Close()
	release := make(chan struct{})
	busy := make(chan struct{})
	go r.Do(func(*Engine) { close(busy); <-release }) // a long write, a liberal pass
	<-busy
	n := 3 * rxQueueLen
	auth := NewAuth([]byte("secret"))
	for i := 0; i < n; i++ {
		s := tcpState(1)
		s.Orig.SrcPort, s.Reply.DstPort = uint16(1000+i), uint16(1000+i)
		h := Header{Sender: 9, Epoch: 1, Seq: uint64(i + 1)}
		tr.in <- auth.Seal(AppendState(h.AppendTo(nil), &s, int64(i+1)), 1)
	}
	time.Sleep(50 * time.Millisecond) // let the reader run ahead of the loop
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for tb.len() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d states reached the table; status %+v", tb.len(), n, r.Status().Dropped)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// slowSticky is a StickyTable whose Dump waits until release is closed.
type slowSticky struct {
	dumping chan struct{}
	release chan struct{}
	once    sync.Once
}

func (s *slowSticky) Dump() ([]Sticky, error) {
	s.once.Do(func() { close(s.dumping) })
	<-s.release
	return nil, nil
}
func (s *slowSticky) Set(*Sticky) error { return nil }

// With StickyAsync a slow read of the sticky maps does not hold up the
// loop: a new state goes out while the dump is still running.
func TestStickyPollOffTheLoop(t *testing.T) {
	tr := &chanTransport{in: make(chan []byte), sent: make(chan []byte, 64), closed: make(chan struct{})}
	st := &slowSticky{dumping: make(chan struct{}), release: make(chan struct{})}
	r, err := NewRunner(Options{Clock: clock.Real{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Table: &lockedTable{f: newFakeTable()}, NodeID: 2, Sticky: st, StickyAsync: true}, tr)
	if err != nil {
		t.Fatal(err)
	}
	r.Start()
	defer func() { close(st.release); r.Close() }()
	<-st.dumping
	for len(tr.sent) > 0 { // the bulk request of Start
		<-tr.sent
	}
	r.Local(Event{Type: EventNew, State: tcpState(3)})
	select {
	case m := <-tr.sent:
		if !bytes.Contains(m, tcpState(3).Orig.Src.AsSlice()) {
			t.Fatalf("sent %x, not the new state", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the new state waited for the sticky dump")
	}
}

// blockingSet is a StickyTable whose Set waits until release is closed.
type blockingSet struct {
	setting chan struct{}
	release chan struct{}
	once    sync.Once
}

func (b *blockingSet) Dump() ([]Sticky, error) { return nil, nil }
func (b *blockingSet) Set(*Sticky) error {
	b.once.Do(func() { close(b.setting) })
	<-b.release
	return nil
}

// With StickyAsync the peer's bindings are written off the loop: a state
// that arrives while a binding's write is still running is written at once.
func TestStickySetOffTheLoop(t *testing.T) {
	tr := &chanTransport{in: make(chan []byte, 8), closed: make(chan struct{})}
	st := &blockingSet{setting: make(chan struct{}), release: make(chan struct{})}
	tb := &lockedTable{f: newFakeTable()}
	r, err := NewRunner(Options{Clock: clock.Real{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Table: tb, NodeID: 2, Sticky: st, StickyAsync: true}, tr)
	if err != nil {
		t.Fatal(err)
	}
	r.Start()
	defer func() { close(st.release); r.Close() }()
	s := tcpState(4)
	h := Header{Sender: 9, Epoch: 1, Seq: 1}
	tr.in <- NewAuth(nil).Seal(AppendSticky(h.AppendTo(nil), &Sticky{Map: "m", Source: s.Orig.Src, Backend: s.Reply.Src, Timeout: 30}), 1)
	<-st.setting
	h.Seq = 2
	tr.in <- NewAuth(nil).Seal(AppendState(h.AppendTo(nil), &s, 1), 1)
	deadline := time.Now().Add(5 * time.Second)
	for tb.len() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the state waited for the sticky binding's write")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
