package nft

import (
	"net/netip"
	"sort"

	"github.com/google/nftables"
)

// OverloadSetName is the set that holds the addresses rules add to pf
// table name from the packet path (overload <name>): the kernel cannot add
// to an interval set from a rule, so such a table is its interval set
// (TableSetName) plus this hash set of single addresses. Table reads and
// edits (TableRanges, TableTest, ChangeTable) cover both.
func OverloadSetName(name string, v6 bool) string {
	if v6 {
		return "ovl6_" + name
	}
	return "ovl4_" + name
}

// overloadSets returns the overload sets of table name (nil entries when
// the table has none).
func (c *Conn) overloadSets(nc *nftables.Conn, name string) ([2]*nftables.Set, error) {
	var out [2]*nftables.Set
	t, err := c.current()
	if err != nil || t == nil {
		return out, err
	}
	for i, v6 := range []bool{false, true} {
		if s, err := nc.GetSetByName(t, OverloadSetName(name, v6)); err == nil {
			out[i] = s
		}
	}
	return out, nil
}

// overloadAddrs dumps the overload sets of table name.
func (c *Conn) overloadAddrs(nc *nftables.Conn, name string) ([2]*nftables.Set, [2][]netip.Addr, error) {
	var addrs [2][]netip.Addr
	sets, err := c.overloadSets(nc, name)
	if err != nil {
		return sets, addrs, err
	}
	for i, s := range sets {
		if s == nil {
			continue
		}
		if err := c.dumpElems(s.Name, 0, func() { addrs[i] = addrs[i][:0] }, func(e elem) {
			if a, ok := netip.AddrFromSlice(e.key); ok {
				addrs[i] = append(addrs[i], a)
			}
		}); err != nil {
			return sets, addrs, err
		}
		sort.Slice(addrs[i], func(x, y int) bool { return addrs[i][x].Less(addrs[i][y]) })
	}
	return sets, addrs, nil
}

// withOverloadRanges adds the table's overloaded addresses to rs (IPv4
// first, sorted).
func (c *Conn) withOverloadRanges(nc *nftables.Conn, name string, rs []Range) ([]Range, error) {
	_, addrs, err := c.overloadAddrs(nc, name)
	if err != nil || len(addrs[0])+len(addrs[1]) == 0 {
		return rs, err
	}
	out := append([]Range(nil), rs...)
	for _, as := range addrs {
		for _, a := range as {
			if !RangesContain(rs, a) {
				out = append(out, Range{a, a})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].From.Is4() != out[j].From.Is4() {
			return out[i].From.Is4()
		}
		return out[i].From.Less(out[j].From)
	})
	return out, nil
}

// overloadChange applies a table edit to the table's overload sets: flush
// and replace empty them; delete removes the overloaded addresses inside
// the deleted prefixes. It returns how many addresses it removed.
func (c *Conn) overloadChange(nc *nftables.Conn, name string, op TableOp, ps []netip.Prefix) (int, error) {
	if op == TableAdd {
		return 0, nil
	}
	sets, addrs, err := c.overloadAddrs(nc, name)
	if err != nil {
		return 0, err
	}
	b, err := newBatch()
	if err != nil {
		return 0, err
	}
	n := 0
	for i, s := range sets {
		if s == nil {
			continue
		}
		var del []nftables.SetElement
		for _, a := range addrs[i] {
			hit := op != TableDelete
			for _, p := range ps {
				hit = hit || p.Contains(a)
			}
			if hit {
				del = append(del, nftables.SetElement{Key: a.AsSlice()})
			}
		}
		if len(del) == 0 {
			continue
		}
		n += len(del)
		if err := addElems(b, s, del, true); err != nil {
			return 0, err
		}
	}
	if n == 0 {
		return 0, nil
	}
	if err := c.send(b, nil); err != nil {
		return 0, err
	}
	return n, nil
}
