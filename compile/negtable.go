package compile

import (
	"net/netip"
	"sort"
)

// Tables with negated entries: "table <t> { 10.0.0.0/8, !10.1.0.0/16 }".
//
// pf looks an address up in a table by longest prefix and the table
// matches when the most specific entry that holds the address is not
// negated (sys/net/pf_table.c, pfr_match_addr: match = ke && !ke->not).
// An nftables interval set has no exceptions, so the entries are
// flattened here into the exact set of addresses that match: the entries
// in order of prefix length, less specific first, a positive one adding
// its range and a negated one taking its range out, so that the most
// specific entry decides; then the ranges as the fewest prefixes. The
// kernel's set then holds those prefixes (pfctl -t T -T show lists them,
// not the negated entries).

// addrRange is the addresses lo through hi of one family.
type addrRange struct{ lo, hi netip.Addr }

// lastAddr is the last address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// tableEntry is one entry of a table: a prefix and whether it is negated.
type tableEntry struct {
	p   netip.Prefix
	neg bool
}

// flattenTable returns the prefixes whose union is exactly the addresses
// that match a table of these entries (one family), as pf matches them.
func flattenTable(entries []tableEntry) []netip.Prefix {
	es := append([]tableEntry(nil), entries...)
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].p.Bits() != es[j].p.Bits() {
			return es[i].p.Bits() < es[j].p.Bits()
		}
		return !es[i].neg && es[j].neg
	})
	var rs []addrRange // sorted, disjoint
	for _, e := range es {
		r := addrRange{e.p.Masked().Addr(), lastAddr(e.p)}
		rs = subtractRange(rs, r)
		if !e.neg {
			rs = append(rs, r)
			sort.Slice(rs, func(i, j int) bool { return rs[i].lo.Less(rs[j].lo) })
		}
	}
	var out []netip.Prefix
	for _, r := range rs {
		out = append(out, rangePrefixes(r)...)
	}
	return out
}

// subtractRange returns rs without the addresses of x.
func subtractRange(rs []addrRange, x addrRange) []addrRange {
	var out []addrRange
	for _, r := range rs {
		if r.hi.Less(x.lo) || x.hi.Less(r.lo) {
			out = append(out, r)
			continue
		}
		if r.lo.Less(x.lo) {
			out = append(out, addrRange{r.lo, x.lo.Prev()})
		}
		if x.hi.Less(r.hi) {
			out = append(out, addrRange{x.hi.Next(), r.hi})
		}
	}
	return out
}

// rangePrefixes returns the fewest prefixes that cover exactly r.
func rangePrefixes(r addrRange) []netip.Prefix {
	var out []netip.Prefix
	lo := r.lo
	for {
		bits := lo.BitLen()
		// the largest block that starts at lo and ends by r.hi
		for b := 0; b <= lo.BitLen(); b++ {
			p := netip.PrefixFrom(lo, b)
			if p.Masked().Addr() == lo && !r.hi.Less(lastAddr(p)) {
				bits = b
				break
			}
		}
		p := netip.PrefixFrom(lo, bits)
		out = append(out, p)
		last := lastAddr(p)
		if last == r.hi {
			return out
		}
		lo = last.Next()
	}
}
