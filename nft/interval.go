package nft

import (
	"net/netip"
	"slices"
	"sort"

	"github.com/google/nftables"
)

// Range is an inclusive address range [From, To] of one family.
type Range struct{ From, To netip.Addr }

// prefixRange returns p's first and last address.
func prefixRange(p netip.Prefix) Range {
	p = p.Masked()
	from := p.Addr()
	b := from.AsSlice()
	bits := p.Bits()
	for i := range b {
		lo := i * 8
		switch {
		case lo >= bits:
			b[i] = 0xff
		case lo+8 > bits:
			b[i] |= 0xff >> uint(bits-lo)
		}
	}
	to, _ := netip.AddrFromSlice(b)
	return Range{from, to}
}

// MergePrefixes returns the union of ps as sorted, disjoint, non-adjacent
// ranges (what an interval set can hold). Invalid prefixes are skipped.
// IPv4-mapped IPv6 prefixes are not unmapped: callers keep families apart.
func MergePrefixes(ps []netip.Prefix) []Range {
	rs := make([]Range, 0, len(ps))
	for _, p := range ps {
		if p.IsValid() {
			rs = append(rs, prefixRange(p))
		}
	}
	return MergeRanges(rs)
}

// MergeRanges sorts rs and merges overlapping and adjacent ranges. It
// reuses rs's backing array.
func MergeRanges(rs []Range) []Range {
	sort.Slice(rs, func(i, j int) bool { return rs[i].From.Less(rs[j].From) })
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 {
			last := &out[n-1]
			if last.To.Is4() == r.From.Is4() {
				next := last.To.Next()
				if !next.IsValid() || !next.Less(r.From) { // overlap or adjacent
					if last.To.Less(r.To) {
						last.To = r.To
					}
					continue
				}
			}
		}
		out = append(out, r)
	}
	return out
}

// SubtractRanges returns rs minus del; both must be merged (MergeRanges).
func SubtractRanges(rs, del []Range) []Range {
	var out []Range
	j := 0
	for _, r := range rs {
		cur := r
		alive := true
		for j < len(del) && del[j].To.Less(cur.From) {
			j++
		}
		for k := j; k < len(del) && alive && !cur.To.Less(del[k].From); k++ {
			d := del[k]
			if d.To.Less(cur.From) || d.From.Is4() != cur.From.Is4() {
				continue
			}
			if cur.From.Less(d.From) {
				out = append(out, Range{cur.From, d.From.Prev()})
			}
			if d.To.Less(cur.To) {
				cur.From = d.To.Next()
			} else {
				alive = false
			}
		}
		if alive {
			out = append(out, cur)
		}
	}
	return out
}

// RangesContain reports whether a is in rs (merged, sorted).
func RangesContain(rs []Range, a netip.Addr) bool {
	i := sort.Search(len(rs), func(i int) bool { return !rs[i].To.Less(a) })
	return i < len(rs) && !a.Less(rs[i].From) && rs[i].From.Is4() == a.Is4()
}

// RangePrefixes returns the fewest prefixes that cover exactly r.
func RangePrefixes(r Range) []netip.Prefix {
	var out []netip.Prefix
	from := r.From
	for {
		bits := from.BitLen()
		// Grow the prefix while it stays aligned and inside r.
		best := netip.PrefixFrom(from, bits)
		for l := bits - 1; l >= 0; l-- {
			p := netip.PrefixFrom(from, l)
			if p.Masked().Addr() != from || r.To.Less(prefixRange(p).To) {
				break
			}
			best = p
		}
		out = append(out, best)
		end := prefixRange(best).To
		if end == r.To {
			return out
		}
		from = end.Next()
	}
}

// rangeElements turns merged ranges into interval set elements: a start
// element per range and an interval-end element one past its end (omitted
// when the range runs to the family's last address).
func rangeElements(rs []Range) []nftables.SetElement {
	els := make([]nftables.SetElement, 0, 2*len(rs))
	for _, r := range rs {
		els = append(els, nftables.SetElement{Key: r.From.AsSlice()})
		if next := r.To.Next(); next.IsValid() {
			els = append(els, nftables.SetElement{Key: next.AsSlice(), IntervalEnd: true})
		}
	}
	return els
}

// elementRanges is the inverse of rangeElements for what the kernel dumps
// (in any order).
func elementRanges(els []nftables.SetElement) []Range {
	bs := make([]bound, 0, len(els))
	for _, e := range els {
		if a, ok := netip.AddrFromSlice(e.Key); ok {
			bs = append(bs, bound{a, e.IntervalEnd})
		}
	}
	return boundRanges(bs)
}

// bound is an interval set element: an address that starts a range, or
// one past the end of one.
type bound struct {
	a   netip.Addr
	end bool
}

func compareBounds(x, y bound) int {
	if c := x.a.Compare(y.a); c != 0 {
		return c
	}
	switch {
	case x.end == y.end:
		return 0
	case x.end:
		return -1 // an end sorts before a start at the same key
	}
	return 1
}

// boundRanges turns interval set elements (in any order; the kernel dumps
// them in descending order) into ranges. It reorders bs.
func boundRanges(bs []bound) []Range {
	if slices.IsSortedFunc(bs, func(x, y bound) int { return compareBounds(y, x) }) {
		slices.Reverse(bs)
	} else {
		slices.SortFunc(bs, compareBounds)
	}
	var out []Range
	for i := 0; i < len(bs); i++ {
		if bs[i].end {
			continue
		}
		from := bs[i].a
		to := lastAddr(from.Is4())
		if i+1 < len(bs) && bs[i+1].end {
			to = bs[i+1].a.Prev()
			i++
		}
		out = append(out, Range{from, to})
	}
	return out
}

func lastAddr(v4 bool) netip.Addr {
	if v4 {
		return netip.AddrFrom4([4]byte{255, 255, 255, 255})
	}
	var b [16]byte
	for i := range b {
		b[i] = 0xff
	}
	return netip.AddrFrom16(b)
}
