package nft

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// StickyElem is one element of a sticky-address map (SetSticky): traffic
// from Source goes to Backend for Expires more (the kernel's remaining
// lifetime of the element).
type StickyElem struct {
	Map     string
	Source  netip.Addr
	Backend netip.Addr
	Expires time.Duration
}

// isSticky reports whether s has the shape of a SetSticky map: a dynamic
// map with timeouts from an address to an address of the same family. The
// kernel's set flags say so; the names are compile's business.
func isSticky(s *nftables.Set) bool {
	if !s.IsMap || !s.Dynamic || !s.HasTimeout || s.Constant || s.Interval {
		return false
	}
	k, d := s.KeyType, s.DataType
	return (k.Name == nftables.TypeIPAddr.Name && d.Name == nftables.TypeIPAddr.Name) ||
		(k.Name == nftables.TypeIP6Addr.Name && d.Name == nftables.TypeIP6Addr.Name)
}

func addrOf(b []byte) (netip.Addr, bool) {
	switch len(b) {
	case 4, 16:
		a, _ := netip.AddrFromSlice(b)
		return a, true
	}
	return netip.Addr{}, false
}

// StickyElems returns the elements of every sticky-address map in the
// loaded ruleset (none, and no error, when no ruleset is loaded).
func (c *Conn) StickyElems() ([]StickyElem, error) {
	t, err := c.current()
	if err != nil || t == nil {
		return nil, err
	}
	nc, err := c.readConn()
	if err != nil {
		return nil, err
	}
	sets, err := nc.GetSets(t)
	if err != nil {
		return nil, fmt.Errorf("nftables: listing sets: %w", err)
	}
	var out []StickyElem
	for _, s := range sets {
		if !isSticky(s) {
			continue
		}
		els, err := nc.GetSetElements(s)
		if err != nil {
			return nil, fmt.Errorf("nftables: reading map %s: %w", s.Name, err)
		}
		for _, e := range els {
			src, ok1 := addrOf(e.Key)
			dst, ok2 := addrOf(e.Val)
			if !ok1 || !ok2 || src.Is4() != dst.Is4() {
				continue
			}
			out = append(out, StickyElem{Map: s.Name, Source: src, Backend: dst, Expires: e.Expires})
		}
	}
	return out, nil
}

// ErrNotSticky reports a map that is missing or is not a sticky-address
// map.
var ErrNotSticky = errors.New("no such sticky-address map")

// stickyMap returns the named sticky map of the loaded ruleset.
func (c *Conn) stickyMap(nc *nftables.Conn, name string, v6 bool) (*nftables.Set, error) {
	t, err := c.current()
	if err != nil {
		return nil, err
	}
	if t == nil {
		return nil, errNoTable
	}
	s, err := nc.GetSetByName(t, name)
	if err != nil || !isSticky(s) || (s.KeyType.Name == nftables.TypeIP6Addr.Name) != v6 {
		return nil, fmt.Errorf("map %s: %w", name, ErrNotSticky)
	}
	s.Table = t
	return s, nil
}

// SetStickyElem binds e.Source to e.Backend in sticky map e.Map for
// e.Expires (at least a millisecond), replacing a binding the source
// already has (its backend and its lifetime), in one transaction. Only a
// sticky-address map can be written: anything else is ErrNotSticky.
func (c *Conn) SetStickyElem(e StickyElem) error {
	if !e.Source.IsValid() || e.Source.Is4() != e.Backend.Is4() {
		return fmt.Errorf("sticky %s: invalid binding %v -> %v", e.Map, e.Source, e.Backend)
	}
	nc, err := c.readConn()
	if err != nil {
		return err
	}
	s, err := c.stickyMap(nc, e.Map, e.Source.Is6())
	if err != nil {
		return err
	}
	to := max(e.Expires, time.Millisecond)
	el := []nftables.SetElement{{Key: e.Source.AsSlice(), Val: e.Backend.AsSlice(), Timeout: to}}
	// Delete and add in one transaction replaces a binding whatever its
	// backend (an add alone fails when the source is bound elsewhere, and
	// would not renew the lifetime); when the source has no binding the
	// delete fails the transaction and a plain add follows. The packet path
	// may bind the source in between: try a few times.
	for try := 0; ; try++ {
		if err := nc.SetDeleteElements(s, []nftables.SetElement{{Key: e.Source.AsSlice()}}); err != nil {
			return err
		}
		if err := nc.SetAddElements(s, el); err != nil {
			return err
		}
		err = nc.Flush()
		if err == nil {
			return nil
		}
		if errors.Is(err, unix.ENOENT) {
			if err := nc.SetAddElements(s, el); err != nil {
				return err
			}
			if err = nc.Flush(); err == nil {
				return nil
			}
		}
		if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EEXIST) || try == 2 {
			return fmt.Errorf("nftables: map %s: binding %s: %w", e.Map, e.Source, err)
		}
	}
}

// DeleteStickyElem removes e.Source's binding from sticky map e.Map; a
// missing binding is not an error.
func (c *Conn) DeleteStickyElem(e StickyElem) error {
	if !e.Source.IsValid() {
		return fmt.Errorf("sticky %s: invalid source", e.Map)
	}
	nc, err := c.readConn()
	if err != nil {
		return err
	}
	s, err := c.stickyMap(nc, e.Map, e.Source.Is6())
	if err != nil {
		return err
	}
	if err := nc.SetDeleteElements(s, []nftables.SetElement{{Key: e.Source.AsSlice()}}); err != nil {
		return err
	}
	if err := nc.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("nftables: map %s: unbinding %s: %w", e.Map, e.Source, err)
	}
	return nil
}
