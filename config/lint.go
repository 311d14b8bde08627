package config

import (
	"bytes"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
)

// RulesLinter lints a node's pf.conf (its pf_rules) knowing the node: its
// interfaces, CARP groups and addresses. It is how the pf.conf lints (NAT
// to the node's own address instead of a CARP VIP, pfsync passed without
// authentication, ...) plug into Check: this package does not parse
// pf.conf. LintRules must not panic on any input and should report
// positions in the pf.conf.
type RulesLinter interface {
	LintRules(n *Node, src []byte) Diags
}

// PairRulesLinter is a RulesLinter that also compares the pf.conf of the
// two nodes of a pair (both loaded without errors, pf enabled, pf_rules
// readable). Check calls LintRulesPair once per pair, after the per-node
// lints.
type PairRulesLinter interface {
	RulesLinter
	LintRulesPair(a, b *Node, srcA, srcB []byte) Diags
}

// RulesLinterFunc adapts a function to RulesLinter.
type RulesLinterFunc func(n *Node, src []byte) Diags

// LintRules calls f.
func (f RulesLinterFunc) LintRules(n *Node, src []byte) Diags { return f(n, src) }

// CheckOptions control Check. The zero value is usable.
type CheckOptions struct {
	// Rules lint each node's pf.conf; when empty, Check notes that the
	// pf.conf was not linted.
	Rules []RulesLinter
	// ReadFile reads a node's pf.conf; nil means os.ReadFile.
	ReadFile func(name string) ([]byte, error)
}

// Lint describes one check of Check: its stable ID, severity and what it
// is about. Lints lists them all; doc.go explains the reasoning.
type Lint struct {
	ID       string
	Severity Severity
	Summary  string
}

// Lints are the lints Check runs on loaded nodes, one node's then a pair's.
var Lints = []Lint{
	{"carp-no-pass", Warning, "a CARP group has no password"},
	{"carp-weak-pass", Warning, "a CARP password is short or only digits"},
	{"carp-shared-pass", Warning, "two CARP groups share a password"},
	{"carp-preempt-off", Warning, "several CARP groups without preemption can end up split between the nodes"},
	{"carp-dhcp-parent", Warning, "a CARP parent takes its address from DHCP"},
	{"pfsync-missing", Warning, "CARP without pfsync: failover drops every connection"},
	{"pfsync-no-syncdev", Error, "pfsync has neither syncdev nor syncpeer"},
	{"pfsync-down", Warning, "pfsync0 is not up"},
	{"pfsync-syncdev-no-addr", Error, "the pfsync interface has no address"},
	{"pfsync-syncdev-shared", Warning, "pfsync runs on a link that also carries CARP traffic"},
	{"pfsync-no-auth", Warning, "pfsync runs unauthenticated"},
	{"pf-disabled", Note, "CARP groups but pf is off"},
	{"pf-rules-missing", Error, "pf_rules names a file that cannot be read"},
	{"pf-not-linted", Note, "pf.conf lints are not available"},
	{"pf-rules-error", Error, "pf.conf does not parse or expand"},
	{"nat-to-own-address", Warning, "NAT translates to the node's own address, not a CARP address"},
	{"rdr-to-own-address", Warning, "an rdr on a CARP parent matches the node's own address"},
	{"rdr-not-to-vip", Note, "an rdr on a CARP parent matches more than the CARP address"},
	{"carp-blocked", Error, "a block rule can drop CARP advertisements"},
	{"pfsync-blocked", Warning, "a block rule can drop pfsync messages"},
	{"pfsync-state-synced", Note, "pfsync traffic is passed keep state without (no-sync)"},
	{"rdr-blocked", Warning, "a block rule can drop connections an rdr redirects"},
	{"pf-no-block", Warning, "no rule blocks: everything passes and set block-policy has no effect"},
	{"carp-keep-state", Note, "CARP advertisements are passed with keep state"},
	{"pflog-without-pf", Warning, "pflog is enabled but pf is not"},
	{"gateway-disabled", Warning, "CARP on several segments without gateway_enable"},
	{"defaultrouter-unreachable", Warning, "no interface is on the default router's subnet"},
	{"defaultrouter-is-self", Error, "the default router is the node itself"},
	{"pair-group-missing", Error, "a CARP group exists on one node only"},
	{"pair-vhid-mismatch", Error, "a group's vhid differs between the nodes"},
	{"pair-pass-mismatch", Error, "a group's password differs between the nodes"},
	{"pair-vip-mismatch", Error, "a group's virtual addresses differ between the nodes"},
	{"pair-advbase-mismatch", Warning, "a group's advbase differs between the nodes"},
	{"pair-equal-skew", Warning, "both nodes advertise the same advbase and advskew"},
	{"pair-roles-split", Error, "groups prefer different nodes"},
	{"pair-roles-hostname", Warning, "the node named master is the CARP backup"},
	{"pair-preempt-mismatch", Warning, "preemption on one node only"},
	{"pair-defaultrouter-mismatch", Warning, "the nodes use different default routers"},
	{"pair-addr-conflict", Error, "the nodes share an interface address"},
	{"pair-hostname-same", Warning, "the nodes have the same hostname"},
	{"pair-pfsync-missing", Warning, "pfsync on one node only"},
	{"pair-pfsync-unreachable", Error, "the pfsync links are on different subnets"},
	{"pair-syncpeer-wrong", Error, "syncpeer is not the peer's address"},
	{"pair-pfsync-key-mismatch", Error, "the pfsync keys differ"},
	{"pair-vmac-mismatch", Warning, "carp_vmac differs between the nodes"},
	{"pair-rules-differ", Warning, "the nodes' pf.conf rulesets differ once interfaces and own addresses are mapped"},
}

func lintSeverity(id string) Severity {
	for _, l := range Lints {
		if l.ID == id {
			return l.Severity
		}
	}
	return Warning
}

// Check lints loaded nodes: each on its own, then every pair, then each
// node's pf.conf through opts.Rules. Nodes must have loaded without
// errors. The result is sorted and free of duplicates.
func Check(nodes []*Node, opts CheckOptions) Diags {
	c := &checker{srcs: map[*Node][]byte{}}
	for _, n := range nodes {
		c.node(n, &opts)
	}
	for i := range nodes {
		for j := i + 1; j < len(nodes); j++ {
			c.pair(nodes[i], nodes[j])
			a, b := nodes[i], nodes[j]
			srcA, okA := c.srcs[a]
			srcB, okB := c.srcs[b]
			if !okA || !okB {
				continue
			}
			for _, r := range opts.Rules {
				if pr, ok := r.(PairRulesLinter); ok {
					c.d.list = append(c.d.list, pr.LintRulesPair(a, b, srcA, srcB)...)
				}
			}
		}
	}
	out := dedup(c.d.list)
	out.Sort()
	return out
}

type checker struct {
	d diagList
	// srcs holds the pf.conf of each node whose pf_rules were read.
	srcs map[*Node][]byte
}

func (c *checker) add(pos Pos, id string, related []Pos, format string, args ...any) {
	c.d.addRel(pos, lintSeverity(id), id, related, format, args...)
}

func dedup(l Diags) Diags {
	var out Diags
	seen := map[string]bool{}
	for _, d := range l {
		k := d.String()
		if !seen[k] {
			seen[k] = true
			out = append(out, d)
		}
	}
	return out
}

// name is how messages call a node: its host name's first label, or the
// config file's base name.
func (n *Node) name() string {
	if n.Hostname != "" {
		h, _, _ := strings.Cut(n.Hostname, ".")
		return h
	}
	return filepath.Base(n.File)
}

func firstPos(ps ...Pos) Pos {
	for _, p := range ps {
		if p.IsValid() {
			return p
		}
	}
	return Pos{}
}

func (c *checker) node(n *Node, opts *CheckOptions) {
	passes := map[string]*CARPGroup{}
	parents := map[string]bool{}
	for _, g := range n.CARP {
		if g.Dev != "" {
			parents[g.Dev] = true
		}
		switch {
		case g.Pass == "":
			c.add(g.Pos, "carp-no-pass", nil, "%s has no pass: anyone on the %s segment can send advertisements that take the virtual address over", g.Label(), g.Dev)
		case len(g.Pass) < 12 || strings.Trim(g.Pass, "0123456789") == "":
			c.add(g.PassPos, "carp-weak-pass", nil, "%s: the CARP password is %d bytes%s; one captured advertisement lets an attacker on the segment guess it offline and forge advertisements; use 12 or more random characters (at most %d)", g.Label(), len(g.Pass), map[bool]string{true: ", only digits", false: ""}[strings.Trim(g.Pass, "0123456789") == ""], carpMaxPass)
		}
		if g.Pass != "" {
			if o := passes[g.Pass]; o != nil {
				c.add(g.PassPos, "carp-shared-pass", []Pos{o.PassPos}, "%s uses the same password as %s: whoever learns it on one segment can take over both", g.Label(), o.Label())
			} else {
				passes[g.Pass] = g
			}
		}
		if ifc := n.Interface(g.Dev); ifc != nil && ifc.DHCP {
			c.add(g.Pos, "carp-dhcp-parent", []Pos{ifc.Pos}, "%s runs on %s, which takes its address from DHCP: if the address or subnet changes the virtual address is stranded", g.Label(), g.Dev)
		}
	}
	if len(n.CARP) >= 2 && !n.Preempt {
		c.add(n.CARP[0].Pos, "carp-preempt-off", nil, "%d CARP groups without carp_preempt=\"YES\" (net.inet.carp.preempt=1): when one link fails only that group moves, so traffic enters one node and leaves through the other, which has no pf state for it", len(n.CARP))
	}
	if len(parents) >= 2 && !n.GatewayEnable {
		c.add(firstPos(n.GatewayEnablePos, n.CARP[0].Pos), "gateway-disabled", nil, "CARP groups on %d segments but gateway_enable is not YES: the node will not forward between them", len(parents))
	}
	c.pfsyncNode(n)
	if n.DefaultRouter.IsValid() {
		if _, ok := n.OwnAddr(n.DefaultRouter); ok {
			c.add(n.DefaultRouterPos, "defaultrouter-is-self", nil, "defaultrouter %s is this node's own address", n.DefaultRouter)
		} else if g, ok := n.VIP(n.DefaultRouter); ok {
			c.add(n.DefaultRouterPos, "defaultrouter-is-self", nil, "defaultrouter %s is this node's virtual address (%s): while MASTER it routes to itself", n.DefaultRouter, g.Label())
		} else if !n.onLink(n.DefaultRouter) {
			c.add(n.DefaultRouterPos, "defaultrouter-unreachable", nil, "defaultrouter %s is not in the subnet of any interface", n.DefaultRouter)
		}
	}
	if n.Pflog.Enable && !n.PF.Enable {
		c.add(n.Pflog.EnablePos, "pflog-without-pf", nil, "pflog_enable is YES but pf_enable is not: nothing will be logged")
	}
	if len(n.CARP) > 0 && !n.PF.Enable {
		c.add(n.CARP[0].Pos, "pf-disabled", nil, "CARP groups but pf_enable is not YES: no filtering, NAT or rdr; only the virtual addresses move")
	}
	if !n.PF.Enable {
		return
	}
	read := opts.ReadFile
	if read == nil {
		read = (*Options)(nil).readFile
	}
	src, err := read(n.PF.RulesPath)
	if err != nil {
		c.add(firstPos(n.PF.RulesPos, Pos{File: n.File}), "pf-rules-missing", nil, "pf_rules: %v", err)
		return
	}
	if len(opts.Rules) == 0 {
		c.add(firstPos(n.PF.RulesPos, Pos{File: n.File}), "pf-not-linted", nil, "%s was not linted: no pf.conf linter was given, so NAT to the node's own address (instead of a CARP address) and similar failover bugs in it are not reported", n.PF.RulesPath)
		return
	}
	c.srcs[n] = src
	for _, r := range opts.Rules {
		c.d.list = append(c.d.list, r.LintRules(n, src)...)
	}
}

// onLink reports whether a is in the subnet of one of n's interfaces.
func (n *Node) onLink(a netip.Addr) bool {
	for _, i := range n.Interfaces {
		if i.DHCP || inSubnet(i, a) {
			return true
		}
	}
	return false
}

func (c *checker) pfsyncNode(n *Node) {
	p := n.Pfsync
	if p == nil {
		if len(n.CARP) > 0 {
			c.add(n.CARP[0].Pos, "pfsync-missing", nil, "CARP without pfsync: the new MASTER has none of the old one's states, so every connection and NAT mapping breaks on failover")
		}
		return
	}
	if !p.Up {
		c.add(p.Pos, "pfsync-down", nil, "%s does not say up: pfsync stays down and sends nothing", p.Key)
	}
	if p.SyncDev == "" && !p.SyncPeer.IsValid() {
		c.add(p.Pos, "pfsync-no-syncdev", nil, "pfsync has neither syncdev (syncif) nor syncpeer: it has nowhere to send state updates")
		return
	}
	if p.SyncDev != "" {
		ifc := n.Interface(p.SyncDev)
		if ifc == nil || len(ifc.Addrs) == 0 && !ifc.DHCP {
			c.add(p.Pos, "pfsync-syncdev-no-addr", nil, "pfsync's syncdev %s has no address: it cannot send or receive state updates", p.SyncDev)
		}
		for _, g := range n.CARP {
			if g.Dev == p.SyncDev {
				c.add(p.Pos, "pfsync-syncdev-shared", []Pos{g.Pos}, "pfsync runs on %s, which also carries %s: state updates then cross a production segment; use a dedicated link", p.SyncDev, g.Label())
				break
			}
		}
	}
	if len(n.PfsyncKey) == 0 {
		where := "multicast 224.0.0.240 on " + p.SyncDev
		if p.SyncPeer.IsValid() {
			where = p.SyncPeer.String()
		}
		c.add(p.Pos, "pfsync-no-auth", nil, "pfsync is unauthenticated (%s): any host that can send on that link can insert or delete firewall states; keep it a dedicated cable and set pfsync_key on both nodes", where)
	}
}

// adv is a group's advertisement interval in 1/256 s: lower wins.
func adv(g *CARPGroup) int { return g.AdvBase*256 + g.AdvSkew }

func vipSet(g *CARPGroup) []string {
	var s []string
	for _, v := range g.VIPs {
		s = append(s, v.Prefix.String())
	}
	slices.Sort(s)
	return slices.Compact(s)
}

func (c *checker) match(a, b *Node) map[*CARPGroup]*CARPGroup {
	m := map[*CARPGroup]*CARPGroup{}
	used := map[*CARPGroup]bool{}
	for _, ga := range a.CARP {
		var found *CARPGroup
		for _, v := range ga.VIPs {
			if gb, ok := b.VIP(v.Prefix.Addr()); ok && !used[gb] {
				found = gb
				break
			}
		}
		if found == nil && ga.Name != "" {
			for _, gb := range b.CARP {
				if gb.Name == ga.Name && !used[gb] {
					found = gb
					break
				}
			}
		}
		if found != nil {
			m[ga] = found
			used[found] = true
		}
	}
	for _, ga := range a.CARP {
		if m[ga] == nil {
			c.add(ga.Pos, "pair-group-missing", nil, "%s (%s) has no counterpart on %s: nothing backs it up", ga.Label(), strings.Join(vipSet(ga), " "), b.name())
		}
	}
	for _, gb := range b.CARP {
		if !used[gb] {
			c.add(gb.Pos, "pair-group-missing", nil, "%s (%s) has no counterpart on %s: nothing backs it up", gb.Label(), strings.Join(vipSet(gb), " "), a.name())
		}
	}
	return m
}

var (
	masterWords = []string{"master", "primary", "main", "active"}
	backupWords = []string{"slave", "backup", "secondary", "standby", "passive"}
)

func roleFromName(h string) string {
	h, _, _ = strings.Cut(strings.ToLower(h), ".")
	for _, w := range masterWords {
		if strings.Contains(h, w) {
			return "master"
		}
	}
	for _, w := range backupWords {
		if strings.Contains(h, w) {
			return "backup"
		}
	}
	return ""
}

func (c *checker) pair(a, b *Node) {
	m := c.match(a, b)
	preferA, preferB := []*CARPGroup{}, []*CARPGroup{}
	for _, ga := range a.CARP {
		gb := m[ga]
		if gb == nil {
			continue
		}
		la, lb := ga.Label(), gb.Label()
		if ga.VHID != gb.VHID {
			c.add(gb.Pos, "pair-vhid-mismatch", []Pos{ga.Pos}, "%s has vhid %d on %s but %s has vhid %d on %s: the nodes do not see each other's advertisements and both become MASTER", lb, gb.VHID, b.name(), la, ga.VHID, a.name())
		}
		if ga.Pass != gb.Pass {
			c.add(firstPos(gb.PassPos, gb.Pos), "pair-pass-mismatch", []Pos{firstPos(ga.PassPos, ga.Pos)}, "%s's password differs from %s's on %s: each node drops the other's advertisements and both become MASTER", lb, la, a.name())
		}
		if va, vb := vipSet(ga), vipSet(gb); !slices.Equal(va, vb) {
			c.add(gb.Pos, "pair-vip-mismatch", []Pos{ga.Pos}, "%s has addresses %s on %s but %s has %s on %s: after a failover some are not served", lb, strings.Join(vb, " "), b.name(), la, strings.Join(va, " "), a.name())
		}
		if ga.AdvBase != gb.AdvBase {
			c.add(firstPos(gb.AdvBasePos, gb.Pos), "pair-advbase-mismatch", []Pos{firstPos(ga.AdvBasePos, ga.Pos)}, "%s: advbase %d on %s but %d on %s; set the roles with advskew and keep advbase equal", lb, gb.AdvBase, b.name(), ga.AdvBase, a.name())
		}
		switch {
		case adv(ga) == adv(gb):
			c.add(firstPos(gb.AdvSkewPos, gb.Pos), "pair-equal-skew", []Pos{firstPos(ga.AdvSkewPos, ga.Pos)}, "%s: advbase %d advskew %d on both %s and %s: neither is preferred, so which is MASTER depends on who came up first; give the backup a higher advskew", lb, gb.AdvBase, gb.AdvSkew, a.name(), b.name())
		case adv(ga) < adv(gb):
			preferA = append(preferA, ga)
		default:
			preferB = append(preferB, ga)
		}
	}
	if len(preferA) > 0 && len(preferB) > 0 {
		ga, gb := preferA[0], preferB[0]
		c.add(firstPos(m[gb].AdvSkewPos, m[gb].Pos), "pair-roles-split", []Pos{firstPos(ga.AdvSkewPos, ga.Pos)}, "%s prefers %s but %s prefers %s: traffic would enter one node and leave through the other, which has no pf state or NAT mapping for it; give every group the same master", ga.Label(), a.name(), gb.Label(), b.name())
	}
	// A node named master that loses every group is set up backwards.
	var pairs [][2]*CARPGroup // {mine, theirs}
	for _, ga := range a.CARP {
		if m[ga] != nil {
			pairs = append(pairs, [2]*CARPGroup{ga, m[ga]})
		}
	}
	for _, x := range []struct {
		n, other *Node
		loses    bool
		flip     bool
	}{
		{a, b, len(preferB) > 0 && len(preferB) == len(pairs), false},
		{b, a, len(preferA) > 0 && len(preferA) == len(pairs), true},
	} {
		if !x.loses || roleFromName(x.n.Hostname) != "master" || roleFromName(x.other.Hostname) == "master" {
			continue
		}
		mine, theirs := pairs[0][0], pairs[0][1]
		if x.flip {
			mine, theirs = theirs, mine
		}
		c.add(firstPos(mine.AdvSkewPos, mine.Pos), "pair-roles-hostname", []Pos{firstPos(theirs.AdvSkewPos, theirs.Pos)}, "%s is named %q but advertises advbase %d advskew %d, slower than %s's %d/%d: it will be the BACKUP; the lower advskew wins", x.n.name(), x.n.Hostname, mine.AdvBase, mine.AdvSkew, x.other.name(), theirs.AdvBase, theirs.AdvSkew)
	}
	if a.Preempt != b.Preempt && (len(a.CARP) > 0 || len(b.CARP) > 0) {
		on, off := a, b
		if b.Preempt {
			on, off = b, a
		}
		c.add(firstPos(on.PreemptPos, Pos{File: off.File}), "pair-preempt-mismatch", nil, "preemption is on for %s but off for %s: the nodes disagree on whether a recovered node takes its groups back, and a failed link moves all groups on one node but only one on the other", on.name(), off.name())
	}
	if a.DefaultRouter != b.DefaultRouter {
		c.add(firstPos(b.DefaultRouterPos, Pos{File: b.File}), "pair-defaultrouter-mismatch", []Pos{a.DefaultRouterPos}, "defaultrouter is %s on %s but %s on %s: outbound traffic changes path on failover", addrOrNone(b.DefaultRouter), b.name(), addrOrNone(a.DefaultRouter), a.name())
	}
	for _, ia := range a.Interfaces {
		for _, x := range ia.Addrs {
			if ib, ok := b.OwnAddr(x.Prefix.Addr()); ok {
				var pb Pos
				for _, y := range ib.Addrs {
					if y.Prefix.Addr() == x.Prefix.Addr() {
						pb = y.Pos
					}
				}
				c.add(pb, "pair-addr-conflict", []Pos{x.Pos}, "%s is configured on both %s (%s) and %s (%s): an address conflict", x.Prefix.Addr(), a.name(), ia.Name, b.name(), ib.Name)
			}
		}
	}
	if a.Hostname != "" && strings.EqualFold(a.Hostname, b.Hostname) {
		c.add(b.HostnamePos, "pair-hostname-same", []Pos{a.HostnamePos}, "both nodes are named %s: logs and status output cannot tell them apart", a.Hostname)
	}
	if a.CARPVMAC != b.CARPVMAC {
		c.add(firstPos(a.CARPVMACPos, b.CARPVMACPos), "pair-vmac-mismatch", nil, "carp_vmac differs between %s and %s: after a failover the switch learns a different MAC for the virtual address and neighbours keep the stale one until the gratuitous ARP lands", a.name(), b.name())
	}
	c.pfsyncPair(a, b)
}

func addrOrNone(a netip.Addr) string {
	if !a.IsValid() {
		return "not set"
	}
	return a.String()
}

func (c *checker) pfsyncPair(a, b *Node) {
	pa, pb := a.Pfsync, b.Pfsync
	switch {
	case pa == nil && pb == nil:
		return
	case pa == nil || pb == nil:
		has, hasnt := a, b
		if pa == nil {
			has, hasnt = b, a
		}
		c.add(has.Pfsync.Pos, "pair-pfsync-missing", nil, "pfsync is configured on %s but not on %s: states are not replicated", has.name(), hasnt.name())
		return
	}
	for _, x := range []struct{ n, peer *Node }{{a, b}, {b, a}} {
		p := x.n.Pfsync
		if p.SyncPeer.IsValid() {
			if _, ok := x.peer.OwnAddr(p.SyncPeer); !ok {
				c.add(p.Pos, "pair-syncpeer-wrong", nil, "syncpeer %s is not an address of %s: state updates go elsewhere", p.SyncPeer, x.peer.name())
			}
		}
	}
	if !pa.SyncPeer.IsValid() && !pb.SyncPeer.IsValid() {
		ia, ib := a.Interface(pa.SyncDev), b.Interface(pb.SyncDev)
		if ia != nil && ib != nil && !ia.DHCP && !ib.DHCP && len(ia.Addrs) > 0 && len(ib.Addrs) > 0 {
			shared := false
			for _, y := range ib.Addrs {
				if inSubnet(ia, y.Prefix.Addr()) {
					shared = true
				}
			}
			if !shared {
				c.add(pb.Pos, "pair-pfsync-unreachable", []Pos{pa.Pos}, "the pfsync links %s (%s) and %s (%s) share no subnet: multicast updates do not reach the peer", pa.SyncDev, a.name(), pb.SyncDev, b.name())
			}
		}
	}
	if !bytes.Equal(a.PfsyncKey, b.PfsyncKey) {
		c.add(firstPos(b.PfsyncKeyPos, a.PfsyncKeyPos, pb.Pos), "pair-pfsync-key-mismatch", nil, "the pfsync keys of %s and %s differ: each drops the other's state updates", a.name(), b.name())
	}
}
