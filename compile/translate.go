package compile

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/pfconf"
)

// maxPoolAddrs bounds how many addresses a pool given as a network, range
// or table may expand to.
const maxPoolAddrs = 4096

// natRule compiles an old-style nat or no nat rule into the nat chain.
func (c *compiler) natRule(r *pfconf.Rule) {
	if c.transCall(r, nft.KindNAT) { // nat-, rdr-, binat-anchor: anchor.go
		return
	}
	if !c.refuseAll(r) || !c.checkPrio(r) {
		return
	}
	switch r.Action {
	case pfconf.ActNAT:
		c.translation(r, nft.KindNAT, r.NAT, false)
	case pfconf.ActNoNAT:
		c.noTranslation(r, nft.KindNAT, false)
	}
}

// rdrRule compiles an old-style rdr or no rdr rule into the rdr chain.
func (c *compiler) rdrRule(r *pfconf.Rule) {
	if c.transCall(r, nft.KindRDR) { // nat-, rdr-, binat-anchor: anchor.go
		return
	}
	if !c.refuseAll(r) || !c.checkPrio(r) {
		return
	}
	switch r.Action {
	case pfconf.ActRDR:
		c.translation(r, nft.KindRDR, r.NAT, true)
	case pfconf.ActNoRDR:
		c.noTranslation(r, nft.KindRDR, true)
	}
}

// binat compiles binat (both directions) and no binat.
func (c *compiler) binat(r *pfconf.Rule) {
	if c.transCall(r, nft.KindBINAT) { // nat-, rdr-, binat-anchor: anchor.go
		return
	}
	if !c.refuseAll(r) || !c.checkPrio(r) {
		return
	}
	if r.Action == pfconf.ActNoBINAT {
		c.noTranslation(r, nft.KindBINAT, false)
		c.noTranslation(r, nft.KindBINAT, true)
		return
	}
	if len(r.NAT.Addrs) != 1 || r.NAT.Addrs[0].Addr.Type != pfconf.AddrMask || !r.NAT.Addrs[0].Addr.Addr.IsValid() {
		c.refuse(r, "binat needs one translation address or network")
		return
	}
	if r.Src.Addr.Type != pfconf.AddrMask || !r.Src.Addr.Addr.IsValid() || r.Src.Neg {
		c.refuse(r, "binat needs an address or network as its source")
		return
	}
	inside := netip.PrefixFrom(r.Src.Addr.Addr, r.Src.Addr.Bits).Masked()
	outside := netip.PrefixFrom(r.NAT.Addrs[0].Addr.Addr, r.NAT.Addrs[0].Addr.Bits).Masked()
	if inside.Bits() != outside.Bits() || inside.Addr().Is4() != outside.Addr().Is4() {
		c.refuse(r, "binat maps %s to %s: the networks must have the same size and family", inside, outside)
		return
	}
	fam := byte(famV4)
	if inside.Addr().Is6() {
		fam = famV6
	}
	part := 0
	// Outbound: source inside -> outside.
	b := &builder{}
	b.counter()
	if !c.match(b, r, matchOpts{out: true, fam: fam}) {
		return
	}
	c.natTo(b, r, false, fam, inside, outside)
	c.nat = append(c.nat, b.rule(nft.Ref{Kind: nft.KindBINAT, Nr: c.nr(r), Part: part}))
	// Inbound: destination outside -> inside, from the rule's "to".
	in := *r
	in.Src = r.Dst
	in.Dst = pfconf.RuleAddr{Addr: r.NAT.Addrs[0].Addr}
	b = &builder{}
	b.counter()
	if !c.match(b, &in, matchOpts{fam: fam}) {
		return
	}
	c.natTo(b, r, true, fam, outside, inside)
	c.rdr = append(c.rdr, b.rule(nft.Ref{Kind: nft.KindBINAT, Nr: c.nr(r), Part: part}))
}

// natTo adds a 1:1 prefix translation from -> to (binat).
func (c *compiler) natTo(b *builder, r *pfconf.Rule, dnat bool, fam byte, from, to netip.Prefix) {
	last := prefixLast(to)
	typ, kw := expr.NATTypeSourceNAT, "snat"
	if dnat {
		typ, kw = expr.NATTypeDestNAT, "dnat"
	}
	b.counter()
	c.translationMarks(b, r)
	if to.IsSingleIP() {
		b.add(fmt.Sprintf("%s %s to %s", kw, ipWord(fam), to.Addr()),
			&expr.Immediate{Register: 1, Data: to.Addr().AsSlice()},
			&expr.NAT{Type: typ, Family: uint32(fam), RegAddrMin: 1})
		return
	}
	b.add(fmt.Sprintf("%s %s prefix to %s", kw, ipWord(fam), to),
		&expr.Immediate{Register: 1, Data: to.Addr().AsSlice()},
		&expr.Immediate{Register: 2, Data: last.AsSlice()},
		&expr.NAT{Type: typ, Family: uint32(fam), RegAddrMin: 1, RegAddrMax: 2, Prefix: true})
}

func ipWord(fam byte) string {
	if fam == famV6 {
		return "ip6"
	}
	return "ip"
}

func prefixLast(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := range b {
		lo := i * 8
		switch {
		case lo >= p.Bits():
			b[i] = 0xff
		case lo+8 > p.Bits():
			b[i] |= 0xff >> uint(p.Bits()-lo)
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// noTranslation compiles "no nat" / "no rdr" / "no binat": stop looking
// for a translation.
func (c *compiler) noTranslation(r *pfconf.Rule, kind nft.Kind, dnat bool) {
	if !c.translationAddrsOK(r) {
		return
	}
	for i, fam := range ruleFamilies(r) {
		b := &builder{}
		b.counter()
		if !c.match(b, r, matchOpts{out: !dnat, fam: fam}) {
			return
		}
		b.counter()
		b.add("accept", &expr.Verdict{Kind: expr.VerdictAccept})
		ref := nft.Ref{Kind: kind, Nr: c.nr(r), Part: i}
		if dnat {
			c.rdr = append(c.rdr, b.rule(ref))
		} else {
			c.nat = append(c.nat, b.rule(ref))
		}
	}
}

// poolFamilies returns the families r's translation rules need.
func poolFamilies(r *pfconf.Rule, pool pfconf.Pool) []byte {
	fams := ruleFamilies(r)
	if len(fams) == 1 && fams[0] != famAny {
		return fams
	}
	var v4, v6, agnostic bool
	for _, a := range pool.Addrs {
		switch a.Addr.Type {
		case pfconf.AddrMask, pfconf.AddrRange:
			if a.Addr.Addr.Is4() {
				v4 = true
			} else {
				v6 = true
			}
		default:
			agnostic = true
		}
	}
	var out []byte
	if v4 || agnostic {
		out = append(out, famV4)
	}
	if v6 || agnostic {
		out = append(out, famV6)
	}
	return out
}

// poolAddrs returns the pool's addresses of family fam, expanding
// networks, ranges and tables.
func (c *compiler) poolAddrs(pool pfconf.Pool, fam byte) ([]netip.Addr, string) {
	var out []netip.Addr
	addRange := func(from, to netip.Addr) string {
		for a := from; ; a = a.Next() {
			if len(out) >= maxPoolAddrs {
				return fmt.Sprintf("the pool has more than %d addresses", maxPoolAddrs)
			}
			out = append(out, a)
			if a == to {
				return ""
			}
		}
	}
	for _, pa := range pool.Addrs {
		a := pa.Addr
		switch a.Type {
		case pfconf.AddrMask:
			if !a.Addr.IsValid() || a.Addr.Is4() != (fam == famV4) {
				continue
			}
			p := netip.PrefixFrom(a.Addr, a.Bits).Masked()
			if msg := addRange(p.Addr(), prefixLast(p)); msg != "" {
				return nil, msg
			}
		case pfconf.AddrRange:
			if a.Addr.Is4() != (fam == famV4) {
				continue
			}
			if msg := addRange(a.Addr, a.To); msg != "" {
				return nil, msg
			}
		case pfconf.AddrTable:
			ts := c.table(a.Name)
			set := ts.v4
			if fam == famV6 {
				set = ts.v6
			}
			for _, rg := range nft.MergePrefixes(set.Prefixes) {
				if msg := addRange(rg.From, rg.To); msg != "" {
					return nil, msg
				}
			}
		case pfconf.AddrDynIf:
			return nil, fmt.Sprintf("pool address %s: an interface's address is supported as the only address of a pool, not among others", addrString(a))
		default:
			return nil, fmt.Sprintf("pool address %s is not supported here", addrString(a))
		}
	}
	return out, ""
}

// translation compiles one translation pool of rule r into the rdr chain
// (dnat) or the nat chain.
func (c *compiler) translation(r *pfconf.Rule, kind nft.Kind, pool pfconf.Pool, dnat bool) {
	if !c.translationAddrsOK(r) {
		return
	}
	if pool.EndpointIndependent || pool.MapE.Offset != 0 {
		c.refuse(r, "endpoint-independent and map-e-portset are not supported")
		return
	}
	// Masquerade: nat to the outgoing interface's own address.
	if len(pool.Addrs) == 0 {
		c.refuse(r, "the translation has no target address")
		return
	}
	if a := pool.Addrs[0].Addr; !dnat && len(pool.Addrs) == 1 && a.Type == pfconf.AddrDynIf &&
		r.Ifname != "" && a.Name == r.Ifname && !r.IfNot && a.IfFlags&^pfconf.IfNoAlias == 0 && a.Bits >= 128 {
		fams := ruleFamilies(r)
		if len(fams) > 1 && !addrNeedsFamily(r.Src.Addr) && !addrNeedsFamily(r.Dst.Addr) {
			fams = []byte{famAny} // one masquerade rule serves both
		}
		for i, fam := range fams {
			b := &builder{}
			b.counter()
			if !c.match(b, r, matchOpts{out: true, fam: fam}) {
				return
			}
			b.counter()
			c.translationMarks(b, r)
			m := &expr.Masq{}
			text := "masquerade"
			if c.portsApply(r) && (pool.ProxyPort[0] != 0 || pool.ProxyPort[1] != 0) {
				b.add("", &expr.Immediate{Register: 3, Data: be16(pool.ProxyPort[0])},
					&expr.Immediate{Register: 4, Data: be16(pool.ProxyPort[1])})
				m.ToPorts, m.RegProtoMin, m.RegProtoMax = true, 3, 4
				text += fmt.Sprintf(" to :%d-%d", pool.ProxyPort[0], pool.ProxyPort[1])
			}
			b.add(text, m)
			c.nat = append(c.nat, b.rule(nft.Ref{Kind: kind, Nr: c.nr(r), Part: i}))
		}
		return
	}
	var dyn *pfconf.Addr
	if len(pool.Addrs) == 1 && pool.Addrs[0].Addr.Type == pfconf.AddrDynIf {
		dyn = &pool.Addrs[0].Addr
		if pool.Sticky || pool.Type == pfconf.PoolBitmask || pool.Type == pfconf.PoolSourceHash || pool.Type == pfconf.PoolRandom {
			c.refuse(r, "a translation to (%s) uses its first address: pool options (sticky-address, bitmask, random, source-hash) are not supported with it", dyn.Name)
			return
		}
	}
	part := 0
	for _, fam := range poolFamilies(r, pool) {
		if dyn != nil {
			rules, ok := c.poolRules(r, kind, pool, dnat, fam, nil, dyn)
			if !ok {
				return
			}
			for _, b := range rules {
				ref := nft.Ref{Kind: kind, Nr: c.nr(r), Part: part}
				part++
				if dnat {
					c.rdr = append(c.rdr, b.rule(ref))
				} else {
					c.nat = append(c.nat, b.rule(ref))
				}
			}
			continue
		}
		addrs, msg := c.poolAddrs(pool, fam)
		if msg != "" {
			c.refuse(r, "%s", msg)
			return
		}
		if len(addrs) == 0 {
			continue
		}
		rules, ok := c.poolRules(r, kind, pool, dnat, fam, addrs, nil)
		if !ok {
			return
		}
		for _, b := range rules {
			ref := nft.Ref{Kind: kind, Nr: c.nr(r), Part: part}
			part++
			if dnat {
				c.rdr = append(c.rdr, b.rule(ref))
			} else {
				c.nat = append(c.nat, b.rule(ref))
			}
		}
	}
	if part == 0 {
		msg := "the translation pool has no address of the rule's address family"
		for _, pa := range pool.Addrs {
			if pa.Addr.Type == pfconf.AddrTable {
				msg += fmt.Sprintf(" (a pool's table is read when the ruleset is compiled: <%s> holds none)", pa.Addr.Name)
				break
			}
		}
		c.refuse(r, "%s", msg)
	}
}

// portsApply reports whether r only matches protocols with ports.
func (c *compiler) portsApply(r *pfconf.Rule) bool {
	return r.Proto == protoTCP || r.Proto == protoUDP || r.Proto == protoSCTP
}

// maxRdrPortRules bounds the kernel rules an rdr to a port range becomes
// when each matched port needs its own target port.
const maxRdrPortRules = 64

// rdrPortVariant is one kernel rule's share of an rdr to a port range:
// the destination port it matches (0: the rule's own match) and the port
// it redirects to (0: the packet's own).
type rdrPortVariant struct{ match, to uint16 }

// rdrPortVariants maps an rdr to a port range as pf does: the packet's
// destination port p becomes ((p - d0) mod (p1 - p0 + 1)) + p0, d0 being
// the rule's first destination port and p0:p1 the target range (FreeBSD
// sys/netpfil/pf/pf_lb.c, pf_get_translation, PF_RDR; "port A:*" is a
// range of the rule's size, parse.y). When that is the identity on the
// rule's ports the port is left as it is (one rule); else each matched
// port is a rule of its own, up to maxRdrPortRules.
func (c *compiler) rdrPortVariants(r *pfconf.Rule, p0, p1 uint16) ([]rdrPortVariant, bool) {
	var d0, d1 uint16
	switch r.Dst.PortOp {
	case pfconf.OpEQ:
		d0, d1 = r.Dst.Port[0], r.Dst.Port[0]
	case pfconf.OpRRG:
		d0, d1 = r.Dst.Port[0], r.Dst.Port[1]
	default:
		c.refuse(r, "rdr to a port range (%d:%d) without a destination port on the rule is not supported: pf maps each port by its offset from the rule's first port; give the rule's port or range", p0, p1)
		return nil, false
	}
	size := uint32(p1) - uint32(p0) + 1
	to := func(p uint16) uint16 { return uint16((uint32(p)-uint32(d0))%size + uint32(p0)) }
	if p0 == d0 && uint32(d1-d0) < size {
		return []rdrPortVariant{{}}, true // every port maps to itself
	}
	if int(d1)-int(d0)+1 > maxRdrPortRules {
		c.refuse(r, "rdr from %d ports (%d:%d) to the port range %d:%d is not supported: each port needs a kernel rule of its own here, at most %d", int(d1)-int(d0)+1, d0, d1, p0, p1, maxRdrPortRules)
		return nil, false
	}
	var out []rdrPortVariant
	for p := uint32(d0); p <= uint32(d1); p++ {
		out = append(out, rdrPortVariant{match: uint16(p), to: to(uint16(p))})
	}
	return out, true
}

// poolRules builds the kernel rules of one family of a translation: one,
// or two with sticky-address (reuse a recorded choice; choose and record);
// an rdr to a port range may be several (rdrPortVariants).
func (c *compiler) poolRules(r *pfconf.Rule, kind nft.Kind, pool pfconf.Pool, dnat bool, fam byte, addrs []netip.Addr, dyn *pfconf.Addr) ([]*builder, bool) {
	p0, p1 := pool.ProxyPort[0], pool.ProxyPort[1]
	if !dnat || p1 == 0 || p1 == p0 {
		return c.poolRulesPort(r, kind, pool, dnat, fam, addrs, dyn, 0)
	}
	vs, ok := c.rdrPortVariants(r, p0, p1)
	if !ok {
		return nil, false
	}
	var out []*builder
	for _, v := range vs {
		pl := pool
		pl.ProxyPort = [2]uint16{v.to, v.to}
		bs, ok := c.poolRulesPort(r, kind, pl, dnat, fam, addrs, dyn, v.match)
		if !ok {
			return nil, false
		}
		out = append(out, bs...)
	}
	return out, true
}

// poolRulesPort is poolRules for one target port (or none), matching also
// destination port matchPort when it is not 0.
func (c *compiler) poolRulesPort(r *pfconf.Rule, kind nft.Kind, pool pfconf.Pool, dnat bool, fam byte, addrs []netip.Addr, dyn *pfconf.Addr, matchPort uint16) ([]*builder, bool) {
	typ, kw := expr.NATTypeSourceNAT, "snat"
	if dnat {
		typ, kw = expr.NATTypeDestNAT, "dnat"
	}
	ip := ipWord(fam)
	alen := uint32(4)
	if fam == famV6 {
		alen = 16
	}
	// Ports into registers 3 and 4.
	var portText string
	var portExprs []expr.Any
	var pmin, pmax uint32
	p0, p1 := pool.ProxyPort[0], pool.ProxyPort[1]
	if dnat {
		if p0 != 0 {
			if !c.portsApply(r) {
				c.refuse(r, "rdr to a port needs proto tcp, udp or sctp")
				return nil, false
			}
			portText = fmt.Sprintf(":%d", p0)
			portExprs = []expr.Any{&expr.Immediate{Register: 3, Data: be16(p0)}}
			pmin = 3
		}
	} else if (p0 != 0 || p1 != 0) && c.portsApply(r) {
		portText = fmt.Sprintf(":%d-%d", p0, p1)
		portExprs = []expr.Any{&expr.Immediate{Register: 3, Data: be16(p0)}, &expr.Immediate{Register: 4, Data: be16(p1)}}
		pmin, pmax = 3, 4
	}
	nat := func(b *builder, target string) {
		b.counter()
		c.translationMarks(b, r)
		b.add("", portExprs...)
		b.add(fmt.Sprintf("%s %s to %s%s", kw, ip, target, portText),
			&expr.NAT{Type: typ, Family: uint32(fam), RegAddrMin: 2, RegProtoMin: pmin, RegProtoMax: pmax})
	}
	match := func() (*builder, bool) {
		b := &builder{}
		b.counter()
		ok := c.match(b, r, matchOpts{out: !dnat, fam: fam})
		if ok && matchPort != 0 {
			b.port(pfconf.OpEQ, [2]uint16{matchPort}, true, false)
		}
		return b, ok
	}
	if dyn != nil {
		b, ok := match()
		if !ok {
			return nil, false
		}
		nat(b, c.dynIfTarget(b, *dyn, fam))
		return []*builder{b}, true
	}
	// One address: no choice to make, unless sticky-address must record
	// the binding (pf makes a source node whatever the pool's size, so
	// a source keeps its address when the pool grows, as relayd's
	// tables do when a host returns).
	if len(addrs) == 1 && pool.Type != pfconf.PoolBitmask && !pool.Sticky {
		b, ok := match()
		if !ok {
			return nil, false
		}
		b.add("", &expr.Immediate{Register: 2, Data: addrs[0].AsSlice()})
		nat(b, addrs[0].String())
		return []*builder{b}, true
	}
	if pool.Type == pfconf.PoolBitmask {
		if len(pool.Addrs) != 1 || pool.Addrs[0].Addr.Type != pfconf.AddrMask {
			c.refuse(r, "bitmask needs a single network as its pool")
			return nil, false
		}
		pa := pool.Addrs[0].Addr
		net := netip.PrefixFrom(pa.Addr, pa.Bits).Masked()
		b, ok := match()
		if !ok {
			return nil, false
		}
		// pool network | (address & host mask): the source for nat, the
		// destination for rdr.
		host := netmask(int(alen), net.Bits())
		for i := range host {
			host[i] = ^host[i]
		}
		name := b.loadAddr(dnat, fam, false, 2)
		b.add("", &expr.Bitwise{SourceRegister: 2, DestRegister: 2, Len: alen, Mask: host, Xor: net.Addr().AsSlice()})
		hostAddr, _ := netip.AddrFromSlice(host)
		nat(b, fmt.Sprintf("%s & %s | %s", name, hostAddr, net.Addr()))
		return []*builder{b}, true
	}

	// A map index -> address, and a selector that computes the index.
	mapName := fmt.Sprintf("pool_%s%d_%c", kind, c.nr(r), "46"[boolInt(fam == famV6)])
	c.addSet(&nft.Set{Name: mapName, Kind: nft.SetPool, V6: fam == famV6, Pool: addrs})
	n := uint32(len(addrs))
	choose, ok := match()
	if !ok {
		return nil, false
	}
	var sel string
	switch pool.Type {
	case pfconf.PoolRandom:
		sel = fmt.Sprintf("numgen random mod %d", n)
		choose.add("", &expr.Numgen{Register: 2, Modulus: n, Type: unix.NFT_NG_RANDOM})
	case pfconf.PoolSourceHash:
		seed := pool.Key[0] ^ pool.Key[1] ^ pool.Key[2] ^ pool.Key[3]
		src := choose.loadAddr(false, fam, false, 1)
		sel = fmt.Sprintf("jhash %s mod %d seed 0x%08x", src, n, seed)
		choose.add("", &expr.Hash{SourceRegister: 1, DestRegister: 2, Length: alen, Modulus: n, Seed: seed, Type: expr.HashTypeJenkins})
	default: // round-robin
		sel = fmt.Sprintf("numgen inc mod %d", n)
		choose.add("", &expr.Numgen{Register: 2, Modulus: n, Type: unix.NFT_NG_INCREMENTAL})
	}
	choose.add("", &expr.Lookup{SourceRegister: 2, DestRegister: 2, IsDestRegSet: true, SetName: mapName})
	target := sel + " map @" + mapName
	if !pool.Sticky {
		nat(choose, target)
		return []*builder{choose}, true
	}
	// sticky-address: reuse the source's recorded choice, refreshing it.
	sticky := StickyMapName(kind, c.nr(r), fam == famV6)
	c.addSet(&nft.Set{Name: sticky, Kind: nft.SetSticky, V6: fam == famV6, Timeout: c.sticky})
	reuse, ok := match()
	if !ok {
		return nil, false
	}
	src := reuse.loadAddr(false, fam, false, 1)
	reuse.add("", &expr.Lookup{SourceRegister: 1, DestRegister: 2, IsDestRegSet: true, SetName: sticky})
	reuse.add(fmt.Sprintf("update @%s { %s : %s saddr map @%s }", sticky, src, ip, sticky),
		&expr.Dynset{SrcRegKey: 1, SrcRegData: 2, SetName: sticky, Operation: unix.NFT_DYNSET_OP_UPDATE})
	nat(reuse, fmt.Sprintf("%s map @%s", src, sticky))
	choose.loadAddr(false, fam, false, 1)
	choose.add(fmt.Sprintf("update @%s { %s : %s }", sticky, src, target),
		&expr.Dynset{SrcRegKey: 1, SrcRegData: 2, SetName: sticky, Operation: unix.NFT_DYNSET_OP_UPDATE})
	nat(choose, target)
	return []*builder{reuse, choose}, true
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// translationMarks adds what a translation rule writes into the
// connection mark: nat pass / rdr pass, its tag (old-style nat, rdr and
// binat rules; pass and match rules with nat-to or rdr-to set theirs in
// the filter chains) and set prio.
func (c *compiler) translationMarks(b *builder, r *pfconf.Rule) {
	if r.NatPass {
		setMark(b, CtMarkPass|CtMarkState, 0)
	}
	if r.Action == pfconf.ActNAT || r.Action == pfconf.ActRDR || r.Action == pfconf.ActBINAT {
		c.setTag(b, r)
		c.setPrio(b, r, true)
	}
}

// translationAddrsOK refuses a translation rule that matches an overload
// table (it would need one kernel rule per set of the table).
func (c *compiler) translationAddrsOK(r *pfconf.Rule) bool {
	if len(c.overloadVariants(r)) > 1 {
		c.refuse(r, "a table that rules overload is not supported as the address of a translation rule")
		return false
	}
	return true
}
