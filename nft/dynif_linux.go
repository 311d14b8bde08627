package nft

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"runtime"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"

	"github.com/pfcarp/pfcarp/netdb"
)

// WithHost makes Load and RefreshDynIf take interface addresses from h
// (for example the node's view, where carpN stands for its virtual
// addresses) instead of the Conn's namespace.
func WithHost(h netdb.Host) Option { return func(c *Conn) { c.host = h } }

// liveHost returns c's host, or one that answers from the interfaces of
// c's namespace as they are now.
func (c *Conn) liveHost() (netdb.Host, error) {
	if c.host != nil {
		return c.host, nil
	}
	if c.netnsFD < 0 {
		ifs, err := netdb.ReadInterfaces()
		if err != nil {
			return nil, err
		}
		return &netdb.Fixed{Interfaces: ifs}, nil
	}
	type result struct {
		ifs []netdb.Interface
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		origin, err := netns.Get()
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer origin.Close()
		if err := netns.Set(netns.NsHandle(c.netnsFD)); err != nil {
			ch <- result{err: err}
			return
		}
		ifs, err := netdb.ReadInterfaces()
		if err := netns.Set(origin); err != nil {
			// the thread stays locked and exits with the goroutine
			ch <- result{err: fmt.Errorf("nftables: returning from the namespace: %w", err)}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{ifs: ifs, err: err}
	}()
	r := <-ch
	if r.err != nil {
		return nil, r.err
	}
	return &netdb.Fixed{Interfaces: r.ifs}, nil
}

// withDynIf returns p with its dynamic-address sets filled from the
// interfaces' current addresses (p itself is not modified); p when it has
// none.
func (c *Conn) withDynIf(p *Program) (*Program, error) {
	has := false
	for _, s := range p.Sets {
		has = has || s.Kind == SetDynIf || s.Kind == SetDynIfPool
	}
	if !has {
		return p, nil
	}
	h, err := c.liveHost()
	if err != nil {
		return nil, err
	}
	q := *p
	q.Sets = make([]*Set, len(p.Sets))
	for i, s := range p.Sets {
		q.Sets[i] = s
		if s.Kind == SetDynIf || s.Kind == SetDynIfPool {
			n := *s
			fillDynIf(&n, h)
			q.Sets[i] = &n
		}
	}
	return &q, nil
}

// fillDynIf sets s's elements from h.
func fillDynIf(s *Set, h netdb.Host) {
	addrs, _ := h.InterfaceAddrs(s.DynIf.Ifname)
	ps := DynIfPrefixes(s.DynIf, addrs, s.V6)
	s.Prefixes, s.Pool = nil, nil
	if s.Kind == SetDynIf {
		s.Prefixes = ps
	} else if len(ps) > 0 {
		s.Pool = []netip.Addr{ps[0].Addr()}
	}
}

// RefreshDynIf sets every dynamic-address set of the loaded ruleset ("(if)"
// and friends, and translation targets "-> (if)") to the addresses its
// interface has now on h (nil: the Conn's host, see WithHost, or its
// namespace), in one transaction: a packet sees the old addresses or the
// new ones, never a mix. It reports how many sets it rewrote. The daemon
// calls it when an interface's addresses change.
func (c *Conn) RefreshDynIf(h netdb.Host) (int, error) {
	t, err := c.current()
	if err != nil {
		return 0, err
	}
	if t == nil {
		return 0, errNoTable
	}
	if h == nil {
		if h, err = c.liveHost(); err != nil {
			return 0, err
		}
	}
	nc, err := c.readConn()
	if err != nil {
		return 0, err
	}
	sets, err := nc.GetSets(t)
	if err != nil {
		return 0, fmt.Errorf("nftables: listing sets: %w", err)
	}
	b, err := newBatch()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, ks := range sets {
		d, v6, pool, ok := parseDynIfSetName(ks.Name)
		if !ok {
			continue
		}
		s := &Set{Name: ks.Name, Kind: SetDynIf, V6: v6, DynIf: d}
		if pool {
			s.Kind = SetDynIfPool
		}
		fillDynIf(s, h)
		var els []nftables.SetElement
		if pool {
			if len(s.Pool) > 0 {
				els = []nftables.SetElement{{Key: binary.NativeEndian.AppendUint32(nil, 0), Val: s.Pool[0].AsSlice()}}
			}
		} else {
			els = rangeElements(MergePrefixes(s.Prefixes))
		}
		b.FlushSet(ks)
		if err := addElems(b, ks, els, false); err != nil {
			return 0, err
		}
		n++
	}
	if n == 0 {
		return 0, nil
	}
	if err := c.send(b, nil); err != nil {
		return 0, fmt.Errorf("nftables: refreshing interface address sets: %w", unwrapKernel(err))
	}
	return n, nil
}
