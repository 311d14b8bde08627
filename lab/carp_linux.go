package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/pfcarp/pfcarp/carp"
	"github.com/pfcarp/pfcarp/daemon"
)

// InNode runs fn on an OS thread inside node's network namespace. Sockets
// fn opens stay in that namespace after it returns; fn must not start
// goroutines that expect to be in the namespace.
func (l *Lab) InNode(node string, fn func() error) error {
	if _, err := l.node(node); err != nil {
		return err
	}
	if err := inNS(l.nsPath(node), fn); err != nil {
		return fmt.Errorf("node %s: %w", node, err)
	}
	return nil
}

// StopDaemon stops node's daemon cleanly with SIGTERM (a pfcarp master bows
// out, so its peer takes over at once) and waits up to timeout for it to
// exit; then it kills it and says so.
func (l *Lab) StopDaemon(node string, timeout time.Duration) error {
	if _, err := l.node(node); err != nil {
		return err
	}
	l.mu.Lock()
	ref := l.st.Nodes[node].DaemonProc
	l.mu.Unlock()
	if !ref.alive() {
		return fmt.Errorf("node %s: daemon is not running", node)
	}
	if err := syscall.Kill(ref.PID, syscall.SIGTERM); err != nil && err != syscall.ESRCH {
		return fmt.Errorf("node %s: SIGTERM %d: %w", node, ref.PID, err)
	}
	var errStop error
	deadline := time.Now().Add(timeout)
	for ref.alive() {
		if time.Now().After(deadline) {
			errStop = fmt.Errorf("node %s: daemon pid %d ignored SIGTERM for %v; killed", node, ref.PID, timeout)
			if kerr := ref.kill(); kerr != nil {
				errStop = errors.Join(errStop, kerr)
			}
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	l.reap(ref.PID)
	l.mu.Lock()
	l.st.Nodes[node].DaemonProc = procRef{}
	err := l.saveLocked()
	l.mu.Unlock()
	return errors.Join(errStop, err)
}

// DaemonStatus asks node's pfcarp daemon for its status over its control
// socket (a Unix socket in the lab directory, reachable from the host).
func (l *Lab) DaemonStatus(ctx context.Context, node string) (daemon.Status, error) {
	var st daemon.Status
	if _, err := l.node(node); err != nil {
		return st, err
	}
	err := daemon.NewClient(l.SocketPath(node)).Get(ctx, "/v1/status", &st)
	return st, err
}

// CARPStates returns the state of each CARP group of a daemon status, by
// group name (carpN, or "IF vhid N" for a group on its parent).
func CARPStates(st daemon.Status) map[string]string {
	m := map[string]string{}
	for _, g := range st.CARP {
		name := g.Name
		if name == "" {
			name = fmt.Sprintf("%s vhid %d", g.Parent, g.VHID)
		}
		m[name] = g.State
	}
	return m
}

// WaitCARP polls the daemons of the nodes in want until every CARP group
// of each is in the wanted state ("MASTER", "BACKUP", "INIT"), or ctx ends.
// It returns the last statuses it read, by node.
func (l *Lab) WaitCARP(ctx context.Context, want map[string]string) (map[string]daemon.Status, error) {
	last := map[string]daemon.Status{}
	var lastErr error
	for {
		ok := true
		for node, state := range want {
			st, err := l.DaemonStatus(ctx, node)
			if err != nil {
				ok, lastErr = false, err
				continue
			}
			last[node] = st
			if len(st.CARP) == 0 {
				ok, lastErr = false, fmt.Errorf("node %s: daemon runs no CARP group", node)
			}
			for name, s := range CARPStates(st) {
				if s != state {
					ok, lastErr = false, fmt.Errorf("node %s: %s is %s, want %s", node, name, s, state)
				}
			}
		}
		if ok {
			return last, nil
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("waiting for CARP roles: %w (last: %v)", ctx.Err(), lastErr)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Advert is one CARP advertisement seen on a segment.
type Advert struct {
	At     time.Time // when the watcher read it
	Src    netip.Addr
	TTL    int
	Header carp.Header // valid iff Err is nil
	Err    error       // why it does not decode (carp.Reject)
}

// AdvertWatch records the CARP advertisements (IP protocol 112, IPv4)
// reaching one interface of a node: a raw socket in the node's namespace
// that has joined 224.0.0.18. It owns one reader goroutine; Close stops it.
// Its methods are safe for concurrent use.
type AdvertWatch struct {
	c    *ipv4.RawConn
	stop chan struct{}
	wg   sync.WaitGroup

	mu  sync.Mutex // guards ads
	ads []Advert
}

// maxAdverts bounds what a watch keeps (the oldest are dropped).
const maxAdverts = 4096

// WatchAdverts starts recording the advertisements that reach node's iface.
func (l *Lab) WatchAdverts(node, iface string) (*AdvertWatch, error) {
	var rc *ipv4.RawConn
	err := l.InNode(node, func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		pc, err := net.ListenPacket(fmt.Sprintf("ip4:%d", carp.Proto), "0.0.0.0")
		if err != nil {
			return fmt.Errorf("raw socket for IP protocol %d: %w", carp.Proto, err)
		}
		if rc, err = ipv4.NewRawConn(pc); err != nil {
			pc.Close()
			return err
		}
		if err := rc.JoinGroup(ifi, &net.IPAddr{IP: net.IP(carp.Group4.AsSlice())}); err != nil {
			rc.Close()
			return fmt.Errorf("join %s on %s: %w", carp.Group4, iface, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	w := &AdvertWatch{c: rc, stop: make(chan struct{})}
	w.wg.Add(1)
	go w.read()
	return w, nil
}

func (w *AdvertWatch) read() {
	defer w.wg.Done()
	buf := make([]byte, 1500)
	for {
		h, p, _, err := w.c.ReadFrom(buf)
		select {
		case <-w.stop:
			return
		default:
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		a := Advert{At: time.Now(), TTL: h.TTL}
		a.Src, _ = netip.AddrFromSlice(h.Src.To4())
		a.Err = a.Header.Decode(p)
		w.mu.Lock()
		if len(w.ads) >= maxAdverts {
			w.ads = w.ads[1:]
		}
		w.ads = append(w.ads, a)
		w.mu.Unlock()
	}
}

// Adverts returns a copy of what was seen so far, oldest first.
func (w *AdvertWatch) Adverts() []Advert {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Advert(nil), w.ads...)
}

// Last returns the latest advertisement from src for vhid received before
// (not at or after) before; ok is false when there is none.
func (w *AdvertWatch) Last(src netip.Addr, vhid uint8, before time.Time) (a Advert, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := len(w.ads) - 1; i >= 0; i-- {
		x := w.ads[i]
		if x.Err == nil && x.Src == src && x.Header.VHID == vhid && x.At.Before(before) {
			return x, true
		}
	}
	return Advert{}, false
}

// Close stops the watch and waits for its goroutine.
func (w *AdvertWatch) Close() error {
	close(w.stop)
	err := w.c.Close()
	w.wg.Wait()
	return err
}

// SendIPv4 sends payload as one IPv4 packet of protocol proto from node's
// iface to dst with the given TTL: a raw socket in the node's namespace,
// for crafted packets such as forged CARP advertisements. dst may be
// multicast (sent out of iface) or unicast.
func (l *Lab) SendIPv4(node, iface string, proto, ttl int, dst netip.Addr, payload []byte) error {
	if !dst.Is4() {
		return fmt.Errorf("send: %s is not IPv4", dst)
	}
	if ttl < 1 || ttl > 255 {
		return fmt.Errorf("send: TTL %d out of 1..255", ttl)
	}
	return l.InNode(node, func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		c, err := net.ListenPacket(fmt.Sprintf("ip4:%d", proto), "0.0.0.0")
		if err != nil {
			return fmt.Errorf("raw socket for IP protocol %d: %w", proto, err)
		}
		defer c.Close()
		p := ipv4.NewPacketConn(c)
		if dst.IsMulticast() {
			if err := p.SetMulticastInterface(ifi); err != nil {
				return err
			}
			if err := p.SetMulticastTTL(ttl); err != nil {
				return err
			}
			if err := p.SetMulticastLoopback(false); err != nil {
				return err
			}
		} else if err := p.SetTTL(ttl); err != nil {
			return err
		}
		_, err = p.WriteTo(payload, nil, &net.IPAddr{IP: net.IP(dst.AsSlice())})
		return err
	})
}
