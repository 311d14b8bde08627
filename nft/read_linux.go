package nft

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// Count is a packet and byte counter.
type Count struct{ Packets, Bytes uint64 }

// Stats are the counters of one pf rule, summed over the kernel rules that
// implement it.
type Stats struct {
	// Evaluations counts packets that reached the pf rule's first kernel
	// rule (Part 0) in each chain: packets not decided by an earlier rule
	// of the compiled order. pf counts evaluations in its own (file)
	// order, so the numbers differ where rules were reordered (non-quick
	// rules are compiled in reverse).
	Evaluations uint64
	// Matched counts packets the rule decided, in total and per chain.
	Matched Count
	ByChain map[string]Count
}

// Ruleset is what Read finds in the kernel.
type Ruleset struct {
	Enabled bool
	Records []Record
	// Stats by pf rule (kind and number; Part is always 0).
	Stats map[Ref]*Stats
	// Chains are the names of the table's chains in kernel order.
	Chains []string
}

// Read returns the loaded ruleset's records and counters. It returns an
// error wrapping errNoTable (see IsNotLoaded) when no ruleset is loaded.
func (c *Conn) Read() (*Ruleset, error) {
	t, err := c.current()
	if err != nil {
		return nil, err
	}
	if t == nil {
		return nil, errNoTable
	}
	nc, err := c.readConn()
	if err != nil {
		return nil, err
	}
	chains, err := nc.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("nftables: listing chains: %w", err)
	}
	rs := &Ruleset{Enabled: t.Flags&1 == 0, Stats: map[Ref]*Stats{}}
	found := false
	for _, ch := range chains {
		if ch.Table.Name != c.table {
			continue
		}
		isMeta, mine := c.ownsChain(ch.Name) // anchor_linux.go
		if !mine {
			continue
		}
		found = true
		rs.Chains = append(rs.Chains, ch.Name)
		rules, err := nc.GetRules(t, ch)
		if err != nil {
			return nil, fmt.Errorf("nftables: listing chain %s: %w", ch.Name, err)
		}
		if isMeta {
			var comments []string
			for _, r := range rules {
				s, _ := dataComment(r.UserData)
				if s != ownerMain {
					comments = append(comments, s)
				}
			}
			if rs.Records, err = decodeRecords(comments); err != nil {
				return nil, err
			}
			continue
		}
		for _, r := range rules {
			s, ok := dataComment(r.UserData)
			if !ok {
				continue
			}
			ref, ok := ParseRef(s)
			if !ok {
				continue
			}
			part := ref.Part
			ref.Part = 0
			st := rs.Stats[ref]
			if st == nil {
				st = &Stats{ByChain: map[string]Count{}}
				rs.Stats[ref] = st
			}
			var counters []*expr.Counter
			for _, e := range r.Exprs {
				if ctr, ok := e.(*expr.Counter); ok {
					counters = append(counters, ctr)
				}
			}
			if len(counters) == 0 {
				continue
			}
			if part == 0 {
				st.Evaluations += counters[0].Packets
			}
			if len(counters) >= 2 {
				m := counters[len(counters)-1]
				st.Matched.Packets += m.Packets
				st.Matched.Bytes += m.Bytes
				bc := st.ByChain[ch.Name]
				bc.Packets += m.Packets
				bc.Bytes += m.Bytes
				st.ByChain[ch.Name] = bc
			}
		}
	}
	if !found && c.anchor != "" {
		return nil, fmt.Errorf("anchor %q does not exist", c.anchor)
	}
	return rs, nil
}

// IsNotLoaded reports whether err says no ruleset is loaded.
func IsNotLoaded(err error) bool { return err == errNoTable }

// FlushKinds deletes the pf rules of the given kinds (pfctl -F rules, -F
// nat) with their records, in one transaction. Structural rules (state
// shortcut, set skip, jumps) stay, so the table keeps passing by default.
func (c *Conn) FlushKinds(kinds ...Kind) (int, error) {
	t, err := c.current()
	if err != nil {
		return 0, err
	}
	if t == nil {
		return 0, errNoTable
	}
	want := map[Kind]bool{}
	for _, k := range kinds {
		want[k] = true
	}
	nc, err := c.readConn()
	if err != nil {
		return 0, err
	}
	chains, err := nc.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return 0, err
	}
	del, err := newBatch()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, ch := range chains {
		if ch.Table.Name != c.table {
			continue
		}
		isMeta, mine := c.ownsChain(ch.Name)
		if !mine {
			continue
		}
		rules, err := nc.GetRules(t, ch)
		if err != nil {
			return 0, err
		}
		inRecord := false
		for _, r := range rules {
			s, _ := dataComment(r.UserData)
			drop := false
			if isMeta {
				if strings.HasPrefix(s, "M") {
					k, _, _ := strings.Cut(s[1:], " ")
					kind, _ := ParseKind(k)
					inRecord = want[kind]
					if inRecord {
						n++
					}
				}
				drop = inRecord
			} else if ref, ok := ParseRef(s); ok && want[ref.Kind] {
				drop = true
			}
			if drop {
				if err := del.DelRule(r); err != nil {
					return 0, err
				}
			}
		}
	}
	if err := c.send(del, nil); err != nil {
		return 0, fmt.Errorf("nftables: flushing rules: %w", err)
	}
	return n, nil
}

// Delete removes the owned table (the whole ruleset, its tables and
// counters). A missing table is not an error.
func (c *Conn) Delete() error {
	t, err := c.current()
	if err != nil || t == nil {
		return err
	}
	b, err := newBatch()
	if err != nil {
		return err
	}
	b.DelTable(t)
	if err := c.send(b, nil); err != nil {
		return err
	}
	return c.removePolicyRoutes() // policy_linux.go
}

// TableSetName is the name of the set that holds the IPv4 (v6 false) or
// IPv6 addresses of pf table name. pf table names are at most 31 bytes of
// letters, digits, '_' and '-', which nftables accepts in set names.
func TableSetName(name string, v6 bool) string {
	if v6 {
		return "tbl6_" + name
	}
	return "tbl4_" + name
}

// tableOfSet is the inverse of TableSetName.
func tableOfSet(set string) (name string, v6, ok bool) {
	if n, ok := strings.CutPrefix(set, "tbl4_"); ok {
		return n, false, true
	}
	if n, ok := strings.CutPrefix(set, "tbl6_"); ok {
		return n, true, true
	}
	return "", false, false
}

// Tables returns the pf tables in the loaded ruleset, sorted by name.
func (c *Conn) Tables() ([]string, error) {
	t, err := c.current()
	if err != nil {
		return nil, err
	}
	if t == nil {
		return nil, errNoTable
	}
	nc, err := c.readConn()
	if err != nil {
		return nil, err
	}
	sets, err := nc.GetSets(t)
	if err != nil {
		return nil, fmt.Errorf("nftables: listing sets: %w", err)
	}
	seen := map[string]bool{}
	var names []string
	for _, s := range sets {
		if n, _, ok := tableOfSet(c.ownSet(s.Name)); ok && !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, nil
}

// tableSets returns the IPv4 and IPv6 sets of pf table name.
func (c *Conn) tableSets(nc *nftables.Conn, name string) (*nftables.Table, [2]*nftables.Set, error) {
	var sets [2]*nftables.Set
	t, err := c.current()
	if err != nil {
		return nil, sets, err
	}
	if t == nil {
		return nil, sets, errNoTable
	}
	for i, v6 := range []bool{false, true} {
		s, err := nc.GetSetByName(t, c.setName(TableSetName(name, v6)))
		if err != nil {
			return nil, sets, fmt.Errorf("pf table <%s> does not exist in the loaded ruleset", name)
		}
		sets[i] = s
	}
	return t, sets, nil
}

// TableRanges returns the addresses of pf table name as ranges, IPv4
// first, sorted. Ranges are as the kernel holds them: adjacent ranges that
// were added separately stay apart, as in pf.
func (c *Conn) TableRanges(name string) ([]Range, error) {
	nc, err := c.readConn()
	if err != nil {
		return nil, err
	}
	_, sets, err := c.tableSets(nc, name)
	if err != nil {
		return nil, err
	}
	var out []Range
	for _, s := range sets {
		rs, err := c.setRanges(s.Name, 0)
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	return c.withOverloadRanges(nc, name, out)
}

// setRanges dumps an interval set (see dumpElems for the cost and limit).
func (c *Conn) setRanges(set string, limit int) ([]Range, error) {
	var bs []bound
	if err := c.dumpElems(set, limit, func() { bs = bs[:0] }, func(e elem) {
		if a, ok := netip.AddrFromSlice(e.key); ok {
			bs = append(bs, bound{a, e.end})
		}
	}); err != nil {
		return nil, err
	}
	return boundRanges(bs), nil
}

// TableTest reports for each address whether pf table name holds it. It
// asks the kernel about each address (no dump: O(log n) each).
func (c *Conn) TableTest(name string, addrs []netip.Addr) ([]bool, error) {
	nc, err := c.readConn()
	if err != nil {
		return nil, err
	}
	_, sets, err := c.tableSets(nc, name)
	if err != nil {
		return nil, err
	}
	out := make([]bool, len(addrs))
	for i, s := range sets {
		var keys [][]byte
		var idx []int
		for j, a := range addrs {
			if a.Is4() == (i == 0) {
				keys = append(keys, a.AsSlice())
				idx = append(idx, j)
			}
		}
		if len(keys) == 0 {
			continue
		}
		got, answered, err := c.getElems(s.Name, keys, false)
		if err != nil {
			return nil, err
		}
		for k, e := range got {
			if !answered[k] {
				return nil, fmt.Errorf("nftables: set %s: the kernel did not answer for %s", s.Name, addrs[idx[k]])
			}
			// The kernel answers with the start of the interval that
			// holds the key; check it rather than trust it.
			if st, ok := netip.AddrFromSlice(e.key); ok && !e.end && !addrs[idx[k]].Less(st) {
				out[idx[k]] = true
			}
		}
	}
	if _, ovl, err := c.overloadAddrs(nc, name); err != nil {
		return nil, err
	} else {
		for i, a := range addrs {
			for _, o := range append(ovl[0], ovl[1]...) {
				out[i] = out[i] || o == a
			}
		}
	}
	return out, nil
}

// TableEntries returns the table as the fewest prefixes that cover it.
func (c *Conn) TableEntries(name string) ([]netip.Prefix, error) {
	rs, err := c.TableRanges(name)
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, r := range rs {
		out = append(out, RangePrefixes(r)...)
	}
	return out, nil
}

// ErrTableTooLarge is what TableSize returns (wrapped) for a table with
// more set elements than its limit.
var ErrTableTooLarge = errors.New("pf table too large to count")

// TableSize returns how many entries TableEntries (pfctl -T show) lists for
// pf table name, overloaded addresses included. It reads at most limit
// elements (two per range) of each of the table's interval sets: past that
// it stops and returns an error wrapping ErrTableTooLarge, because a dump
// costs time quadratic in the set's size (see dumpElems).
func (c *Conn) TableSize(name string, limit int) (int, error) {
	nc, err := c.readConn()
	if err != nil {
		return 0, err
	}
	_, sets, err := c.tableSets(nc, name)
	if err != nil {
		return 0, err
	}
	var rs []Range
	for _, s := range sets {
		part, err := c.setRanges(s.Name, limit)
		if errors.Is(err, errTooLarge) {
			return 0, fmt.Errorf("pf table <%s>: set %s has more than %d elements: %w", name, s.Name, limit, ErrTableTooLarge)
		}
		if err != nil {
			return 0, err
		}
		rs = append(rs, part...)
	}
	rs, err = c.withOverloadRanges(nc, name, rs)
	if err != nil {
		return 0, err
	}
	return countPrefixes(rs), nil
}

// TableOp is a change to a pf table's contents.
type TableOp uint8

// Table operations (pfctl -T).
const (
	TableAdd TableOp = iota
	TableDelete
	TableReplace
	TableFlush
)

// ChangeTable applies op with ps to pf table name in one transaction and
// returns how many of ps changed the table (add: not already wholly in it;
// delete: at least partly in it) or, for replace and flush, how many
// entries (prefixes, as TableEntries shows them) the table holds after
// replace or held before flush (Uncounted for a large table).
//
// The kernel's interval sets cannot hold overlapping elements, so an add
// that overlaps the table, and a delete that is not inside one interval
// of it, read the table (a dump: slow for large sets, see dumpElems),
// compute the new contents here and rewrite the sets. Adds that overlap
// nothing and deletes inside one interval each (an entry, or part of one)
// change only the elements concerned. Replace rewrites without reading;
// flush reads only to count, and only up to flushCountLimit.
//
// Deleting part of an interval splits it: a table loaded with 10.0.0.0/25
// and 10.0.0.128/25 holds the one interval 10.0.0.0/24 (the loader merges
// them), so deleting 10.0.0.128/25 must split it to give pf's answer. pf
// itself deletes exact entries only (deleting 10.0.0.1 from a table
// holding 10.0.0.0/24 deletes nothing there); here the address is removed
// from the interval, since what the interval was made of is not recorded.
func (c *Conn) ChangeTable(name string, op TableOp, ps []netip.Prefix) (changed int, err error) {
	nc, err := c.readConn()
	if err != nil {
		return 0, err
	}
	_, sets, err := c.tableSets(nc, name)
	if err != nil {
		return 0, err
	}
	ovl, err := c.overloadChange(nc, name, op, ps)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err == nil && changed != Uncounted && (op == TableDelete || op == TableFlush) {
			changed += ovl
		}
	}()
	switch op {
	case TableAdd:
		// Fast path: add the new ranges as they are. The kernel refuses
		// an element that overlaps one it has (and then nothing
		// changed); only then read the table.
		if n, err := c.addDisjoint(sets, ps); err == nil {
			return n, nil
		}
	case TableDelete:
		n, ok, err := c.deleteInPlace(sets, ps)
		if err != nil {
			return 0, err
		}
		if ok {
			return n, nil
		}
	case TableReplace:
		next := MergePrefixes(append([]netip.Prefix(nil), ps...))
		if err := c.rewriteSets(name, sets, next); err != nil {
			return 0, err
		}
		return countPrefixes(next), nil
	}
	if op == TableFlush {
		changed = 0
		for _, s := range sets {
			rs, err := c.setRanges(s.Name, flushCountLimit)
			if err == errTooLarge {
				changed = Uncounted
				break
			}
			if err != nil {
				return 0, err
			}
			changed += countPrefixes(rs)
		}
		if err := c.rewriteSets(name, sets, nil); err != nil {
			return 0, err
		}
		return changed, nil
	}
	var cur []Range
	for _, s := range sets {
		rs, err := c.setRanges(s.Name, 0)
		if err != nil {
			return 0, err
		}
		cur = append(cur, rs...)
	}
	var next []Range
	switch op {
	case TableAdd:
		cur = MergeRanges(cur)
		for _, p := range ps {
			r := prefixRange(p)
			if len(SubtractRanges([]Range{r}, cur)) > 0 {
				changed++
			}
		}
		next = MergeRanges(append(append([]Range(nil), cur...), MergePrefixes(ps)...))
	case TableDelete:
		cur = MergeRanges(cur)
		del := MergePrefixes(ps)
		for _, p := range ps {
			r := prefixRange(p)
			if left := SubtractRanges([]Range{r}, cur); len(left) != 1 || left[0] != r {
				changed++ // some of it was in the table
			}
		}
		next = SubtractRanges(cur, del)
	}
	if err := c.rewriteSets(name, sets, next); err != nil {
		return 0, err
	}
	return changed, nil
}

// Uncounted is what ChangeTable returns for a flush of a table with more
// than flushCountLimit/2 ranges: counting them means reading the whole
// table, which takes over a minute for 1,000,000 addresses (the kernel's
// dump is quadratic), while the flush itself takes about a second.
const Uncounted = -1

// flushCountLimit is the number of set elements (two per range) a flush
// reads to count the entries it deletes: reading this many takes well
// under a second.
const flushCountLimit = 100000

// countPrefixes is how many entries TableEntries shows for rs.
func countPrefixes(rs []Range) int {
	n := 0
	for _, r := range rs {
		n += len(RangePrefixes(r))
	}
	return n
}

// rewriteSets replaces the contents of the table's sets with next in one
// transaction.
func (c *Conn) rewriteSets(name string, sets [2]*nftables.Set, next []Range) error {
	wc, err := newBatch()
	if err != nil {
		return err
	}
	for i, s := range sets {
		var part []Range
		for _, r := range next {
			if r.From.Is4() == (i == 0) {
				part = append(part, r)
			}
		}
		wc.FlushSet(s)
		if err := addElems(wc, s, rangeElements(part), false); err != nil {
			return err
		}
	}
	if err := c.send(wc, nil); err != nil {
		return fmt.Errorf("nftables: rewriting table <%s>: %w", name, unwrapKernel(err))
	}
	return nil
}

// addElems buffers adds (or deletes) of els in messages of elemChunk.
func addElems(b *batch, s *nftables.Set, els []nftables.SetElement, del bool) error {
	for len(els) > 0 {
		n := min(len(els), elemChunk)
		var err error
		if del {
			err = b.SetDeleteElements(s, els[:n])
		} else {
			err = b.SetAddElements(s, els[:n])
		}
		if err != nil {
			return fmt.Errorf("nftables: set %s: %w", s.Name, err)
		}
		els = els[n:]
	}
	return nil
}

// deleteInPlace deletes ps without reading the table when each prefix
// lies inside one interval of it (or, for a single address, in none): it
// asks the kernel for the interval around each prefix's last address and
// replaces that interval by what is left of it. ok is false, and nothing
// changed, when that does not hold: a prefix that spans interval bounds,
// two prefixes in one interval, or a transaction the kernel refuses
// because the set changed meanwhile.
func (c *Conn) deleteInPlace(sets [2]*nftables.Set, ps []netip.Prefix) (changed int, ok bool, err error) {
	b, err := newBatch()
	if err != nil {
		return 0, false, err
	}
	b.exclElems = true
	for i, s := range sets {
		var rs []Range
		var keys [][]byte
		for _, p := range ps {
			if p.IsValid() && p.Addr().Is4() == (i == 0) {
				r := prefixRange(p)
				rs = append(rs, r)
				keys = append(keys, r.To.AsSlice())
			}
		}
		if len(rs) == 0 {
			continue
		}
		starts, answered, err := c.getElems(s.Name, keys, false)
		if err != nil {
			return 0, false, err
		}
		ends, endAnswered, err := c.getElems(s.Name, keys, true)
		if err != nil {
			return 0, false, err
		}
		var del, add []Range
		seen := map[netip.Addr]bool{}
		for k, r := range rs {
			st, found := netip.AddrFromSlice(starts[k].key)
			if !answered[k] {
				return 0, false, nil
			}
			if !found || starts[k].end {
				if r.From == r.To {
					continue // not in the table
				}
				return 0, false, nil // intervals may lie inside r
			}
			if r.From.Less(st) || r.To.Less(st) || seen[st] {
				return 0, false, nil
			}
			seen[st] = true
			// r lies in [st, en): en is the end after r.To, if any. No
			// answer at all: the interval may run to the last address
			// (see getElems); read the table.
			if !endAnswered[k] {
				return 0, false, nil
			}
			last := lastAddr(r.To.Is4())
			if en, ok := netip.AddrFromSlice(ends[k].key); ok && ends[k].end {
				if !r.To.Less(en) {
					return 0, false, nil
				}
				last = en.Prev()
			}
			del = append(del, Range{st, last})
			if st.Less(r.From) {
				add = append(add, Range{st, r.From.Prev()})
			}
			if r.To.Less(last) {
				add = append(add, Range{r.To.Next(), last})
			}
			changed++
		}
		// Not merged: intervals deleted here may be adjacent (separate
		// elements at one key).
		if err := addElems(b, s, rangeElements(del), true); err != nil {
			return 0, false, err
		}
		if err := addElems(b, s, rangeElements(add), false); err != nil {
			return 0, false, err
		}
	}
	if changed == 0 {
		return 0, true, nil
	}
	if err := c.send(b, nil); err != nil {
		return 0, false, nil
	}
	return changed, true, nil
}

// addDisjoint adds ps to the table's sets in one transaction, assuming none
// of them touches an existing element; the kernel refuses the transaction
// otherwise.
func (c *Conn) addDisjoint(sets [2]*nftables.Set, ps []netip.Prefix) (int, error) {
	b, err := newBatch()
	if err != nil {
		return 0, err
	}
	b.exclElems = true
	merged := MergePrefixes(append([]netip.Prefix(nil), ps...))
	for i, s := range sets {
		var part []Range
		for _, r := range merged {
			if r.From.Is4() == (i == 0) {
				part = append(part, r)
			}
		}
		if err := addElems(b, s, rangeElements(part), false); err != nil {
			return 0, err
		}
	}
	if err := c.send(b, nil); err != nil {
		return 0, err
	}
	return len(ps), nil
}
