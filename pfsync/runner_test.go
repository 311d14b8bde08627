package pfsync

import (
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
	closed chan struct{}
	once   sync.Once
}

func (c *chanTransport) Send([]byte) error { return nil }

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
