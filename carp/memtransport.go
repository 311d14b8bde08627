package carp

import (
	"net/netip"
	"sync"
	"sync/atomic"
)

// MemSegment is an in-memory Ethernet segment for tests: a channel-backed
// Transport per attached node. Multicast reaches every other port, unicast
// only the port owning the destination; a sender never hears itself
// (multicast loopback off). Receive queues are bounded; overflow is dropped.
type MemSegment struct {
	mu    sync.Mutex
	ports []*MemPort
}

// NewMemSegment returns an empty segment.
func NewMemSegment() *MemSegment { return &MemSegment{} }

// Attach adds a port whose own addresses are src4 and src6 (either may be
// the zero Addr).
func (s *MemSegment) Attach(src4, src6 netip.Addr) *MemPort {
	p := &MemPort{seg: s, src4: src4, src6: src6, ch: make(chan Packet, 64), closed: make(chan struct{})}
	s.mu.Lock()
	s.ports = append(s.ports, p)
	s.mu.Unlock()
	return p
}

// MemPort is one node's Transport on a MemSegment.
type MemPort struct {
	seg        *MemSegment
	src4, src6 netip.Addr
	ch         chan Packet
	closed     chan struct{}
	once       sync.Once
	cut        atomic.Bool
	mute       atomic.Bool
}

// SetCut pulls (true) or plugs back (false) the port's cable: while cut,
// nothing is sent or received.
func (p *MemPort) SetCut(cut bool) { p.cut.Store(cut) }

// SetMute makes the port send into nothing (true) while it still
// receives: a one-way fault, such as a peer that cannot hear this node.
func (p *MemPort) SetMute(mute bool) { p.mute.Store(mute) }

// Send implements Transport.
func (p *MemPort) Send(dst netip.Addr, payload []byte) error {
	if p.cut.Load() || p.mute.Load() {
		return nil // the frame leaves the NIC and goes nowhere
	}
	src := p.src4
	if !dst.Is4() {
		src = p.src6
	}
	p.seg.mu.Lock()
	defer p.seg.mu.Unlock()
	for _, q := range p.seg.ports {
		if q == p || q.cut.Load() {
			continue
		}
		if !dst.IsMulticast() && dst != q.src4 && dst != q.src6 {
			continue
		}
		pkt := Packet{Src: src, Dst: dst, TTL: TTL, Payload: append([]byte(nil), payload...)}
		select {
		case q.ch <- pkt:
		default:
		}
	}
	return nil
}

// Recv implements Transport.
func (p *MemPort) Recv(pkt *Packet, buf []byte) error {
	select {
	case in := <-p.ch:
		n := copy(buf, in.Payload)
		*pkt = in
		pkt.Payload = buf[:n]
		return nil
	case <-p.closed:
		return errClosed
	}
}

// Close implements Transport.
func (p *MemPort) Close() error {
	p.once.Do(func() { close(p.closed) })
	return nil
}
