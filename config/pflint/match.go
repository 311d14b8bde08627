package pflint

import (
	"net/netip"
	"slices"

	"github.com/pfcarp/pfcarp/pfconf"
)

// target is the set of addresses one side of a packet may have: somewhere
// in one of in, but not one of exclude.
//
// A wide target stands for "any address" (an rdr from any): a rule naming
// particular sources is not taken to match it, since it drops only some of
// that traffic (spoofed or banned sources), which is its purpose.
type target struct {
	in      []netip.Prefix
	exclude []netip.Addr
	wide    bool
}

// packet is the shape of the packets a lint asks about.
type packet struct {
	ifname   string
	dir      pfconf.Direction // DirIn or DirOut
	af       pfconf.AF
	proto    uint8
	src, dst target
	dport    uint16 // 0: unknown or none
}

// blockedBy returns a block rule that can decide to drop pk, or nil. pf
// takes the first matching quick rule, else the last matching rule, else
// passes; so a block rule that could match drops pk unless a pass rule that
// surely matches comes before it with quick, or anywhere after it (a later
// block is judged on its own).
func (c *checker) blockedBy(pk packet) *pfconf.Rule {
	if slices.Contains(c.rs.Options.Skip, pk.ifname) {
		return nil
	}
	rules := c.rs.Main.Filter
	for i, r := range rules {
		if r.Anchor != nil {
			continue
		}
		switch r.Action {
		case pfconf.ActPass:
			if r.Quick && c.surely(r, pk) {
				return nil
			}
		case pfconf.ActBlock:
			if !c.could(r, pk) {
				continue
			}
			if r.Quick {
				return r
			}
			overridden := false
			for _, q := range rules[i+1:] {
				if q.Anchor == nil && q.Action == pfconf.ActPass && c.surely(q, pk) {
					overridden = true
					break
				}
			}
			if !overridden {
				return r
			}
		}
	}
	return nil
}

// common are the criteria could and surely judge alike.
func common(r *pfconf.Rule, pk packet) bool {
	if r.Ifname != "" && (r.Ifname == pk.ifname) == r.IfNot {
		return false
	}
	if r.Direction != pfconf.DirAny && r.Direction != pk.dir {
		return false
	}
	if r.AF != pfconf.AFUnspec && r.AF != pk.af {
		return false
	}
	if r.Proto != 0 && r.Proto != pk.proto {
		return false
	}
	if r.ICMPType != 0 || r.OS != "" && pk.proto != protoTCP {
		return false
	}
	if pk.proto == protoTCP && r.FlagSet != 0 && 0x02&r.FlagSet != r.Flags {
		return false // the connection's first packet is a SYN
	}
	return true
}

// could reports whether r may match pk: anything not known to exclude it
// counts as matching.
func (c *checker) could(r *pfconf.Rule, pk packet) bool {
	if !common(r, pk) || r.Tagged != "" && !r.TaggedNot || r.Fragment {
		return false
	}
	if r.Dst.PortOp != pfconf.OpNone && pk.dport != 0 && !portMatch(r.Dst.PortOp, r.Dst.Port, pk.dport) {
		return false
	}
	return c.couldAddr(r.Src, pk.src) && c.couldAddr(r.Dst, pk.dst)
}

// surely reports whether r matches every packet of shape pk.
func (c *checker) surely(r *pfconf.Rule, pk packet) bool {
	if !common(r, pk) || r.Tagged != "" || r.UID.Set || r.GID.Set || r.OS != "" || r.RcvIfname != "" ||
		r.Prob != 0 || r.Once || r.Fragment || r.MaxPktRate.Limit != 0 || r.MaxPktSize != 0 || r.Src.PortOp != pfconf.OpNone {
		return false
	}
	if r.Dst.PortOp != pfconf.OpNone && (pk.dport == 0 || !portMatch(r.Dst.PortOp, r.Dst.Port, pk.dport)) {
		return false
	}
	return c.surelyAddr(r.Src, pk.src) && c.surelyAddr(r.Dst, pk.dst)
}

// prefixes resolves a rule address to prefixes; known is false for what
// the lints cannot resolve (tables, ranges, no-route, urpf-failed).
func (c *checker) prefixes(a pfconf.Addr) (ps []netip.Prefix, known bool) {
	switch a.Type {
	case pfconf.AddrMask:
		if !a.Addr.IsValid() {
			return []netip.Prefix{anyPrefix(false), anyPrefix(true)}, true
		}
		return []netip.Prefix{netip.PrefixFrom(a.Addr, a.Bits)}, true
	case pfconf.AddrDynIf:
		addrs, ok := c.host.InterfaceAddrs(a.Name)
		if !ok || a.IfFlags&(pfconf.IfBroadcast|pfconf.IfPeer) != 0 {
			return nil, false
		}
		for i, ia := range addrs {
			if a.IfFlags&pfconf.IfNoAlias != 0 && i > 0 && ia.Prefix.Addr().Is4() == addrs[0].Prefix.Addr().Is4() {
				continue
			}
			p := netip.PrefixFrom(ia.Prefix.Addr(), ia.Prefix.Addr().BitLen())
			if a.IfFlags&pfconf.IfNetwork != 0 {
				p = ia.Prefix.Masked()
			}
			ps = append(ps, p)
		}
		return ps, true
	}
	return nil, false
}

func contains(outer, inner netip.Prefix) bool {
	return outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}

func (c *checker) couldAddr(ra pfconf.RuleAddr, t target) bool {
	ps, known := c.prefixes(ra.Addr)
	if !known {
		// A table may hold the address or not: "X" is taken not to
		// match (tables list hosts to block, not the peer), "! X" to
		// match (it is usually "not our trusted hosts").
		return ra.Neg
	}
	if ra.Neg {
		// "! X" can match unless X holds every address of t.
		for _, p := range t.in {
			if !slices.ContainsFunc(ps, func(q netip.Prefix) bool { return contains(q, p) }) {
				return true
			}
		}
		return false
	}
	for _, q := range ps {
		if t.wide && q.Bits() != 0 {
			continue
		}
		for _, p := range t.in {
			if !q.Overlaps(p) {
				continue
			}
			if q.IsSingleIP() && slices.Contains(t.exclude, q.Addr()) {
				continue
			}
			return true
		}
	}
	return false
}

func (c *checker) surelyAddr(ra pfconf.RuleAddr, t target) bool {
	ps, known := c.prefixes(ra.Addr)
	if !known {
		return false
	}
	if ra.Neg {
		for _, q := range ps {
			for _, p := range t.in {
				if q.Overlaps(p) {
					return false
				}
			}
		}
		return true
	}
	for _, p := range t.in {
		if !slices.ContainsFunc(ps, func(q netip.Prefix) bool { return contains(q, p) }) {
			return false
		}
	}
	return true
}

// portMatch evaluates a pf port comparison for port p.
func portMatch(op pfconf.PortOp, v [2]uint16, p uint16) bool {
	switch op {
	case pfconf.OpNone:
		return true
	case pfconf.OpEQ:
		return p == v[0]
	case pfconf.OpNE:
		return p != v[0]
	case pfconf.OpLT:
		return p < v[0]
	case pfconf.OpLE:
		return p <= v[0]
	case pfconf.OpGT:
		return p > v[0]
	case pfconf.OpGE:
		return p >= v[0]
	case pfconf.OpIRG:
		return p > v[0] && p < v[1]
	case pfconf.OpXRG:
		return p < v[0] || p > v[1]
	case pfconf.OpRRG:
		return p >= v[0] && p <= v[1]
	}
	return true
}
