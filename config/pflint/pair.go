package pflint

import (
	"net/netip"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pfcarp/pfcarp/config"
	"github.com/pfcarp/pfcarp/pfconf"
)

var _ config.PairRulesLinter = (*Linter)(nil)

// maxPairDiffs caps the pair-rules-differ findings of one pair; the last
// one says how many more there are.
const maxPairDiffs = 10

// LintRulesPair is pair-rules-differ: it expands both nodes' pf.conf, each
// as that node sees its interfaces, maps the second node's interface names
// and own addresses to the first's, and reports the options, tables and
// rules that are not the same on both, in pf's order.
//
// What is mapped (the differences a pair is expected to have): an
// interface of b to the interface of a on the same subnet (else to a's of
// the same name), b's pfsync syncdev to a's, b's carpN to the carpN of a
// holding the same virtual address; each of b's own interface addresses
// to a's address on the same subnet at the same place, and a's to b's (a
// rule naming the peer names the other node). So "nat on $ext_if ... ->
// $ext_if" (each node's own address) is the same rule on both; that it
// breaks on failover is nat-to-own-address's finding. Everything else
// counts: networks, virtual addresses, ports, tables, order.
func (l *Linter) LintRulesPair(a, b *config.Node, srcA, srcB []byte) (out config.Diags) {
	defer func() {
		if e := recover(); e != nil {
			out = config.Diags{diag(config.Pos{File: a.PF.RulesPath}, "pf-rules-error", nil, "internal error while comparing the pair's rulesets (please report it): %v", e)}
		}
	}()
	rsA := l.expand(a, srcA)
	rsB := l.expand(b, srcB)
	if rsA == nil || rsB == nil {
		return nil // LintRules reports why
	}
	m := pairMap(a, b)
	itemsA := items(a, rsA, nil)
	itemsB := items(b, rsB, m)
	onlyA, onlyB := diffItems(itemsA, itemsB)
	names := m.describe(nodeLabel(b))
	var all config.Diags
	for _, it := range onlyA {
		all = append(all, diag(it.pos, "pair-rules-differ", nil,
			"%s's ruleset has %q, %s's has not%s: after a failover traffic is filtered or translated differently; give both nodes the same pf.conf",
			nodeLabel(a), it.text, nodeLabel(b), names))
	}
	for _, it := range onlyB {
		all = append(all, diag(it.pos, "pair-rules-differ", nil,
			"%s's ruleset has %q, %s's has not%s: after a failover traffic is filtered or translated differently; give both nodes the same pf.conf",
			nodeLabel(b), it.orig, nodeLabel(a), names))
	}
	if len(all) > maxPairDiffs {
		more := len(all) - (maxPairDiffs - 1)
		all = append(all[:maxPairDiffs-1], diag(all[maxPairDiffs-1].Pos, "pair-rules-differ", nil,
			"%d more differences between the rulesets of %s and %s", more, nodeLabel(a), nodeLabel(b)))
	}
	return all
}

// expand parses and expands n's pf.conf as LintRules does; nil on errors.
func (l *Linter) expand(n *config.Node, src []byte) *pfconf.Ruleset {
	rs, err := l.load(n, src)
	if err != nil {
		return nil
	}
	return rs.Rules
}

func nodeLabel(n *config.Node) string {
	if h, _, _ := strings.Cut(n.Hostname, "."); h != "" {
		return h
	}
	return filepath.Base(n.File)
}

// nodeMap maps the second node's names and addresses to the first's.
type nodeMap struct {
	ifname map[string]string
	addr   map[netip.Addr]netip.Addr
}

func pairMap(a, b *config.Node) *nodeMap {
	m := &nodeMap{ifname: map[string]string{}, addr: map[netip.Addr]netip.Addr{}}
	taken := map[string]bool{}
	link := func(nb, na string) {
		if nb == "" || na == "" {
			return
		}
		if _, done := m.ifname[nb]; done || taken[na] {
			return
		}
		m.ifname[nb], taken[na] = na, true
	}
	for _, ib := range b.Interfaces {
		for _, ia := range a.Interfaces {
			if sameSubnet(ia, ib) {
				link(ib.Name, ia.Name)
				pairAddrs(m, ia, ib)
				break
			}
		}
	}
	if a.Pfsync != nil && b.Pfsync != nil {
		link(b.Pfsync.SyncDev, a.Pfsync.SyncDev)
	}
	for _, gb := range b.CARP {
		for _, ga := range a.CARP {
			if gb.Name != "" && ga.Name != "" && sharesVIP(ga, gb) {
				link(gb.Name, ga.Name)
				break
			}
		}
	}
	for _, ib := range b.Interfaces {
		if a.Interface(ib.Name) != nil {
			link(ib.Name, ib.Name)
		}
	}
	return m
}

func sameSubnet(ia, ib *config.Interface) bool {
	for _, x := range ia.Addrs {
		for _, y := range ib.Addrs {
			if x.Prefix.Masked() == y.Prefix.Masked() {
				return true
			}
		}
	}
	return false
}

func sharesVIP(ga, gb *config.CARPGroup) bool {
	for _, x := range ga.VIPs {
		for _, y := range gb.VIPs {
			if x.Prefix.Addr() == y.Prefix.Addr() {
				return true
			}
		}
	}
	return false
}

// pairAddrs maps each address of ib to the address of ia at the same place
// in the same subnet, and back (a rule naming the peer).
func pairAddrs(m *nodeMap, ia, ib *config.Interface) {
	used := map[int]bool{}
	for _, y := range ib.Addrs {
		for i, x := range ia.Addrs {
			if used[i] || x.Prefix.Masked() != y.Prefix.Masked() {
				continue
			}
			used[i] = true
			if x.Prefix.Addr() != y.Prefix.Addr() {
				m.addr[y.Prefix.Addr()] = x.Prefix.Addr()
				m.addr[x.Prefix.Addr()] = y.Prefix.Addr()
			}
			break
		}
	}
}

// describe is the interface mapping of node b as the messages show it, ""
// when every interface keeps its name.
func (m *nodeMap) describe(b string) string {
	var parts []string
	for b, a := range m.ifname {
		if a != b {
			parts = append(parts, b+" as "+a)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	sort.Strings(parts)
	return " (reading " + b + "'s " + strings.Join(parts, ", ") + ")"
}

func (m *nodeMap) name(s string) string {
	if m == nil {
		return s
	}
	if t, ok := m.ifname[s]; ok {
		return t
	}
	return s
}

func (m *nodeMap) address(x pfconf.Addr) pfconf.Addr {
	if m == nil {
		return x
	}
	switch x.Type {
	case pfconf.AddrMask:
		if x.Addr.IsValid() && x.Bits == x.Addr.BitLen() {
			if t, ok := m.addr[x.Addr]; ok {
				x.Addr = t
			}
		}
	case pfconf.AddrDynIf:
		x.Name = m.name(x.Name)
	}
	return x
}

func (m *nodeMap) pool(p pfconf.Pool) pfconf.Pool {
	if m == nil || len(p.Addrs) == 0 {
		return p
	}
	addrs := make([]pfconf.PoolAddr, len(p.Addrs))
	for i, pa := range p.Addrs {
		addrs[i] = pfconf.PoolAddr{Addr: m.address(pa.Addr), Ifname: m.name(pa.Ifname)}
	}
	p.Addrs = addrs
	return p
}

// rule returns r with m applied (r itself is not changed).
func (m *nodeMap) rule(r *pfconf.Rule) *pfconf.Rule {
	c := *r
	c.Anchor = nil
	c.Ifname, c.RcvIfname = m.name(r.Ifname), m.name(r.RcvIfname)
	c.Src.Addr, c.Dst.Addr = m.address(r.Src.Addr), m.address(r.Dst.Addr)
	c.Route, c.NAT, c.RDR = m.pool(r.Route), m.pool(r.NAT), m.pool(r.RDR)
	return &c
}

// item is one option, table or rule as pfctl -nv prints it: text with the
// mapping applied, orig as the node wrote it.
type item struct {
	text, orig string
	pos        config.Pos
}

// items lists n's options, tables and rules (those of inline anchors after
// their call, prefixed with the anchor's name) in pfctl's print order.
func items(n *config.Node, rs *pfconf.Ruleset, m *nodeMap) []item {
	pos := func(p pfconf.Pos) config.Pos {
		q := rs.Sources.Position(p)
		if q.Filename == "" {
			q.Filename = n.PF.RulesPath
		}
		return config.Pos{File: q.Filename, Line: q.Line, Col: q.Column}
	}
	var out []item
	for _, d := range rs.Decls {
		switch d := d.(type) {
		case *pfconf.OptionDecl:
			text := d.Text
			if d.Name == "skip" && m != nil && d.Value != nil {
				ifs := make([]string, len(d.Value.Skip))
				for i, ifn := range d.Value.Skip {
					ifs[i] = m.name(ifn)
				}
				text = pfconf.SkipText(ifs)
			}
			out = append(out, item{text: text, orig: d.Text, pos: pos(d.Pos)})
		case *pfconf.TableDecl:
			c := *d
			if m != nil {
				c.Entries = nil
				c.Inits = make([]pfconf.TableInit, len(d.Inits))
				for i, ti := range d.Inits {
					c.Inits[i] = pfconf.TableInit{File: ti.File}
					for _, e := range ti.Entries {
						e.Addr = m.address(e.Addr)
						c.Inits[i].Entries = append(c.Inits[i].Entries, e)
						c.Entries = append(c.Entries, e)
					}
				}
			}
			out = append(out, item{text: printed(&pfconf.Ruleset{Decls: []pfconf.Decl{&c}}), orig: printed(&pfconf.Ruleset{Decls: []pfconf.Decl{d}}), pos: pos(d.Pos)})
		}
	}
	var walk func(a *pfconf.Anchor, kind func(*pfconf.Anchor) []*pfconf.Rule, prefix string)
	walk = func(a *pfconf.Anchor, kind func(*pfconf.Anchor) []*pfconf.Rule, prefix string) {
		for _, r := range kind(a) {
			orig := ruleText(r)
			text := orig
			if m != nil {
				text = ruleText(m.rule(r))
			}
			out = append(out, item{text: prefix + text, orig: prefix + orig, pos: pos(r.Pos)})
			if r.Anchor != nil {
				walk(r.Anchor, kind, prefix+"anchor "+r.AnchorCall+": ")
			}
		}
	}
	for _, kind := range []func(*pfconf.Anchor) []*pfconf.Rule{
		func(a *pfconf.Anchor) []*pfconf.Rule { return a.Scrub },
		func(a *pfconf.Anchor) []*pfconf.Rule { return a.NAT },
		func(a *pfconf.Anchor) []*pfconf.Rule { return a.RDR },
		func(a *pfconf.Anchor) []*pfconf.Rule { return a.BINAT },
		func(a *pfconf.Anchor) []*pfconf.Rule { return a.Filter },
	} {
		walk(rs.Main, kind, "")
	}
	return out
}

// ruleText is r as pfctl -nv prints it, without its anchor's rules.
func ruleText(r *pfconf.Rule) string {
	c := *r
	c.Anchor = nil
	return printed(&pfconf.Ruleset{Main: &pfconf.Anchor{Filter: []*pfconf.Rule{&c}}})
}

func printed(rs *pfconf.Ruleset) string {
	if rs.Main == nil {
		rs.Main = &pfconf.Anchor{}
	}
	return strings.TrimSuffix(rs.String(), "\n")
}

// diffItems returns the items of a and of b that a longest common
// subsequence of their texts leaves out. Beyond a size where that costs
// too much it compares them as multisets (order is then not checked).
func diffItems(a, b []item) (onlyA, onlyB []item) {
	if len(a)*len(b) > 4_000_000 {
		count := map[string]int{}
		for _, x := range b {
			count[x.text]++
		}
		for _, x := range a {
			if count[x.text] > 0 {
				count[x.text]--
			} else {
				onlyA = append(onlyA, x)
			}
		}
		for _, x := range a {
			count[x.text]++
		}
		for _, x := range b {
			if count[x.text] > 0 {
				count[x.text]--
			} else {
				onlyB = append(onlyB, x)
			}
		}
		return onlyA, onlyB
	}
	// lcs[i][j] is the LCS length of a[i:] and b[j:].
	w := len(b) + 1
	lcs := make([]int32, (len(a)+1)*w)
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			switch {
			case a[i].text == b[j].text:
				lcs[i*w+j] = lcs[(i+1)*w+j+1] + 1
			case lcs[(i+1)*w+j] >= lcs[i*w+j+1]:
				lcs[i*w+j] = lcs[(i+1)*w+j]
			default:
				lcs[i*w+j] = lcs[i*w+j+1]
			}
		}
	}
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i].text == b[j].text:
			i, j = i+1, j+1
		case lcs[(i+1)*w+j] >= lcs[i*w+j+1]:
			onlyA = append(onlyA, a[i])
			i++
		default:
			onlyB = append(onlyB, b[j])
			j++
		}
	}
	onlyA = append(onlyA, a[i:]...)
	onlyB = append(onlyB, b[j:]...)
	return onlyA, onlyB
}
