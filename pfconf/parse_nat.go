package pfconf

import (
	"crypto/md5"
	"math"
)

func md5Sum(b []byte) [16]byte { return md5.Sum(b) }

// NAT proxy port defaults (pf's PF_NAT_PROXY_PORT_LOW/HIGH).
const (
	natProxyPortLow  = 50001
	natProxyPortHigh = 65535
)

// natPassLog parses "[pass] [log ...]" after nat/rdr/binat.
func (p *parser) natPassLog(r *Rule) {
	if p.gotKw("pass") {
		r.NatPass = true
	}
	if p.isKw("log") {
		p.logQuick(r, false)
	}
}

// natRule parses "[no] nat|rdr [pass] [log] [on ...] [af] [proto] fromto
// [tag] [tagged] [rtable] [-> redirspec [port]] [pool options]".
func (p *parser) natRule() Stmt {
	rs := newRuleStmt(p.pos)
	r := &rs.R
	p.checkRuleState(rs.P, stateNAT)
	no := p.gotKw("no")
	switch {
	case p.gotKw("nat"):
		r.Action = ActNAT
	case p.gotKw("rdr"):
		r.Action = ActRDR
	case no && p.gotKw("binat"):
		r.Action = ActNoBINAT
	default:
		p.syntaxError()
	}
	if no && r.Action != ActNoBINAT {
		r.Action++
	}
	ppos := p.pos
	p.natPassLog(r)
	if no && r.NatPass {
		p.fail(ppos, "\"pass\" not valid with \"no\"")
	}
	if p.gotKw("on") {
		rs.Ifs = p.ifList()
	}
	r.AF = p.af()
	if p.gotKw("proto") {
		rs.Protos = p.protoSpec()
	}
	p.fromTo(rs)
	p.natTail(rs)
	var spec *RedirSpec
	if p.tok == ARROW {
		apos := p.pos
		p.next()
		spec = p.redirSpec(apos, true)
	}
	if spec == nil {
		spec = &RedirSpec{P: p.pos}
	}
	p.poolOpts(spec, false)
	p.endStmt()
	if r.Action == ActNoBINAT {
		// parse.y binatrule.
		if len(spec.Hosts) > 0 {
			p.fail(rs.P, "'no binat' rule does not need '->'")
		}
		return rs
	}
	if r.Action == ActNoNAT || r.Action == ActNoRDR {
		if len(spec.Hosts) > 0 {
			p.fail(rs.P, "translation rule with 'no' does not need '->'")
		}
		return rs
	}
	if len(spec.Hosts) == 0 {
		// parse.y natrule ($9 == NULL || $9->host == NULL).
		p.fail(rs.P, "translation rule requires '-> address'")
	}
	rs.Nat = spec
	p.natPorts(rs, spec)
	return rs
}

// natTail parses tag, tagged and rtable of translation rules.
func (p *parser) natTail(rs *RuleStmt) {
	r := &rs.R
	for {
		switch {
		case p.gotKw("tag"):
			tpos := p.pos
			_, r.Tag = p.name()
			p.checkTag(tpos, r.Tag)
		case p.tok == NOT || p.isKw("tagged"):
			tpos := p.pos
			r.TaggedNot = p.got(NOT)
			p.expectKw("tagged")
			_, r.Tagged = p.name()
			p.checkTag(tpos, r.Tagged)
		case p.gotKw("rtable"):
			_, n := p.numberIn(0, math.MaxInt32, "invalid rtable id")
			r.Rtable = int(n)
		default:
			return
		}
	}
}

// natPorts computes the proxy ports of a nat or rdr rule and checks the
// pool options that only nat allows.
func (p *parser) natPorts(rs *RuleStmt, spec *RedirSpec) {
	r := &rs.R
	pp := &r.NAT.ProxyPort
	pp[0] = spec.RPort.A
	switch r.Action {
	case ActRDR:
		if spec.RPort.B == 0 && spec.RPort.T != OpNone && len(rs.DstPorts) > 0 {
			d := rs.DstPorts[0]
			pp[1] = spec.RPort.A + (d.Port[1] - d.Port[0])
		} else {
			pp[1] = spec.RPort.B
		}
	case ActNAT:
		pp[1] = spec.RPort.B
		if pp[0] == 0 && pp[1] == 0 {
			pp[0], pp[1] = natProxyPortLow, natProxyPortHigh
		} else if pp[1] == 0 {
			pp[1] = pp[0]
		}
	case ActBINAT:
		pp[1] = spec.RPort.B
	}
	if spec.PoolType == PoolBitmask {
		for _, h := range spec.Hosts {
			if h.Kind == HostTable {
				p.fail(rs.P, "tables are not supported by pool type")
			}
		}
	}
	if spec.StaticPort {
		if r.Action != ActNAT {
			p.fail(rs.P, "the 'static-port' option is only valid with nat rules")
		}
		if pp[0] != natProxyPortLow && pp[1] != natProxyPortHigh {
			p.fail(rs.P, "the 'static-port' option can't be used when specifying a port range")
		}
		pp[0], pp[1] = 0, 0
	}
	if spec.MapE != nil {
		if r.Action != ActNAT {
			p.fail(rs.P, "the 'map-e-portset' option is only valid with nat rules")
		}
		if spec.StaticPort {
			p.fail(rs.P, "the 'map-e-portset' option can't be used 'static-port'")
		}
		if pp[0] != natProxyPortLow && pp[1] != natProxyPortHigh {
			p.fail(rs.P, "the 'map-e-portset' option can't be used when specifying a port range")
		}
	}
}

// binatRule parses "[no] binat [pass] [log] [on ...] [af] [proto] from
// HOST [to IPSPEC] [tag] [tagged] [rtable] [-> HOST]".
func (p *parser) binatRule() Stmt {
	rs := newRuleStmt(p.pos)
	r := &rs.R
	p.checkRuleState(rs.P, stateNAT)
	p.expectKw("binat")
	r.Action = ActBINAT
	p.natPassLog(r)
	if p.gotKw("on") {
		rs.Ifs = p.ifList()
		if len(rs.Ifs) > 1 {
			p.fail(rs.P, "binat can only be specified for one interface")
		}
	}
	r.AF = p.af()
	if p.gotKw("proto") {
		rs.Protos = p.protoSpec()
		if len(rs.Protos) > 1 {
			p.fail(rs.P, "multiple protocols not permitted")
		}
	}
	p.expectKw("from")
	rs.SrcHosts = p.ipSpec()
	if p.gotKw("to") {
		tpos := p.pos
		rs.DstHosts = p.ipSpec()
		for _, h := range rs.DstHosts {
			if h.Kind == HostURPF {
				p.fail(tpos, "\"urpf-failed\" is not permitted as a binat destination")
			}
		}
	}
	p.natTail(rs)
	var spec *RedirSpec
	if p.tok == ARROW {
		apos := p.pos
		p.next()
		spec = &RedirSpec{P: apos, Hosts: []HostItem{p.xhostNoNot()}}
		if p.gotKw("port") {
			spec.RPort = p.portRange(pPortRange | pPortStar)
			spec.HasRPort = true
		}
	}
	p.endStmt()
	if len(rs.SrcHosts) > 1 {
		p.fail(rs.P, "multiple binat ip addresses")
	}
	if len(rs.SrcHosts) == 1 && rs.SrcHosts[0].Kind == HostTable {
		p.fail(rs.P, "invalid use of table <%s> as the source address of a binat rule", rs.SrcHosts[0].Name)
	}
	p.binatChecks(rs, spec)
	if spec == nil {
		p.fail(rs.P, "'binat' rule requires '-> address'")
	}
	if spec.Hosts[0].Kind == HostTable {
		p.fail(rs.P, "invalid use of table <%s> as the redirect address of a binat rule", spec.Hosts[0].Name)
	}
	if dynMultiItem(spec.Hosts[0]) {
		p.fail(rs.P, "invalid use of interface (%s) as the redirect address of a binat rule", spec.Hosts[0].Name)
	}
	if len(rs.SrcHosts) == 1 && spec.Hosts[0].Kind == HostAddr && rs.SrcHosts[0].Kind == HostAddr {
		// parse.y binatrule: a source mask other than /0 must equal
		// the redirect mask.
		src, dst := rs.SrcHosts[0], spec.Hosts[0]
		if sb, db := literalBits(src), literalBits(dst); sb != 0 && sb != db {
			p.fail(rs.P, "'binat' source mask and redirect mask must be the same")
		}
	}
	rs.Nat = spec
	p.natPorts(rs, spec)
	return rs
}

// literalBits is the prefix length of an address literal (its full length
// when no /bits is given).
func literalBits(h HostItem) int {
	if h.Bits >= 0 {
		return h.Bits
	}
	if h.Addr.Is4() {
		return 32
	}
	return 128
}

// dynMultiItem is parse.y's DYNIF_MULTIADDR for an address as written: an
// interface in parentheses that may stand for several addresses (no :0,
// or a name not ending in a digit, an interface group).
func dynMultiItem(h HostItem) bool {
	if h.Kind != HostDynIf {
		return false
	}
	n := h.Name
	return h.IfFlags&IfNoAlias == 0 || n == "" || n[len(n)-1] < '0' || n[len(n)-1] > '9'
}

// literalAF is the address family of an address literal or range, 0 for
// other forms (names are resolved by Expand).
func literalAF(h HostItem) AF {
	switch h.Kind {
	case HostAddr, HostRange:
		if h.Addr.Is4() {
			return AFInet
		}
		return AFInet6
	}
	return AFUnspec
}

// binatChecks applies parse.y binatrule's address family checks to what
// the parser sees: the rule's family comes from "inet"/"inet6", then the
// source, destination and redirect literals; a literal of the other
// family is refused. Names are resolved by Expand, which drops mismatches
// as pfctl's remove_invalid_hosts does.
func (p *parser) binatChecks(rs *RuleStmt, spec *RedirSpec) {
	af := rs.R.AF
	named := false
	var cands []HostItem
	cands = append(cands, rs.SrcHosts...)
	cands = append(cands, rs.DstHosts...)
	if spec != nil {
		cands = append(cands, spec.Hosts...)
	}
	for _, h := range cands {
		if af == AFUnspec {
			af = literalAF(h)
		}
		if h.Kind == HostName {
			named = true
		}
	}
	if af == AFUnspec && !named {
		p.fail(rs.P, "address family (inet/inet6) undefined")
	}
	for _, h := range rs.SrcHosts {
		if dynMultiItem(h) {
			p.fail(rs.P, "invalid use of interface (%s) as the source address of a binat rule", h.Name)
		}
	}
	for _, l := range [][]HostItem{rs.SrcHosts, rs.DstHosts} {
		for _, h := range l {
			if a := literalAF(h); a != AFUnspec && af != AFUnspec && a != af {
				p.fail(rs.P, "binat ip versions must match")
			}
		}
	}
}
