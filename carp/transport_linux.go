package carp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// RawTransport is the Linux Transport: raw IP protocol 112 sockets bound to
// the parent interface, one for IPv4 and/or one for IPv6. It sends with TTL
// / hop limit 255 (multicast and unicast), joins 224.0.0.18 / ff02::12 on
// the parent, turns multicast loopback off so a node does not hear itself,
// and reports the received TTL / hop limit so the Node can require 255. It
// needs CAP_NET_RAW.
type RawTransport struct {
	ifi  *net.Interface
	c4   *ipv4.PacketConn
	c6   *ipv6.PacketConn
	rx   chan rawRx
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

type rawRx struct {
	pkt Packet
	n   int
	buf [64]byte
	err error
}

// ListenRaw opens the sockets on the interface named ifname, for IPv4
// and/or IPv6 advertisements.
func ListenRaw(ifname string, v4, v6 bool) (*RawTransport, error) {
	if !v4 && !v6 {
		return nil, errors.New("carp: ListenRaw needs IPv4, IPv6 or both")
	}
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("carp: parent interface: %w", err)
	}
	t := &RawTransport{ifi: ifi, rx: make(chan rawRx, rxQueueLen), stop: make(chan struct{})}
	if v4 {
		if t.c4, err = listen4(ifi); err != nil {
			t.Close()
			return nil, err
		}
	}
	if v6 {
		if t.c6, err = listen6(ifi); err != nil {
			t.Close()
			return nil, err
		}
	}
	if t.c4 != nil {
		t.wg.Add(1)
		go t.read4()
	}
	if t.c6 != nil {
		t.wg.Add(1)
		go t.read6()
	}
	return t, nil
}

func bindTo(ifname string) net.ListenConfig {
	return net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) { serr = unix.BindToDevice(int(fd), ifname) }); err != nil {
			return err
		}
		return serr
	}}
}

func listen4(ifi *net.Interface) (*ipv4.PacketConn, error) {
	lc := bindTo(ifi.Name)
	c, err := lc.ListenPacket(context.Background(), "ip4:112", "0.0.0.0")
	if err != nil {
		return nil, fmt.Errorf("carp: raw IPv4 socket on %s: %w", ifi.Name, err)
	}
	p := ipv4.NewPacketConn(c)
	steps := []setupStep{
		{"ttl", p.SetTTL(TTL)},
		{"multicast ttl", p.SetMulticastTTL(TTL)},
		{"multicast interface", p.SetMulticastInterface(ifi)},
		{"multicast loopback", p.SetMulticastLoopback(false)},
		{"control messages", p.SetControlMessage(ipv4.FlagTTL|ipv4.FlagDst|ipv4.FlagInterface, true)},
		{"join 224.0.0.18", p.JoinGroup(ifi, &net.IPAddr{IP: Group4.AsSlice()})},
	}
	if s := firstFailure(steps); s != nil {
		p.Close()
		return nil, fmt.Errorf("carp: IPv4 %s on %s: %w", s.what, ifi.Name, s.err)
	}
	return p, nil
}

func listen6(ifi *net.Interface) (*ipv6.PacketConn, error) {
	lc := bindTo(ifi.Name)
	c, err := lc.ListenPacket(context.Background(), "ip6:112", "::")
	if err != nil {
		return nil, fmt.Errorf("carp: raw IPv6 socket on %s: %w", ifi.Name, err)
	}
	p := ipv6.NewPacketConn(c)
	steps := []setupStep{
		{"hop limit", p.SetHopLimit(TTL)},
		{"multicast hop limit", p.SetMulticastHopLimit(TTL)},
		{"multicast interface", p.SetMulticastInterface(ifi)},
		{"multicast loopback", p.SetMulticastLoopback(false)},
		{"control messages", p.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagDst|ipv6.FlagInterface, true)},
		{"join ff02::12", p.JoinGroup(ifi, &net.IPAddr{IP: Group6.AsSlice()})},
	}
	if s := firstFailure(steps); s != nil {
		p.Close()
		return nil, fmt.Errorf("carp: IPv6 %s on %s: %w", s.what, ifi.Name, s.err)
	}
	return p, nil
}

func (t *RawTransport) read4() {
	defer t.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, cm, src, err := t.c4.ReadFrom(buf)
		var it rawRx
		if err != nil {
			it.err = err
		} else {
			it.n = copy(it.buf[:], buf[:n])
			if a, ok := src.(*net.IPAddr); ok {
				it.pkt.Src, _ = netip.AddrFromSlice(a.IP.To4())
			}
			if cm != nil {
				it.pkt.TTL = uint8(cm.TTL)
				it.pkt.Dst, _ = netip.AddrFromSlice(cm.Dst.To4())
			}
		}
		if !t.deliver(it) {
			return
		}
	}
}

func (t *RawTransport) read6() {
	defer t.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, cm, src, err := t.c6.ReadFrom(buf)
		var it rawRx
		if err != nil {
			it.err = err
		} else {
			it.n = copy(it.buf[:], buf[:n])
			if a, ok := src.(*net.IPAddr); ok {
				it.pkt.Src, _ = netip.AddrFromSlice(a.IP)
			}
			if cm != nil {
				it.pkt.TTL = uint8(cm.HopLimit)
				it.pkt.Dst, _ = netip.AddrFromSlice(cm.Dst)
			}
		}
		if !t.deliver(it) {
			return
		}
	}
}

// deliver queues it; it reports false once the transport is closed. Read
// errors after Close end the reader.
func (t *RawTransport) deliver(it rawRx) bool {
	if it.err != nil {
		select {
		case <-t.stop:
			return false
		default:
		}
		if errors.Is(it.err, net.ErrClosed) {
			return false
		}
	}
	select {
	case t.rx <- it:
	case <-t.stop:
		return false
	}
	return true
}

// Send implements Transport.
func (t *RawTransport) Send(dst netip.Addr, payload []byte) error {
	if dst.Is4() {
		if t.c4 == nil {
			return errors.New("carp: no IPv4 socket on " + t.ifi.Name)
		}
		_, err := t.c4.WriteTo(payload, nil, &net.IPAddr{IP: dst.AsSlice()})
		return err
	}
	if t.c6 == nil {
		return errors.New("carp: no IPv6 socket on " + t.ifi.Name)
	}
	a := &net.IPAddr{IP: dst.AsSlice()}
	if dst.IsLinkLocalUnicast() || dst.IsLinkLocalMulticast() {
		a.Zone = t.ifi.Name
	}
	_, err := t.c6.WriteTo(payload, nil, a)
	return err
}

// Recv implements Transport.
func (t *RawTransport) Recv(p *Packet, buf []byte) error {
	select {
	case it := <-t.rx:
		if it.err != nil {
			return it.err
		}
		*p = it.pkt
		p.Payload = buf[:copy(buf, it.buf[:it.n])]
		return nil
	case <-t.stop:
		return errClosed
	}
}

// Close implements Transport.
func (t *RawTransport) Close() error {
	var err error
	t.once.Do(func() {
		close(t.stop)
		if t.c4 != nil {
			err = errors.Join(err, t.c4.Close())
		}
		if t.c6 != nil {
			err = errors.Join(err, t.c6.Close())
		}
		t.wg.Wait()
	})
	return err
}

// setupStep is one socket option set while opening a transport, with its
// result.
type setupStep struct {
	what string
	err  error
}

// firstFailure returns the first step that failed, or nil.
func firstFailure(steps []setupStep) *setupStep {
	for i := range steps {
		if steps[i].err != nil {
			return &steps[i]
		}
	}
	return nil
}
