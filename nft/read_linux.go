package nft

import (
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
	for _, ch := range chains {
		if ch.Table.Name != c.table {
			continue
		}
		rs.Chains = append(rs.Chains, ch.Name)
		rules, err := nc.GetRules(t, ch)
		if err != nil {
			return nil, fmt.Errorf("nftables: listing chain %s: %w", ch.Name, err)
		}
		if ch.Name == MetaChain {
			var comments []string
			for _, r := range rules {
				s, _ := dataComment(r.UserData)
				comments = append(comments, s)
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
		rules, err := nc.GetRules(t, ch)
		if err != nil {
			return 0, err
		}
		inRecord := false
		for _, r := range rules {
			s, _ := dataComment(r.UserData)
			drop := false
			if ch.Name == MetaChain {
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
	return c.send(b, nil)
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
		if n, _, ok := tableOfSet(s.Name); ok && !seen[n] {
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
		s, err := nc.GetSetByName(t, TableSetName(name, v6))
		if err != nil {
			return nil, sets, fmt.Errorf("pf table <%s> does not exist in the loaded ruleset", name)
		}
		sets[i] = s
	}
	return t, sets, nil
}

// TableRanges returns the addresses of pf table name as merged ranges,
// IPv4 first.
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
		els, err := nc.GetSetElements(s)
		if err != nil {
			return nil, fmt.Errorf("nftables: reading set %s: %w", s.Name, err)
		}
		out = append(out, elementRanges(els)...)
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
// delete: at least partly in it; replace and flush: the new and the old
// number of ranges). The kernel's interval sets cannot hold overlapping
// elements, so the new contents are computed here and the sets rewritten.
func (c *Conn) ChangeTable(name string, op TableOp, ps []netip.Prefix) (changed int, err error) {
	nc, err := c.readConn()
	if err != nil {
		return 0, err
	}
	_, sets, err := c.tableSets(nc, name)
	if err != nil {
		return 0, err
	}
	if op == TableAdd {
		// Fast path: add the new ranges as they are. The kernel refuses
		// an element that overlaps one it has (and then nothing changed);
		// only then read the table (a dump of a large interval set is
		// slow: the kernel restarts its walk for every chunk).
		if n, err := c.addDisjoint(sets, ps); err == nil {
			return n, nil
		}
	}
	var cur []Range
	for _, s := range sets {
		els, err := nc.GetSetElements(s)
		if err != nil {
			return 0, fmt.Errorf("nftables: reading set %s: %w", s.Name, err)
		}
		cur = append(cur, elementRanges(els)...)
	}
	cur = MergeRanges(cur)
	var next []Range
	switch op {
	case TableAdd:
		for _, p := range ps {
			r := prefixRange(p)
			if len(SubtractRanges([]Range{r}, cur)) > 0 {
				changed++
			}
		}
		next = MergeRanges(append(append([]Range(nil), cur...), MergePrefixes(ps)...))
	case TableDelete:
		del := MergePrefixes(ps)
		for _, p := range ps {
			r := prefixRange(p)
			if left := SubtractRanges([]Range{r}, cur); len(left) != 1 || left[0] != r {
				changed++ // some of it was in the table
			}
		}
		next = SubtractRanges(cur, del)
	case TableReplace:
		next = MergePrefixes(ps)
		changed = len(next)
	case TableFlush:
		changed = len(cur)
	}
	wc, err := newBatch()
	if err != nil {
		return 0, err
	}
	for i, s := range sets {
		var part []Range
		for _, r := range next {
			if r.From.Is4() == (i == 0) {
				part = append(part, r)
			}
		}
		wc.FlushSet(s)
		els := rangeElements(part)
		for len(els) > 0 {
			n := min(len(els), elemChunk)
			if err := wc.SetAddElements(s, els[:n]); err != nil {
				return 0, err
			}
			els = els[n:]
		}
	}
	if err := c.send(wc, nil); err != nil {
		return 0, fmt.Errorf("nftables: rewriting table <%s>: %w", name, unwrapKernel(err))
	}
	return changed, nil
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
		els := rangeElements(part)
		for len(els) > 0 {
			n := min(len(els), elemChunk)
			if err := b.SetAddElements(s, els[:n]); err != nil {
				return 0, err
			}
			els = els[n:]
		}
	}
	if err := c.send(b, nil); err != nil {
		return 0, err
	}
	return len(ps), nil
}
