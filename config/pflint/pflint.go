// Package pflint owns the pf.conf lints of `pfcarp check`: it parses and
// expands a node's pf.conf with package pfconf, as the node itself would see
// its interfaces (carpN resolves to the node's virtual addresses, physical
// interfaces to the rc.conf's addresses), and reports rules that break a
// CARP + pfsync pair: NAT to the node's own address instead of a CARP
// address, rdr of addresses that do not move on failover, filter rules
// that can drop CARP advertisements, pfsync messages or redirected
// traffic, CARP passed with keep state, and a ruleset that blocks nothing
// (so "set block-policy" does nothing). For a pair (LintRulesPair) it
// compares the two nodes' expanded rulesets, reading the second node's
// interface names and own addresses as the first's (see LintRulesPair for
// what counts as an expected difference).
//
// It does not ask the running machine anything (the base host it resolves
// through has only a loopback), load rules or touch the kernel, and it does
// not look inside anchors: rules loaded into an anchor at run time are
// unknown, so the filter analysis ignores anchor calls. Lint IDs and
// severities live in config.Lints and are documented in package config.
//
// The filter analysis follows pf's evaluation (the first matching quick
// rule, else the last matching rule, else pass) over one packet shape: a
// block rule is reported when it could match that packet and no pass rule
// that surely matches it comes before it with quick, or after it. "Could"
// is generous (negations, users, probabilities may match; a table is taken
// not to hold the peer, "! <table>" to match it); "surely" is strict
// (tables, tags, users, probabilities never surely match), so the lints
// report possible drops, not only certain ones. One exception keeps them
// quiet on ordinary rulesets: for an rdr from any source, a block rule
// naming particular sources (antispoof, a banned network) is not reported,
// since dropping some clients is its purpose.
package pflint

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pfcarp/pfcarp/config"
	"github.com/pfcarp/pfcarp/netdb"
	"github.com/pfcarp/pfcarp/pfconf"
	"github.com/pfcarp/pfcarp/pfload"
)

// IP protocol numbers the lints look for.
const (
	protoTCP    = 6
	protoCARP   = 112
	protoPfsync = 240
)

// Linter lints a node's pf.conf; it implements config.RulesLinter. The
// zero value is usable. A Linter is safe for concurrent use.
type Linter struct {
	// ReadFile reads files the pf.conf includes (include, table files,
	// load anchor), with paths as written; nil means os.ReadFile.
	ReadFile func(name string) ([]byte, error)
}

var _ config.RulesLinter = (*Linter)(nil)

// baseHost is what the lints resolve through below the node: only a
// loopback (both its Linux and its BSD name), so the result never depends
// on the machine check runs on.
func baseHost() netdb.Host {
	lo := []netdb.IfAddr{{Prefix: netip.MustParsePrefix("::1/128")}, {Prefix: netip.MustParsePrefix("127.0.0.1/8")}}
	return &netdb.Fixed{Interfaces: []netdb.Interface{{Name: "lo", Addrs: lo}, {Name: "lo0", Addrs: lo}}}
}

// LintRules parses and expands src (n's pf_rules) with the files of its
// load anchor statements, as pfctl and the daemon load them, and lints the
// ruleset. Parse and expansion errors, in the file or an anchor file, are
// reported as pf-rules-error and stop the lints: pfctl would not load such
// a file.
func (l *Linter) LintRules(n *config.Node, src []byte) (out config.Diags) {
	name := n.PF.RulesPath
	defer func() {
		if e := recover(); e != nil {
			out = append(out, diag(config.Pos{File: name}, "pf-rules-error", nil, "internal error while linting (please report it): %v", e))
		}
	}()
	rs, err := l.load(n, src)
	if err != nil {
		return errDiags(name, err)
	}
	c := &checker{n: n, rs: rs.Rules, host: rs.Host, seen: map[string]bool{}, loaded: map[string]*pfconf.Ruleset{}}
	for _, a := range rs.Anchors {
		c.loaded[a.Path] = a.Rules
	}
	c.natOwn()
	c.rdrDst()
	c.carpBlocked()
	c.pfsync()
	c.rdrBlocked()
	c.noBlock()
	c.carpKeepState()
	return c.out
}

// load reads src (n's pf_rules) as pfctl -f would on n, names resolved
// through n's config over baseHost.
func (l *Linter) load(n *config.Node, src []byte) (*pfload.Ruleset, error) {
	if src == nil {
		src = []byte{}
	}
	return pfload.Load(pfload.Input{Name: n.PF.RulesPath, Src: src, ReadFile: l.ReadFile, Host: n.Host(baseHost())})
}

func errDiags(name string, err error) config.Diags {
	var el *pfconf.ErrorList
	var ae *pfload.AnchorError
	if errors.As(err, &ae) && !errors.As(err, &el) {
		p := config.Pos{File: ae.Anchor.At.Filename, Line: ae.Anchor.At.Line, Col: ae.Anchor.At.Column}
		if p.File == "" {
			p.File = name
		}
		msg := strings.TrimPrefix(ae.Error(), ae.Anchor.At.String()+": ")
		return config.Diags{diag(p, "pf-rules-error", nil, "%s; pfctl would not load it", msg)}
	}
	if !errors.As(err, &el) || el.Len() == 0 {
		msg := "cannot be parsed"
		if err != nil {
			msg = err.Error()
		}
		return config.Diags{diag(config.Pos{File: name}, "pf-rules-error", nil, "%s; pfctl would not load it", msg)}
	}
	var out config.Diags
	for _, e := range el.List {
		p := config.Pos{File: e.Pos.Filename, Line: e.Pos.Line, Col: e.Pos.Column}
		if p.File == "" {
			p.File = name
		}
		out = append(out, diag(p, "pf-rules-error", nil, "%s", e.Msg))
	}
	if el.Dropped > 0 {
		out = append(out, diag(config.Pos{File: name}, "pf-rules-error", nil, "%d more errors not shown", el.Dropped))
	}
	return out
}

func severity(id string) config.Severity {
	for _, l := range config.Lints {
		if l.ID == id {
			return l.Severity
		}
	}
	return config.Warning
}

func diag(p config.Pos, id string, related []config.Pos, format string, args ...any) config.Diag {
	return config.Diag{Pos: p, Severity: severity(id), ID: id, Msg: fmt.Sprintf(format, args...), Related: related}
}

type checker struct {
	n    *config.Node
	rs   *pfconf.Ruleset
	host netdb.Host
	out  config.Diags
	seen map[string]bool
	// loaded are the rulesets "load anchor" put in anchors, by path
	loaded map[string]*pfconf.Ruleset
}

// add reports once per position, ID and message: a rule written once but
// expanded to several (lists) says the same thing once.
func (c *checker) add(r *pfconf.Rule, id string, related []config.Pos, format string, args ...any) {
	d := diag(c.pos(r.Pos), id, related, format, args...)
	if k := d.String(); !c.seen[k] {
		c.seen[k] = true
		c.out = append(c.out, d)
	}
}

func (c *checker) pos(p pfconf.Pos) config.Pos {
	q := c.rs.Sources.Position(p)
	if q.Filename == "" {
		q.Filename = c.n.PF.RulesPath
	}
	return config.Pos{File: q.Filename, Line: q.Line, Col: q.Column}
}

// nodeName is how messages call the node: its host name's first label, or
// the rc.conf's base name.
func (c *checker) nodeName() string {
	if h, _, _ := strings.Cut(c.n.Hostname, "."); h != "" {
		return h
	}
	return filepath.Base(c.n.File)
}

// groupOn returns the first CARP group whose parent is dev.
func (c *checker) groupOn(dev string) *config.CARPGroup {
	for _, g := range c.n.CARP {
		if g.Dev == dev {
			return g
		}
	}
	return nil
}

func (c *checker) isGroupName(name string) bool {
	if name == "carp" {
		return true
	}
	for _, g := range c.n.CARP {
		if g.Name != "" && g.Name == name {
			return true
		}
	}
	return false
}

// vipFix names how to write a group's address in pf.conf: "carp0
// (192.168.1.51)" or just the address for the FreeBSD >= 10 form.
func vipFix(g *config.CARPGroup, af pfconf.AF) string {
	var a netip.Addr
	for _, v := range g.VIPs {
		if !a.IsValid() || af == pfconf.AFInet6 && v.Prefix.Addr().Is6() && a.Is4() || af == pfconf.AFInet && v.Prefix.Addr().Is4() && a.Is6() {
			a = v.Prefix.Addr()
		}
	}
	if g.Name != "" {
		return fmt.Sprintf("%s, %s", g.Name, a)
	}
	return a.String()
}

func fullBits(a netip.Addr) int { return a.BitLen() }

// ownTarget reports whether a (a translation or destination address) is the
// node's own address on a physical interface: a host address configured
// there, or the dynamic address "(if)" of such an interface. It returns the
// interface and how to print the address.
func (c *checker) ownTarget(a pfconf.Addr) (*config.Interface, string, bool) {
	switch a.Type {
	case pfconf.AddrMask:
		if a.Addr.IsValid() && a.Bits == fullBits(a.Addr) {
			if ifc, ok := c.n.OwnAddr(a.Addr); ok {
				return ifc, a.Addr.String(), true
			}
		}
	case pfconf.AddrDynIf:
		if a.IfFlags&(pfconf.IfNetwork|pfconf.IfBroadcast|pfconf.IfPeer) != 0 || c.isGroupName(a.Name) {
			return nil, "", false
		}
		if ifc := c.n.Interface(a.Name); ifc != nil {
			return ifc, "(" + a.Name + ")", true
		}
	}
	return nil, "", false
}

// natOwn is nat-to-own-address.
func (c *checker) natOwn() {
	if len(c.n.CARP) == 0 {
		return
	}
	check := func(r *pfconf.Rule, kind string, pool *pfconf.Pool) {
		for _, pa := range pool.Addrs {
			ifc, what, ok := c.ownTarget(pa.Addr)
			if !ok {
				continue
			}
			g := c.groupOn(ifc.Name)
			if g == nil {
				continue // no CARP address on that segment to use instead
			}
			c.add(r, "nat-to-own-address", []config.Pos{g.Pos},
				"%s translates to %s, %s's own address on %s, not a CARP address: after a failover the new master gets these NAT states through pfsync but not the address, and replies to it still go to the failed node, so every NATed connection open at failover breaks; translate to the CARP address instead (-> %s)",
				kind, what, c.nodeName(), ifc.Name, vipFix(g, r.AF))
		}
	}
	for _, r := range c.rs.Main.NAT {
		if r.Action == pfconf.ActNAT {
			check(r, "nat", &r.NAT)
		}
	}
	for _, r := range c.rs.Main.BINAT {
		if r.Action == pfconf.ActBINAT {
			check(r, "binat", &r.NAT)
		}
	}
	for _, r := range c.rs.Main.Filter {
		if (r.Action == pfconf.ActPass || r.Action == pfconf.ActMatch) && r.Anchor == nil {
			check(r, "nat-to", &r.NAT)
		}
	}
}

// rdrOnParent reports the CARP group whose parent an rdr rule can apply on,
// or nil.
func (c *checker) rdrOnParent(r *pfconf.Rule) *config.CARPGroup {
	for _, g := range c.n.CARP {
		if g.Dev == "" {
			continue
		}
		if r.Ifname == "" || (r.Ifname == g.Dev) != r.IfNot {
			return g
		}
	}
	return nil
}

// rdrDst is rdr-to-own-address and rdr-not-to-vip.
func (c *checker) rdrDst() {
	check := func(r *pfconf.Rule, kind string) {
		g := c.rdrOnParent(r)
		if g == nil || r.Dst.Neg {
			return
		}
		on := "every interface"
		if r.Ifname != "" && !r.IfNot {
			on = r.Ifname
		}
		if ifc, what, ok := c.ownTarget(r.Dst.Addr); ok {
			c.add(r, "rdr-to-own-address", []config.Pos{g.Pos},
				"%s on %s matches connections to %s, %s's own address on %s, not a CARP address: the service does not move on failover and dies with this node, and while this node is BACKUP the servers' replies leave through the MASTER (their route to the CARP address), which has no state for them; match the CARP address instead (to %s)",
				kind, on, what, c.nodeName(), ifc.Name, vipFix(g, r.AF))
			return
		}
		a := r.Dst.Addr
		var own netip.Addr
		for _, ifc := range c.n.Interfaces {
			for _, ia := range ifc.Addrs {
				if a.IsAny() || a.Type == pfconf.AddrMask && netip.PrefixFrom(a.Addr, a.Bits).Contains(ia.Prefix.Addr()) {
					if !own.IsValid() {
						own = ia.Prefix.Addr()
					}
				}
			}
		}
		if !own.IsValid() {
			return
		}
		what := "any destination"
		if !a.IsAny() {
			what = netip.PrefixFrom(a.Addr, a.Bits).String()
		}
		c.add(r, "rdr-not-to-vip", []config.Pos{g.Pos},
			"%s on %s matches %s, not only the CARP address: it also redirects connections to %s's own address %s (on the backup too, whose servers' replies then leave through the master, which has no state for them) and any traffic routed through on those ports; match the CARP address (to %s)",
			kind, on, what, c.nodeName(), own, vipFix(g, r.AF))
	}
	if len(c.n.CARP) == 0 {
		return
	}
	for _, r := range c.rs.Main.RDR {
		if r.Action == pfconf.ActRDR {
			check(r, "rdr")
		}
	}
	for _, r := range c.rs.Main.Filter {
		if (r.Action == pfconf.ActPass || r.Action == pfconf.ActMatch) && r.Anchor == nil && !r.RDR.Empty() {
			check(r, "rdr-to")
		}
	}
}

// pfsync is pfsync-blocked and pfsync-state-synced.
func (c *checker) pfsync() {
	p := c.n.Pfsync
	if p == nil {
		return
	}
	for _, r := range c.rs.Main.Filter {
		if r.Action == pfconf.ActPass && r.Anchor == nil && r.Proto == protoPfsync && r.KeepState != pfconf.StateNone && !r.StateOpts.NoSync {
			c.add(r, "pfsync-state-synced", []config.Pos{p.Pos},
				"pfsync's own traffic is passed with keep state but without (no-sync): pfsync then sends the peer an update for the state of every pfsync exchange, traffic that only feeds itself; write keep state (no-sync)")
		}
	}
	dev := p.SyncDev
	if dev == "" {
		for _, ifc := range c.n.Interfaces {
			for _, a := range ifc.Addrs {
				if p.SyncPeer.IsValid() && a.Prefix.Masked().Contains(p.SyncPeer) {
					dev = ifc.Name
				}
			}
		}
	}
	if dev == "" {
		return
	}
	group := netip.MustParseAddr("224.0.0.240")
	dstOut, dstIn := []netip.Addr{group}, []netip.Addr{group}
	af := pfconf.AFInet
	if p.SyncPeer.IsValid() {
		dstOut = []netip.Addr{p.SyncPeer}
		dstIn = c.ownAddrs(dev, p.SyncPeer.Is6())
		if p.SyncPeer.Is6() {
			af = pfconf.AFInet6
		}
	}
	for _, dir := range []pfconf.Direction{pfconf.DirIn, pfconf.DirOut} {
		pk := c.protoPacket(dev, dir, af, protoPfsync, p.SyncPeer, dstOut, dstIn)
		if b := c.blockedBy(pk); b != nil {
			c.add(b, "pfsync-blocked", []config.Pos{p.Pos},
				"this block rule can drop pfsync messages (IP protocol 240) %s on %s, and no pass rule for them comes before it with quick or after it: states are not replicated and every connection breaks on failover; add \"pass quick on %s proto pfsync keep state (no-sync)\" before it",
				dirWord(dir), dev, dev)
		}
	}
}

func dirWord(d pfconf.Direction) string {
	if d == pfconf.DirIn {
		return "inbound"
	}
	return "outbound"
}

// ownAddrs are the node's addresses on dev of one family.
func (c *checker) ownAddrs(dev string, v6 bool) []netip.Addr {
	var out []netip.Addr
	if ifc := c.n.Interface(dev); ifc != nil {
		for _, a := range ifc.Addrs {
			if a.Prefix.Addr().Is6() == v6 {
				out = append(out, a.Prefix.Addr())
			}
		}
	}
	return out
}

func anyPrefix(v6 bool) netip.Prefix {
	if v6 {
		return netip.MustParsePrefix("::/0")
	}
	return netip.MustParsePrefix("0.0.0.0/0")
}

func hosts(as []netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range as {
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out
}

// protoPacket is the shape of a CARP or pfsync packet on dev: outbound from
// the node's own address to dstOut; inbound from the peer (peer, or else
// some other address of dev's subnets) to dstIn.
func (c *checker) protoPacket(dev string, dir pfconf.Direction, af pfconf.AF, proto uint8, peer netip.Addr, dstOut, dstIn []netip.Addr) packet {
	v6 := af == pfconf.AFInet6
	pk := packet{ifname: dev, dir: dir, af: af, proto: proto}
	own := c.ownAddrs(dev, v6)
	if dir == pfconf.DirOut {
		pk.src = target{in: hosts(own)}
		pk.dst = target{in: hosts(dstOut)}
	} else {
		if peer.IsValid() {
			pk.src = target{in: hosts([]netip.Addr{peer})}
		} else {
			var nets []netip.Prefix
			if ifc := c.n.Interface(dev); ifc != nil {
				for _, a := range ifc.Addrs {
					if a.Prefix.Addr().Is6() == v6 {
						nets = append(nets, a.Prefix.Masked())
					}
				}
			}
			pk.src = target{in: nets, exclude: own}
			for _, g := range c.n.CARP {
				for _, v := range g.VIPs {
					pk.src.exclude = append(pk.src.exclude, v.Prefix.Addr())
				}
			}
		}
		pk.dst = target{in: hosts(dstIn)}
	}
	if len(pk.src.in) == 0 { // DHCP or unknown: any address
		pk.src = target{in: []netip.Prefix{anyPrefix(v6)}}
	}
	if len(pk.dst.in) == 0 {
		pk.dst = target{in: []netip.Prefix{anyPrefix(v6)}}
	}
	return pk
}

// carpBlocked is carp-blocked: each CARP group's advertisements, in and
// out, on its parent.
func (c *checker) carpBlocked() {
	type key struct {
		dev string
		v6  bool
		dir pfconf.Direction
	}
	done := map[key]bool{}
	for _, g := range c.n.CARP {
		if g.Dev == "" {
			continue
		}
		for _, v := range g.VIPs {
			v6 := v.Prefix.Addr().Is6()
			for _, dir := range []pfconf.Direction{pfconf.DirIn, pfconf.DirOut} {
				k := key{g.Dev, v6, dir}
				if done[k] {
					continue
				}
				done[k] = true
				af, group := pfconf.AFInet, netip.MustParseAddr("224.0.0.18")
				if v6 {
					af, group = pfconf.AFInet6, netip.MustParseAddr("ff02::12")
				}
				dstOut, dstIn := []netip.Addr{group}, []netip.Addr{group}
				if g.Peer.IsValid() {
					dstOut, dstIn = []netip.Addr{g.Peer}, c.ownAddrs(g.Dev, v6)
				}
				pk := c.protoPacket(g.Dev, dir, af, protoCARP, g.Peer, dstOut, dstIn)
				if b := c.blockedBy(pk); b != nil {
					c.add(b, "carp-blocked", []config.Pos{g.Pos},
						"this block rule can drop CARP advertisements (IP protocol 112) %s on %s, and no pass rule for them comes before it with quick or after it: the nodes stop hearing each other and both become MASTER of %s, answering for %s at once; add \"pass quick on %s proto carp\" before it",
						dirWord(dir), g.Dev, g.Label(), strings.Join(vipList(g), " "), g.Dev)
				}
			}
		}
	}
}

func vipList(g *config.CARPGroup) []string {
	var s []string
	for _, v := range g.VIPs {
		s = append(s, v.Prefix.Addr().String())
	}
	return slices.Compact(s)
}

// rdrBlocked is rdr-blocked: a redirected connection's first packet, as
// the filter sees it (destination already translated), inbound on the rdr
// rule's interface and outbound towards the server.
func (c *checker) rdrBlocked() {
	for _, r := range c.rs.Main.RDR {
		if r.Action != pfconf.ActRDR || r.NatPass || r.Ifname == "" || r.IfNot || r.Proto == 0 || r.Src.Neg {
			continue
		}
		src0, ok := c.addrTarget(r.Src.Addr)
		if !ok {
			continue
		}
		var dport uint16
		switch {
		case r.NAT.ProxyPort[0] != 0:
			dport = r.NAT.ProxyPort[0]
		case r.Dst.PortOp == pfconf.OpEQ || r.Dst.PortOp == pfconf.OpRRG:
			dport = r.Dst.Port[0]
		}
		for _, pa := range r.NAT.Addrs {
			dst, ok := c.addrTarget(pa.Addr)
			if !ok {
				continue
			}
			af := r.AF
			if af == pfconf.AFUnspec {
				af = pfconf.AFInet
				if dst.in[0].Addr().Is6() {
					af = pfconf.AFInet6
				}
			}
			src := target{wide: r.Src.Addr.IsAny()}
			for _, p := range src0.in {
				if p.Addr().Is6() == (af == pfconf.AFInet6) {
					src.in = append(src.in, p)
				}
			}
			if len(src.in) == 0 {
				continue
			}
			// Redirected traffic comes from elsewhere: never from the
			// node's own or virtual addresses (antispoof blocks those).
			for _, ifc := range c.n.Interfaces {
				for _, a := range ifc.Addrs {
					src.exclude = append(src.exclude, a.Prefix.Addr())
				}
			}
			for _, g := range c.n.CARP {
				for _, v := range g.VIPs {
					src.exclude = append(src.exclude, v.Prefix.Addr())
				}
			}
			pks := []packet{{ifname: r.Ifname, dir: pfconf.DirIn, af: af, proto: r.Proto, src: src, dst: dst, dport: dport}}
			if out := c.ifaceFor(dst.in[0]); out != "" {
				pks = append(pks, packet{ifname: out, dir: pfconf.DirOut, af: af, proto: r.Proto, src: src, dst: dst, dport: dport})
			}
			for _, pk := range pks {
				if b := c.blockedBy(pk); b != nil {
					c.add(r, "rdr-blocked", []config.Pos{c.pos(b.Pos)},
						"connections this rdr redirects to %s can be dropped %s on %s by the block rule at line %d, and no pass rule for the redirected traffic comes before it with quick or after it (the filter sees the translated destination); add a pass rule for it (e.g. \"pass %s on %s proto %s to %s%s\") or write \"rdr pass\"",
						dst.in[0], dirWord(pk.dir), pk.ifname, c.pos(b.Pos).Line, dirKw(pk.dir), pk.ifname, protoName(r.Proto), dst.in[0], portSuffix(dport))
				}
			}
		}
	}
}

func dirKw(d pfconf.Direction) string {
	if d == pfconf.DirIn {
		return "in"
	}
	return "out"
}

func portSuffix(p uint16) string {
	if p == 0 {
		return ""
	}
	return fmt.Sprintf(" port %d", p)
}

func protoName(p uint8) string {
	if s, ok := netdb.ProtoByNumber(p); ok {
		return s
	}
	return fmt.Sprint(p)
}

// ifaceFor is the node's interface on whose subnet p lies, or "".
func (c *checker) ifaceFor(p netip.Prefix) string {
	for _, ifc := range c.n.Interfaces {
		for _, a := range ifc.Addrs {
			if a.Prefix.Masked().Contains(p.Addr()) {
				return ifc.Name
			}
		}
	}
	return ""
}

// addrTarget turns a concrete rule address into a target; tables and the
// like are unknown (ok false).
func (c *checker) addrTarget(a pfconf.Addr) (target, bool) {
	ps, known := c.prefixes(a)
	if !known {
		return target{}, false
	}
	if len(ps) == 0 {
		return target{}, false
	}
	return target{in: ps}, true
}

// noBlock is pf-no-block: no rule of the ruleset blocks, so pf passes every
// packet (its default) and "set block-policy" has nothing to act on. Rules
// that anchors receive at run time are unknown, so a ruleset with a load
// anchor or with a call of an anchor it does not define inline is not
// reported.
func (c *checker) noBlock() {
	found, unknown := false, false
	var walk func(a *pfconf.Anchor, path string)
	walk = func(a *pfconf.Anchor, path string) {
		for _, r := range a.Ether {
			found = found || r.Action == pfconf.ActBlock
		}
		for _, r := range a.Filter {
			found = found || r.Action == pfconf.ActBlock
			if r.Anchor == nil {
				continue
			}
			x := r.Anchor
			p := x.Name
			if path != "" {
				p = path + "/" + x.Name
			}
			inline := len(x.Ether)+len(x.Scrub)+len(x.Filter)+len(x.NAT)+len(x.RDR)+len(x.BINAT) > 0
			if inline {
				walk(x, p)
			}
			// a file "load anchor" reads (pfload), checked like the rest
			if l := c.loaded[p]; l != nil {
				walk(l.Main, p)
			} else if !inline {
				unknown = true // filled at run time (relayd, pfctl -a)
			}
		}
	}
	walk(c.rs.Main, "")
	if found || unknown {
		return
	}
	var policy *pfconf.OptionDecl
	for _, d := range c.rs.Decls {
		if o, ok := d.(*pfconf.OptionDecl); ok && o.Name == "block-policy" {
			policy = o
		}
	}
	if policy == nil {
		at := config.Pos{File: c.n.PF.RulesPath}
		for _, list := range [][]*pfconf.Rule{c.rs.Main.Filter, c.rs.Main.NAT, c.rs.Main.RDR, c.rs.Main.BINAT, c.rs.Main.Scrub} {
			if len(list) > 0 {
				at = c.pos(list[0].Pos)
				break
			}
		}
		c.out = append(c.out, diag(at, "pf-no-block", nil,
			"no rule blocks anything: pf passes every packet no rule blocks, so this ruleset filters nothing (the nodes' own services included); if that is intended, ignore this"))
		return
	}
	c.out = append(c.out, diag(c.pos(policy.Pos), "pf-no-block", nil,
		"%s has no effect: no rule blocks anything, and pf passes every packet no rule blocks, so this ruleset filters nothing (the nodes' own services included); add block rules (\"block in all\" and pass rules for what may come in) or drop the option",
		policy.Text))
}

// carpKeepState is carp-keep-state: a pass rule for CARP (proto carp or
// 112) that keeps state. pf creates states for the advertisements; when
// the state table is full an advertisement needing a new state is dropped
// and the peer turns MASTER too. pfcarp's daemon exempts CARP and pfsync
// from conntrack (daemon/notrack_linux.go), so on Linux the rule creates no
// state while the daemon runs; the note is for the same pf.conf under pf,
// and for a ruleset that says what it does. Rules without a protocol (pass
// all) also keep state for CARP under pf; they are not reported.
func (c *checker) carpKeepState() {
	if len(c.n.CARP) == 0 {
		return
	}
	for _, r := range c.rs.Main.Filter {
		if r.Action != pfconf.ActPass || r.Anchor != nil || r.Proto != protoCARP || r.KeepState == pfconf.StateNone {
			continue
		}
		c.add(r, "carp-keep-state", nil,
			"CARP advertisements (IP protocol 112) are passed with keep state: under pf that creates states for them, and when the state table is full (set limit states) an advertisement needing a new state is dropped and the peer becomes MASTER too; CARP needs no state: write \"no state\" (on Linux pfcarp's daemon exempts CARP and pfsync from conntrack, nftables table pfcarp_ha, so there this keep state creates nothing)")
	}
}
