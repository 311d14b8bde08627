package carp

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pfcarp/pfcarp/internal/clock"
)

// Transport carries CARP packets on one parent interface. Implementations:
// the raw IP protocol 112 socket (transport_linux.go) and MemSegment's ports
// for tests.
type Transport interface {
	// Send transmits payload to dst (multicast group or unicast peer)
	// with TTL / hop limit 255.
	Send(dst netip.Addr, payload []byte) error
	// Recv blocks until a packet arrives and fills p; p.Payload is set to
	// the part of buf that was filled. After Close it returns an error.
	Recv(p *Packet, buf []byte) error
	// Close releases the transport and unblocks Recv.
	Close() error
}

// RunnerOptions configure a Runner. Transports maps a parent interface name
// to its transport; the other fields are those of NodeOptions.
type RunnerOptions struct {
	Clock        clock.Clock
	Actions      Actions
	Logger       *slog.Logger
	Rand         io.Reader
	DemoteFactor int
	Transports   map[string]Transport
}

const rxQueueLen = 64 // bounded; overflow is counted in Drops

type rxItem struct {
	parent string
	pkt    Packet
	n      int
	buf    [64]byte // a CARP payload is 36 bytes; the rest is never read
}

// Runner owns the goroutines that drive a Node: one loop that handles
// packets, timers and control calls in order, and one reader per transport
// feeding it through a bounded queue. Use Do to touch the Node from other
// goroutines once Start has been called.
type Runner struct {
	node  *Node
	clk   clock.Clock
	log   *slog.Logger
	trs   map[string]Transport
	rx    chan rxItem
	ctl   chan func(*Node)
	stop  chan struct{}
	done  chan struct{} // closed when the loop has returned
	wg    sync.WaitGroup
	drops atomic.Uint64
	once  sync.Once
}

// NewRunner makes a Runner and its Node; add groups with Node() before Start.
func NewRunner(o RunnerOptions) (*Runner, error) {
	if len(o.Transports) == 0 {
		return nil, errors.New("carp: NewRunner needs at least one transport")
	}
	r := &Runner{clk: o.Clock, log: o.Logger, trs: o.Transports,
		rx: make(chan rxItem, rxQueueLen), ctl: make(chan func(*Node)),
		stop: make(chan struct{}), done: make(chan struct{})}
	n, err := NewNode(NodeOptions{Clock: o.Clock, Actions: o.Actions, Sender: r, Logger: o.Logger,
		Rand: o.Rand, DemoteFactor: o.DemoteFactor})
	if err != nil {
		return nil, err
	}
	r.node = n
	r.log = n.log
	return r, nil
}

// Node returns the Node. Only use it directly before Start; afterwards go
// through Do.
func (r *Runner) Node() *Node { return r.node }

// Send implements Sender over the transports.
func (r *Runner) Send(parent string, dst netip.Addr, payload []byte) error {
	t, ok := r.trs[parent]
	if !ok {
		return errors.New("carp: no transport for " + parent)
	}
	return t.Send(dst, payload)
}

// Drops reports how many received packets were dropped because the loop
// was behind.
func (r *Runner) Drops() uint64 { return r.drops.Load() }

// Start launches the loop and the readers.
func (r *Runner) Start() {
	r.wg.Add(1)
	go r.loop()
	for parent, t := range r.trs {
		r.wg.Add(1)
		go r.read(parent, t)
	}
}

// Do runs f on the loop goroutine and waits for it. It returns false if the
// Runner is closed.
func (r *Runner) Do(f func(*Node)) bool {
	ran := make(chan struct{})
	select {
	case r.ctl <- func(n *Node) { f(n); close(ran) }:
		<-ran
		return true
	case <-r.done:
		return false
	}
}

// Close shuts the node down (masters bow out), then closes the transports
// and waits for every goroutine.
func (r *Runner) Close() error {
	var err error
	r.once.Do(func() {
		close(r.stop)
		<-r.done
		for _, t := range r.trs {
			err = errors.Join(err, t.Close())
		}
		r.wg.Wait()
	})
	return err
}

func (r *Runner) loop() {
	defer r.wg.Done()
	defer close(r.done)
	timer := r.clk.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if dl := r.node.Deadline(); dl.IsZero() {
			timer.Stop()
		} else {
			timer.Reset(max(dl.Sub(r.clk.Now()), 0))
		}
		select {
		case <-r.stop:
			r.node.Shutdown()
			return
		case it := <-r.rx:
			it.pkt.Payload = it.buf[:it.n]
			r.node.Receive(it.parent, &it.pkt)
		case <-timer.C():
			r.node.Tick()
		case f := <-r.ctl:
			f(r.node)
		}
	}
}

func (r *Runner) read(parent string, t Transport) {
	defer r.wg.Done()
	var buf [1500]byte
	for {
		var it rxItem
		if err := t.Recv(&it.pkt, buf[:]); err != nil {
			select {
			case <-r.stop:
				return
			default:
			}
			r.log.Warn("carp receive failed", "parent", parent, "err", err)
			if errors.Is(err, errClosed) || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		it.parent = parent
		it.n = copy(it.buf[:], it.pkt.Payload)
		it.pkt.Payload = nil
		select {
		case r.rx <- it:
		default:
			r.drops.Add(1)
		}
	}
}

var errClosed = errors.New("carp: transport closed")
