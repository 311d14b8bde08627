package pfsync

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// RawTransport sends and receives pfsync messages as IP protocol 240
// datagrams with TTL 255: to the multicast group 224.0.0.240 on the sync
// interface (joined there, loopback off) or to a unicast syncpeer. It needs
// CAP_NET_RAW.
type RawTransport struct {
	c   *ipv4.PacketConn
	dst *net.IPAddr
}

// syncSocketBuffer is the sync socket's receive buffer: some 3,500
// full-size messages, 80,000 IPv4 states.
const syncSocketBuffer = 8 << 20

// ListenRaw opens the transport on syncdev (may be empty with a unicast
// peer); peer invalid means multicast.
func ListenRaw(syncdev string, peer netip.Addr) (*RawTransport, error) {
	if peer.IsValid() && !peer.Is4() {
		return nil, fmt.Errorf("pfsync: syncpeer %v: only IPv4 sync links are supported", peer)
	}
	if syncdev == "" && !peer.IsValid() {
		return nil, errors.New("pfsync: needs syncdev (multicast) or syncpeer (unicast)")
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			// A bulk update arrives faster than states are written into
			// the kernel at times (and the loop may be busy): room for
			// seconds of it. Beyond net.core.rmem_max where the process
			// may (CAP_NET_ADMIN), else as far as the cap allows.
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, syncSocketBuffer) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, syncSocketBuffer) // capped, never refused
			}
			if syncdev != "" {
				serr = unix.BindToDevice(int(fd), syncdev)
			}
		}); err != nil {
			return err
		}
		return serr
	}}
	c, err := lc.ListenPacket(context.Background(), fmt.Sprintf("ip4:%d", Protocol), "0.0.0.0")
	if err != nil {
		return nil, fmt.Errorf("pfsync: raw IP protocol %d socket: %w", Protocol, err)
	}
	p := ipv4.NewPacketConn(c)
	t := &RawTransport{c: p, dst: &net.IPAddr{IP: Group4.AsSlice()}}
	steps := []struct {
		what string
		fn   func() error
	}{
		{"ttl", func() error { return p.SetTTL(RequiredTTL) }},
		{"multicast ttl", func() error { return p.SetMulticastTTL(RequiredTTL) }},
		{"multicast loopback", func() error { return p.SetMulticastLoopback(false) }},
		{"control messages", func() error { return p.SetControlMessage(ipv4.FlagTTL, true) }},
	}
	if peer.IsValid() {
		t.dst = &net.IPAddr{IP: peer.AsSlice()}
	} else {
		ifi, err := net.InterfaceByName(syncdev)
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("pfsync: syncdev: %w", err)
		}
		steps = append(steps,
			struct {
				what string
				fn   func() error
			}{"multicast interface", func() error { return p.SetMulticastInterface(ifi) }},
			struct {
				what string
				fn   func() error
			}{"join 224.0.0.240", func() error { return p.JoinGroup(ifi, &net.IPAddr{IP: Group4.AsSlice()}) }})
	}
	for _, s := range steps {
		if err := s.fn(); err != nil {
			p.Close()
			return nil, fmt.Errorf("pfsync: %s on %s: %w", s.what, syncdev, err)
		}
	}
	return t, nil
}

// Send transmits msg.
func (t *RawTransport) Send(msg []byte) error {
	_, err := t.c.WriteTo(msg, nil, t.dst)
	return err
}

// Recv reads the next datagram's payload.
func (t *RawTransport) Recv(buf []byte) (int, int, error) {
	n, cm, _, err := t.c.ReadFrom(buf)
	if err != nil {
		return 0, 0, err
	}
	ttl := 0
	if cm != nil {
		ttl = cm.TTL
	}
	return n, ttl, nil
}

// Close closes the socket, unblocking Recv.
func (t *RawTransport) Close() error { return t.c.Close() }

// KernelTable is the Engine's Table over the kernel's conntrack, leaving
// out entries whose mark has a NoSyncMask bit.
type KernelTable struct {
	CT         *Conntrack
	NoSyncMask uint32
}

// Dump returns the syncable entries.
func (k *KernelTable) Dump() ([]State, error) {
	if k.NoSyncMask != 0 {
		return k.CT.Dump(&DumpFilter{Mark: 0, MarkMask: k.NoSyncMask})
	}
	return k.CT.Dump(nil)
}

// Inject creates or updates an entry.
func (k *KernelTable) Inject(s *State) error { return k.CT.Inject(s) }

// Delete removes an entry; a missing one is fine.
func (k *KernelTable) Delete(s *State) error {
	if err := k.CT.Delete(s); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}

// Watch subscribes to the kernel's conntrack events (NEW, UPDATE, DESTROY)
// of the calling thread's namespace and passes them to r until stop is
// closed. It reads and decodes them on its own goroutine, without a
// further hop. An overrun of the event socket (ENOBUFS: events were lost)
// makes r resynchronise; the socket stays subscribed, so no events are
// lost while it would be reopened. It returns nil when stop is closed, or
// the error when the subscription cannot be made or the socket fails.
//
// dial opens the event socket in the right namespace (nil: the calling
// thread's).
func Watch(r *Runner, stop <-chan struct{}, dial func() (*netlink.Conn, error)) error {
	if dial == nil {
		dial = func() (*netlink.Conn, error) { return netlink.Dial(unix.NETLINK_NETFILTER, nil) }
	}
	c, err := dial()
	if err != nil {
		return fmt.Errorf("pfsync: conntrack events: %w", err)
	}
	defer c.Close()
	for _, g := range []netfilter.NetlinkGroup{netfilter.GroupCTNew, netfilter.GroupCTUpdate, netfilter.GroupCTDestroy} {
		if err := c.JoinGroup(uint32(g)); err != nil {
			return fmt.Errorf("pfsync: conntrack events: join group %d: %w", g, err)
		}
	}
	if err := setEventBuffer(c, eventSocketBuffer); err != nil {
		return fmt.Errorf("pfsync: conntrack events: %w", err)
	}
	// Overruns must be reported (ENOBUFS): each is followed by a resync.
	if err := c.SetOption(netlink.NoENOBUFS, false); err != nil {
		return fmt.Errorf("pfsync: conntrack events: NETLINK_NO_ENOBUFS: %w", err)
	}
	done := make(chan struct{})
	defer close(done)
	go func() { // unblocks Receive at stop; ends with Watch
		select {
		case <-stop:
			c.Close()
		case <-done:
		}
	}()
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("pfsync: conntrack events: %w", err)
	}
	// One recvfrom per event (netlink.Conn.Receive peeks first to size
	// its buffer: two system calls each); an event is far smaller.
	buf := make([]byte, 64<<10)
	for {
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), buf, 0)
			return rerr != unix.EAGAIN && rerr != unix.EINTR
		})
		if err == nil {
			err = rerr
		}
		if err != nil {
			select {
			case <-stop:
				return nil
			default:
			}
			if errors.Is(err, unix.ENOBUFS) {
				r.Overflowed()
				continue
			}
			return fmt.Errorf("pfsync: conntrack events: %w", err)
		}
		for b := buf[:n]; len(b) >= unix.NLMSG_HDRLEN; {
			l := int(binary.NativeEndian.Uint32(b))
			if l < unix.NLMSG_HDRLEN || l > len(b) {
				break
			}
			m := netlink.Message{Header: netlink.Header{Length: uint32(l),
				Type:  netlink.HeaderType(binary.NativeEndian.Uint16(b[4:])),
				Flags: netlink.HeaderFlags(binary.NativeEndian.Uint16(b[6:]))}, Data: b[unix.NLMSG_HDRLEN:l]}
			b = b[min(len(b), (l+unix.NLMSG_ALIGNTO-1)&^(unix.NLMSG_ALIGNTO-1)):]
			watchEvent(r, m)
		}
	}
}

// watchEvent passes one conntrack event message to r.
func watchEvent(r *Runner, m netlink.Message) {
	var ev conntrack.Event
	if m.Header.Type < 0x100 || ev.Unmarshal(m) != nil || ev.Flow == nil {
		return // a netlink control message, or not an entry's event
	}
	var t EventType
	switch ev.Type {
	case conntrack.EventNew:
		t = EventNew
	case conntrack.EventUpdate:
		t = EventUpdate
	case conntrack.EventDestroy:
		t = EventDestroy
	default:
		return
	}
	if s, ok := fromFlow(ev.Flow); ok {
		r.Local(Event{Type: t, State: s})
	}
}

// eventSocketBuffer is the event socket's receive buffer: a burst of new
// connections while the Engine's loop is busy (a resync, a bulk update)
// waits there rather than being lost.
const eventSocketBuffer = 16 << 20

// setEventBuffer sets c's receive buffer to n bytes, beyond the
// net.core.rmem_max cap where the process may (SO_RCVBUFFORCE needs
// CAP_NET_ADMIN), else as far as the cap allows.
func setEventBuffer(c *netlink.Conn, n int) error {
	rc, err := c.SyscallConn()
	if err == nil {
		var serr error
		err = rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n) })
		if err == nil && serr == nil {
			return nil
		}
	}
	if err := c.SetReadBuffer(n); err != nil {
		return fmt.Errorf("receive buffer of %d bytes: %w", n, err)
	}
	return nil
}

// InjectBatch creates or updates several entries with one netlink write
// (Engine: the states of one received message).
func (k *KernelTable) InjectBatch(states []State, exists []bool) []error {
	return k.CT.InjectBatch(states, exists)
}
