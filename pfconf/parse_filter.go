package pfconf

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pfcarp/pfcarp/netdb"
)

// Default return codes (ICMP unreach/port, ICMPv6 unreach/no-port).
const (
	returnICMPDefault  = 3<<8 | 3
	returnICMP6Default = 1<<8 | 4
)

func newRuleStmt(pos Pos) *RuleStmt {
	rs := &RuleStmt{P: pos}
	rs.R.Pos = pos
	rs.R.Rtable = -1
	rs.R.ReturnICMP = returnICMPDefault
	rs.R.ReturnICMP6 = returnICMP6Default
	return rs
}

// filterRule parses pass, block and match rules.
func (p *parser) filterRule() Stmt {
	rs := newRuleStmt(p.pos)
	r := &rs.R
	p.checkRuleState(rs.P, stateFilter)
	switch {
	case p.gotKw("pass"):
		r.Action = ActPass
	case p.gotKw("match"):
		r.Action = ActMatch
	default:
		p.expectKw("block")
		r.Action = ActBlock
		p.blockSpec(r)
	}
	r.Direction = p.dir()
	p.logQuick(r, true)
	if p.gotKw("on") {
		rs.Ifs = p.ruleIfs()
	}
	p.routeOpt(rs)
	r.AF = p.af()
	if p.gotKw("proto") {
		rs.Protos = p.protoSpec()
	}
	p.fromTo(rs)
	fo := p.filterOpts(rs)
	p.finishFilter(rs, fo)
	p.endStmt()
	return rs
}

func (p *parser) dir() Direction {
	switch {
	case p.gotKw("in"):
		return DirIn
	case p.gotKw("out"):
		return DirOut
	}
	return DirAny
}

func (p *parser) af() AF {
	switch {
	case p.gotKw("inet"):
		return AFInet
	case p.gotKw("inet6"):
		return AFInet6
	}
	return AFUnspec
}

func (p *parser) blockSpec(r *Rule) {
	switch {
	case p.gotKw("drop"):
		r.Return = ReturnDrop
	case p.gotKw("return-rst"):
		r.Return = ReturnRST
		if p.got(LPAREN) {
			p.expectKw("ttl")
			_, n := p.numberIn(0, 255, "illegal ttl value %d")
			r.ReturnTTL = uint8(n)
			p.expect(RPAREN)
		}
	case p.gotKw("return-icmp"):
		r.Return = ReturnICMP
		if p.got(LPAREN) {
			r.ReturnICMP = p.icmpCodeSpec(false)
			if p.got(COMMA) {
				p.optnl()
				r.ReturnICMP6 = p.icmpCodeSpec(true)
			}
			p.expect(RPAREN)
		}
	case p.gotKw("return-icmp6"):
		r.Return = ReturnICMP
		if p.got(LPAREN) {
			r.ReturnICMP6 = p.icmpCodeSpec(true)
			p.expect(RPAREN)
		}
	case p.gotKw("return"):
		r.Return = ReturnBoth
	default:
		if p.blockReturn {
			r.Return = ReturnBoth
		}
	}
}

// icmpCodeSpec parses a return-icmp code (name or number).
func (p *parser) icmpCodeSpec(v6 bool) uint16 {
	typ := uint16(returnICMPDefault >> 8)
	if v6 {
		typ = returnICMP6Default >> 8
	}
	pos, s := p.numberString()
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t, c, ok := netdb.ICMPCodeByName(s, v6)
		if !ok || uint16(t) != typ {
			p.fail(pos, "unknown icmp code %s", s)
		}
		n = uint64(c)
	}
	if n > 255 {
		p.fail(pos, "invalid icmp code %d", n)
	}
	return typ<<8 | uint16(n)
}

// logQuick parses "log", "log (opts)" and "quick" in any order.
func (p *parser) logQuick(r *Rule, quickOK bool) {
	for {
		switch {
		case p.gotKw("log"):
			r.Log |= LogOn
			if p.got(LPAREN) {
				p.logOpts(r)
			}
		case quickOK && p.gotKw("quick"):
			r.Quick = true
		default:
			return
		}
	}
}

func (p *parser) logOpts(r *Rule) {
	for {
		switch {
		case p.gotKw("all"):
			r.Log |= LogAll
		case p.gotKw("matches"):
			r.Log |= LogMatches
		case p.gotKw("user"), p.gotKw("group"):
			r.Log |= LogSocket
		case p.gotKw("to"):
			// parse.y logopt TO: a pflog interface, its unit
			// read by strtonum(3) in [0, 255].
			pos, s := p.str()
			if !strings.HasPrefix(s, "pflog") {
				p.fail(pos, "%s: should be a pflog interface", s)
			}
			r.LogIf = uint8(p.strtonum(pos, s, s[len("pflog"):], 0, 255))
		default:
			p.syntaxError()
		}
		if !p.got(COMMA) {
			break
		}
		p.optnl()
	}
	p.expect(RPAREN)
}

// routeOpt parses fastroute / route-to / reply-to / dup-to if present.
func (p *parser) routeOpt(rs *RuleStmt) bool {
	var kind uint8
	switch {
	case p.isKw("fastroute"):
		kind = RouteFastRoute
	case p.isKw("route-to"):
		kind = RouteTo
	case p.isKw("reply-to"):
		kind = RouteReplyTo
	case p.isKw("dup-to"):
		kind = RouteDupTo
	default:
		return false
	}
	pos := p.pos
	p.next()
	if rs.R.RouteType != RouteNone {
		// OpenBSD parse.y routespec.
		p.fail(pos, "cannot respecify route-to/reply-to/dup-to")
	}
	rs.R.RouteType = kind
	if kind == RouteFastRoute {
		return true
	}
	spec := &RedirSpec{P: pos}
	if p.got(LBRACE) {
		p.optnl()
		for p.tok != RBRACE {
			spec.Hosts = append(spec.Hosts, p.routeHost()...)
			p.comma()
		}
		p.next()
		if len(spec.Hosts) == 0 {
			p.syntaxError()
		}
	} else {
		spec.Hosts = p.routeHost()
	}
	p.poolOpts(spec, true)
	rs.Route = spec
	return true
}

// routeHost parses "IF" or "(IF host)".
func (p *parser) routeHost() []HostItem {
	pos := p.pos
	// parse.y route_host: the interface name must fit IFNAMSIZ.
	ifName := func() string {
		ipos, ifname := p.name()
		if len(ifname) >= ifNameSize {
			p.fail(ipos, "interface name too long")
		}
		return ifname
	}
	if p.got(LPAREN) {
		ifname := ifName()
		h := p.host()
		p.expect(RPAREN)
		h.RouteIf = ifname
		return []HostItem{h}
	}
	ifname := ifName()
	return []HostItem{{P: pos, Kind: HostNone, Bits: -1, RouteIf: ifname}}
}

// poolOpts parses pool options (round-robin, sticky-address, ...).
func (p *parser) poolOpts(spec *RedirSpec, routing bool) {
	setType := func(pos Pos, t uint8) {
		if spec.PoolType != PoolNone {
			p.fail(pos, "pool type cannot be redefined")
		}
		spec.PoolType = t
	}
	for {
		pos := p.pos
		switch {
		case p.gotKw("bitmask"):
			setType(pos, PoolBitmask)
		case p.gotKw("random"):
			setType(pos, PoolRandom)
		case p.gotKw("round-robin"):
			setType(pos, PoolRoundRobin)
		case p.gotKw("source-hash"):
			setType(pos, PoolSourceHash)
			if p.isString() {
				kpos, s := p.str()
				spec.Key = p.hashKey(kpos, s)
			}
		case p.gotKw("static-port"):
			if spec.StaticPort {
				p.fail(pos, "static-port cannot be redefined")
			}
			spec.StaticPort = true
		case p.gotKw("sticky-address"):
			if spec.Sticky {
				p.fail(pos, "sticky-address cannot be redefined")
			}
			spec.Sticky = true
		case p.gotKw("endpoint-independent"):
			spec.EndpointI = true
		case p.gotKw("prefer-ipv6-nexthop"):
			spec.PreferV6 = true
		case p.gotKw("map-e-portset"):
			if spec.MapE != nil {
				p.fail(pos, "map-e-portset cannot be redefined")
			}
			// parse.y pool_opt MAPEPORTSET number '/' number '/' number.
			if spec.PoolType != 0 {
				p.fail(pos, "map-e-portset cannot be used with address pools")
			}
			_, off := p.numberOrString()
			p.expect(SLASH)
			_, plen := p.numberOrString()
			p.expect(SLASH)
			_, psid := p.numberOrString()
			if off <= 0 || off >= 16 {
				p.fail(pos, "MAP-E PSID offset must be 1-15")
			}
			if plen < 0 || plen >= 16 || off+plen > 16 {
				p.fail(pos, "Invalid MAP-E PSID length")
			} else if plen == 0 {
				p.fail(pos, "PSID Length = 0: this means you do not need MAP-E")
			}
			if psid < 0 || psid > 65535 {
				p.fail(pos, "Invalid MAP-E PSID")
			}
			spec.MapE = &struct {
				Offset, PSIDLen uint8
				PSID            uint16
			}{uint8(off), uint8(plen), uint16(psid)}
		default:
			return
		}
	}
}

// hashKey parses a source-hash key: 0x + 32 hex digits, or a string whose
// MD5 is the key.
func (p *parser) hashKey(pos Pos, s string) *[4]uint32 {
	var k [4]uint32
	if strings.HasPrefix(s, "0x") {
		if len(s) != 34 {
			p.fail(pos, "hex key must be 128 bits (32 hex digits) long")
		}
		for i := range 4 {
			v, err := strconv.ParseUint(s[2+8*i:10+8*i], 16, 32)
			if err != nil {
				p.fail(pos, "invalid hex key")
			}
			k[i] = uint32(v)
		}
		return &k
	}
	sum := md5Sum([]byte(s))
	for i := range 4 {
		k[i] = uint32(sum[4*i])<<24 | uint32(sum[4*i+1])<<16 | uint32(sum[4*i+2])<<8 | uint32(sum[4*i+3])
	}
	return &k
}

// fromTo parses "all" or "[from ...] [os ...] [to ...]".
func (p *parser) fromTo(rs *RuleStmt) {
	if p.gotKw("all") {
		return
	}
	if p.gotKw("from") {
		rs.SrcHosts, rs.SrcPorts = p.ipPortSpec()
	}
	if p.gotKw("os") {
		if p.got(LBRACE) {
			p.optnl()
			_, s := p.str()
			rs.R.OS = s
			for p.tok != RBRACE {
				p.comma()
				if p.tok != RBRACE {
					p.str()
				}
			}
			p.next()
		} else {
			_, s := p.str()
			rs.R.OS = s
		}
	}
	if p.gotKw("to") {
		pos := p.pos
		rs.DstHosts, rs.DstPorts = p.ipPortSpec()
		// parse.y to: disallow_urpf_failed.
		for _, h := range rs.DstHosts {
			if h.Kind == HostURPF {
				p.fail(pos, "\"urpf-failed\" is not permitted in a destination address")
			}
		}
	}
}

// filterOptions collects what pfctl's filter_opts holds before the rule is
// assembled.
type filterOptions struct {
	keepGiven bool
	keep      uint8
	stateOpts []stateOpt
	prio      int // -1 unset
	prioGiven bool
	tosGiven  bool
	setPrio   bool
	setTOS    bool
	probGiven bool
	queue     bool
}

type stateOpt struct {
	pos  Pos
	kind string
	n    [2]uint32
	s    string
	b    bool // flush / rule
	g    bool // global
}

// filterOpts parses the options that may follow from/to, in any order.
func (p *parser) filterOpts(rs *RuleStmt) *filterOptions {
	r := &rs.R
	fo := &filterOptions{prio: -1}
	for {
		pos := p.pos
		switch {
		case p.gotKw("user"):
			rs.UIDs = append(rs.UIDs, p.idSpec(true)...)
		case p.gotKw("group"):
			rs.GIDs = append(rs.GIDs, p.idSpec(false)...)
		case p.gotKw("flags"):
			if rs.flagsGiven {
				p.fail(pos, "flags cannot be redefined")
			}
			rs.flagsGiven = true
			if p.gotKw("any") {
				break
			}
			if p.tok != SLASH {
				fpos, s := p.str()
				r.Flags = p.parseFlags(fpos, s)
			}
			p.expect(SLASH)
			fpos, s := p.str()
			r.FlagSet = p.parseFlags(fpos, s)
		case p.isKw("icmp-type"), p.isKw("icmp6-type"):
			v6 := p.lit == "icmp6-type"
			p.next()
			if len(rs.ICMPs) > 0 {
				p.fail(pos, "icmp-type cannot be redefined")
			}
			rs.ICMPs = p.icmpSpec(v6)
		case p.gotKw("prio"):
			// parse.y filter_opt PRIO: FOM_PRIO.
			if fo.prioGiven {
				p.fail(pos, "prio cannot be redefined")
			}
			fo.prioGiven = true
			_, n := p.numberIn(0, 7, "prio must be 0 - 7")
			fo.prio = int(n)
		case p.gotKw("tos"):
			// parse.y filter_opt TOS: FOM_TOS.
			if fo.tosGiven {
				p.fail(pos, "tos cannot be redefined")
			}
			fo.tosGiven = true
			r.TOS = p.tos()
		case p.isKw("keep"), p.isKw("modulate"), p.isKw("synproxy"), p.isKw("no"):
			if fo.keepGiven {
				p.fail(pos, "modulate or keep cannot be redefined")
			}
			fo.keepGiven = true
			p.keepSpec(fo)
		case p.gotKw("fragment"):
			r.Fragment = true
		case p.gotKw("allow-opts"):
			r.AllowOpts = true
		case p.gotKw("label"):
			_, s := p.str()
			if len(r.Labels) >= 5 {
				p.fail(pos, "label can only be used 5 times")
			}
			if len(s) >= 64 {
				p.fail(pos, "rule label too long (max 63 chars)")
			}
			r.Labels = append(r.Labels, s)
		case p.gotKw("ridentifier"):
			npos, n := p.numberOrString()
			if n > math.MaxUint32 {
				p.fail(npos, "invalid ridentifier")
			}
			r.Ridentifier = uint32(n)
		case p.gotKw("queue"):
			if fo.queue {
				p.fail(pos, "queue cannot be redefined")
			}
			fo.queue = true
			p.queueName(r)
		case p.gotKw("tag"):
			_, r.Tag = p.name()
			p.checkTag(pos, r.Tag)
		case p.tok == NOT || p.isKw("tagged"):
			not := p.got(NOT)
			if not && p.gotKw("received-on") {
				// pfctl prints a negated received-on as "!received-on IF".
				if r.RcvIfname != "" {
					p.fail(pos, "cannot respecify received-on")
				}
				it := p.ifItem()
				r.RcvIfname, r.RcvIfNot = it.Name, !it.Not
				break
			}
			p.expectKw("tagged")
			r.TaggedNot = not
			_, r.Tagged = p.name()
			p.checkTag(pos, r.Tagged)
		case p.gotKw("probability"):
			p.probability(pos, r)
			fo.probGiven = true
		case p.gotKw("rtable"):
			_, n := p.numberIn(0, math.MaxInt32, "invalid rtable id")
			r.Rtable = int(n)
		case p.gotKw("divert-packet"):
			// OpenBSD's divert(4) socket port: what FreeBSD's
			// "divert-to PORT" is (printed that way).
			if r.DivertPort != 0 || r.DivertReply {
				p.fail(pos, "more than one divert option")
			}
			p.expectKw("port")
			ppos, s := p.numberString()
			r.DivertPort = p.service(ppos, s)
			if r.DivertPort == 0 {
				// OpenBSD parse.y filter_opt DIVERTPACKET.
				p.fail(ppos, "invalid divert port")
			}
		case p.gotKw("divert-to"):
			if r.DivertPort != 0 || r.DivertReply {
				p.fail(pos, "more than one divert option")
			}
			if p.isString() && !p.isKw("port") {
				apos, s := p.str()
				a, ok := parseIP(s)
				if !ok {
					p.fail(apos, "could not parse divert address: %s", s)
				}
				r.DivertAddr = a
				p.expectKw("port")
			} else {
				p.gotKw("port")
			}
			ppos, s := p.numberString()
			r.DivertPort = p.service(ppos, s)
			if r.DivertPort == 0 {
				p.fail(ppos, "invalid divert port: 0")
			}
		case p.gotKw("divert-reply"):
			if r.DivertPort != 0 || r.DivertReply {
				p.fail(pos, "more than one divert option")
			}
			r.DivertReply = true
		case p.gotKw("scrub"):
			p.expect(LPAREN)
			p.scrubOpts(&r.Scrub, true, nil)
			p.expect(RPAREN)
			r.Scrub.Set = true
		case p.isKw("nat-to"), p.isKw("rdr-to"), p.isKw("binat-to"):
			kw := p.lit
			p.next()
			spec := p.redirSpec(pos, false)
			p.poolOpts(spec, false)
			switch kw {
			case "rdr-to":
				if rs.Rdr != nil {
					p.fail(pos, "cannot respecify rdr-to")
				}
				rs.Rdr = spec
			default:
				if rs.Nat != nil {
					p.fail(pos, "cannot respecify nat-to/binat-to")
				}
				rs.Nat = spec
				rs.BinatTo = kw == "binat-to"
			}
		case p.gotKw("af-to"):
			if rs.Nat != nil {
				p.fail(pos, "cannot respecify af-to")
			}
			naf := p.af()
			p.expectKw("from")
			spec := p.redirSpec(pos, false)
			p.poolOpts(spec, false)
			// OpenBSD parse.y filter_opt AFTO: the form without "to"
			// and the form with it word the missing family apart,
			// and only the latter checks the addresses' family.
			if naf == AFUnspec && !p.isKw("to") {
				p.fail(pos, "no target address family specified")
			}
			if naf == AFUnspec {
				p.fail(pos, "no address family specified")
			}
			if p.isKw("to") {
				p.afToFamily(pos, spec, naf)
			}
			spec.AF = naf
			rs.Nat = spec
			r.AFTo = true
			r.NAF = naf
			if p.gotKw("to") {
				spec2 := p.redirSpec(p.pos, false)
				p.poolOpts(spec2, false)
				p.afToFamily(pos, spec2, naf)
				spec2.AF = naf
				rs.Rdr = spec2
			}
		case p.routeOpt(rs):
		case p.gotKw("received-on"):
			// OpenBSD parse.y filter_opt RECEIVEDON.
			if r.RcvIfname != "" {
				p.fail(pos, "cannot respecify received-on")
			}
			l := p.ifList()
			if len(l) > 1 {
				p.fail(pos, "received-on only takes one interface")
			}
			r.RcvIfname, r.RcvIfNot = l[0].Name, l[0].Not
		case p.gotKw("once"):
			r.Once = true
		case p.gotKw("max-pkt-rate"):
			_, a := p.numberIn(0, math.MaxUint32, "only positive values permitted")
			p.expect(SLASH)
			_, b := p.numberIn(0, math.MaxUint32, "only positive values permitted")
			// OpenBSD parse.y filter_opt MAXPKTRATE.
			if r.MaxPktRate.Limit != 0 {
				p.fail(pos, "cannot respecify max-pkt-rate")
			}
			r.MaxPktRate.Limit, r.MaxPktRate.Seconds = uint32(a), uint32(b)
		case p.gotKw("max-pkt-size"):
			_, n := p.numberIn(0, 65535, "illegal max-pkt-size value")
			r.MaxPktSize = uint16(n)
		case p.isKw("dnpipe"), p.isKw("dnqueue"):
			r.DnQueue = p.lit == "dnqueue"
			p.next()
			if p.got(LPAREN) {
				_, a := p.numberIn(0, math.MaxUint32, "invalid dummynet number")
				p.expect(COMMA)
				_, b := p.numberIn(0, math.MaxUint32, "invalid dummynet number")
				p.expect(RPAREN)
				r.Dnpipe, r.Dnrpipe = uint32(a), uint32(b)
			} else {
				_, a := p.numberIn(0, math.MaxUint32, "invalid dummynet number")
				r.Dnpipe = uint32(a)
			}
		case p.gotKw("set-tos"):
			r.SetTOS = p.tos()
			r.SetTOSSet = true
		case p.isKw("set"):
			p.next()
			// OpenBSD's "set ( prio N, queue Q, tos T )" lists several.
			if p.got(LPAREN) {
				for {
					p.optnl()
					p.setOpt(r, fo)
					p.optnl()
					if !p.got(COMMA) {
						break
					}
				}
				p.expect(RPAREN)
				break
			}
			p.setOpt(r, fo)
		case p.isKw("state"):
			p.next()
			if !(p.tok == WORD && p.lit == "limiter") {
				p.syntaxError()
			}
			p.next()
			if p.tok == WORD && p.lit == "id" {
				p.next()
				_, n := p.numberIn(1, math.MaxUint32, "invalid state limiter id")
				r.StateLimiter = uint32(n)
			} else {
				npos, name := p.str()
				d, ok := p.limiters[name]
				if !ok {
					p.fail(npos, "state limiter %s not defined", name)
				}
				r.StateLimiter = d.ID
			}
			r.StateLimiterSet = true
			if p.got(LPAREN) {
				if !(p.tok == WORD && (p.lit == "no-match" || p.lit == "block")) {
					p.syntaxError()
				}
				r.StateLimiterNoMatch = p.lit == "no-match"
				p.next()
				p.expect(RPAREN)
			}
		default:
			return fo
		}
	}
}

// parseFlags parses TCP flag letters.
func (p *parser) parseFlags(pos Pos, s string) uint8 {
	var f uint8
	for _, c := range s {
		i := strings.IndexRune(tcpFlagChars, c)
		if i < 0 {
			p.fail(pos, "bad flags %s", s)
		}
		f |= 1 << uint(i)
	}
	return f
}

const tcpFlagChars = "FSRPAUEW"

// icmpSpec parses the list after icmp-type / icmp6-type.
func (p *parser) icmpSpec(v6 bool) []ICMPItem {
	return braceList(p, func() ICMPItem { return p.icmpItem(v6) })
}

func (p *parser) icmpItem(v6 bool) ICMPItem {
	pos := p.pos
	it := ICMPItem{P: pos, Proto: 1}
	if v6 {
		it.Proto = 58
	}
	tpos, ts := p.numberString()
	var typ uint8
	if n, err := strconv.ParseUint(ts, 10, 64); err == nil {
		if n > 255 {
			if v6 {
				p.fail(tpos, "illegal icmp6-type %d", n)
			}
			p.fail(tpos, "illegal icmp-type %d", n)
		}
		typ = uint8(n)
	} else {
		t, ok := netdb.ICMPTypeByName(ts, v6)
		if !ok {
			if v6 {
				p.fail(tpos, "unknown icmp6-type %s", ts)
			}
			p.fail(tpos, "unknown icmp-type %s", ts)
		}
		typ = t
	}
	it.Type = typ + 1
	if p.gotKw("code") {
		cpos, cs := p.numberString()
		if n, err := strconv.ParseUint(cs, 10, 64); err == nil {
			if n > 255 {
				p.fail(cpos, "illegal icmp-code %d", n)
			}
			it.Code = uint8(n) + 1
		} else {
			t, c, ok := netdb.ICMPCodeByName(cs, v6)
			if !ok || t != typ {
				if v6 {
					p.fail(cpos, "unknown icmp6-code %s", cs)
				}
				p.fail(cpos, "unknown icmp-code %s", cs)
			}
			it.Code = c + 1
		}
	}
	return it
}

// tosNames are FreeBSD parse.y map_tos's names (DiffServ code points and
// the old TOS bits), matched without regard to case (kw_casecmp).
var tosNames = map[string]uint8{
	"af11": 0x28, "af12": 0x30, "af13": 0x38,
	"af21": 0x48, "af22": 0x50, "af23": 0x58,
	"af31": 0x68, "af32": 0x70, "af33": 0x78,
	"af41": 0x88, "af42": 0x90, "af43": 0x98,
	"critical": 0xa0,
	"cs0":      0x00, "cs1": 0x20, "cs2": 0x40, "cs3": 0x60,
	"cs4": 0x80, "cs5": 0xa0, "cs6": 0xc0, "cs7": 0xe0,
	"ef":          0xb8,
	"inetcontrol": 0xc0,
	"lowdelay":    0x10,
	"netcontrol":  0xe0,
	"reliability": 0x04,
	"throughput":  0x08,
	"va":          0xb0,
}

// tos parses a TOS value: lowdelay, throughput, reliability, a number or
// a 0x hex string.
func (p *parser) tos() uint8 {
	pos, s := p.numberString()
	var v uint64
	var err error
	switch tv, named := tosNames[strings.ToLower(s)]; {
	case named:
		v = uint64(tv)
	case strings.HasPrefix(s, "0x"):
		v, err = strconv.ParseUint(s[2:], 16, 64)
	default:
		v, err = strconv.ParseUint(s, 10, 64)
	}
	if err != nil || v > 255 {
		p.fail(pos, "illegal tos value %s", s)
	}
	return uint8(v)
}

// probability parses "0.5", "50%" or a number.
func (p *parser) probability(pos Pos, r *Rule) {
	vpos, s := p.numberString()
	t := strings.TrimSuffix(s, "%")
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || strings.ContainsAny(t, "xXpPnN_") {
		p.fail(vpos, "invalid probability: %s", s)
	}
	if t != s {
		v *= 0.01
	}
	// parse.y filter_opt PROBABILITY checks (and prints) the value
	// scaled to UINT_MAX.
	if scaled := math.Floor(v*math.MaxUint32 + 0.5); scaled < 0 || scaled > math.MaxUint32 {
		p.fail(pos, "invalid probability: %f", scaled)
	}
	r.Prob = uint32(v * math.MaxUint32)
	if r.Prob == 0 {
		r.Prob = 1
	}
}

// keepSpec parses "no state", "keep state (...)", "modulate state", ...
func (p *parser) keepSpec(fo *filterOptions) {
	switch {
	case p.gotKw("no"):
		p.expectKw("state")
		fo.keep = StateNone
		return
	case p.gotKw("keep"):
		fo.keep = StateNormal
	case p.gotKw("modulate"):
		fo.keep = StateModulate
	case p.gotKw("synproxy"):
		fo.keep = StateSynproxy
	}
	p.expectKw("state")
	if !p.got(LPAREN) {
		return
	}
	p.optnl()
	for p.tok != RPAREN {
		fo.stateOpts = append(fo.stateOpts, p.stateOptItem())
		p.comma()
	}
	p.next()
}

func (p *parser) stateOptItem() stateOpt {
	pos := p.pos
	o := stateOpt{pos: pos}
	num := func(what string) uint32 {
		_, n := p.numberIn(0, math.MaxUint32, what)
		return uint32(n)
	}
	switch {
	case p.gotKw("max"):
		o.kind, o.n[0] = "max", num("only positive values permitted")
	case p.gotKw("no-sync"):
		o.kind = "no-sync"
	case p.gotKw("max-src-states"):
		o.kind, o.n[0] = "max-src-states", num("only positive values permitted")
	case p.gotKw("max-src-conn"):
		o.kind, o.n[0] = "max-src-conn", num("only positive values permitted")
	case p.gotKw("max-src-conn-rate"):
		o.kind, o.n[0] = "max-src-conn-rate", num("only positive values permitted")
		p.expect(SLASH)
		o.n[1] = num("only positive values permitted")
	case p.gotKw("max-src-nodes"):
		o.kind, o.n[0] = "max-src-nodes", num("only positive values permitted")
	case p.gotKw("overload"):
		o.kind = "overload"
		p.expect(LT)
		_, o.s = p.name()
		p.expect(GT)
		if len(o.s) >= 32 {
			// parse.y state_opt_item OVERLOAD (PF_TABLE_NAME_SIZE).
			p.fail(pos, "table name '%s' too long", o.s)
		}
		if p.gotKw("flush") {
			o.b = true
			o.g = p.gotKw("global")
		}
	case p.gotKw("source-track"):
		o.kind = "source-track"
		switch {
		case p.gotKw("rule"):
			o.b = true
		case p.gotKw("global"):
			o.g = true
		}
	case p.gotKw("if-bound"):
		o.kind = "if-bound"
	case p.gotKw("floating"):
		o.kind = "floating"
	case p.gotKw("sloppy"):
		o.kind = "sloppy"
	case p.gotKw("pflow"):
		o.kind = "pflow"
	case p.isString():
		_, name := p.str()
		if p.tok != NUMBER {
			p.syntaxError()
		}
		_, n := p.numberIn(0, math.MaxUint32, "only positive values permitted")
		tm, ok := timeoutByName(name)
		if !ok {
			p.fail(pos, "illegal timeout name %s", name)
		}
		if !strings.Contains(name, ".") {
			p.fail(pos, "illegal state timeout %s", name)
		}
		o.kind, o.n[0], o.n[1], o.s = "timeout", uint32(n), uint32(tm), name
	default:
		p.syntaxError()
	}
	return o
}

// pfThresholdMax is PF_THRESHOLD_MAX (0xffffffff / PF_THRESHOLD_MULT).
const pfThresholdMax = 0xffffffff / 1000

// applyStateOpts applies "keep state (...)" options to r (pfctl's checks).
func (p *parser) applyStateOpts(r *Rule, opts []stateOpt) {
	so := &r.StateOpts
	var srctrack, statelock bool
	var srctrackRule, srctrackGlobal bool
	dup := func(o stateOpt, name string) {
		p.fail(o.pos, "state option '%s' multiple definitions", name)
	}
	for _, o := range opts {
		switch o.kind {
		case "max":
			if so.Max != 0 {
				dup(o, "max")
			}
			so.Max = o.n[0]
		case "no-sync":
			if so.NoSync {
				dup(o, "sync")
			}
			so.NoSync = true
		case "source-track":
			if srctrack {
				dup(o, "source-track")
			}
			srctrack = true
			srctrackRule, srctrackGlobal = o.b, o.g
			so.SourceTrack = true
		case "max-src-states":
			if so.MaxSrcStates != 0 {
				dup(o, "max-src-states")
			}
			if o.n[0] == 0 {
				p.fail(o.pos, "'max-src-states' must be > 0")
			}
			so.MaxSrcStates = o.n[0]
			so.SourceTrack = true
		case "max-src-conn":
			if so.MaxSrcConn != 0 {
				dup(o, "max-src-conn")
			}
			if o.n[0] == 0 {
				p.fail(o.pos, "'max-src-conn' must be > 0")
			}
			so.MaxSrcConn = o.n[0]
			so.SourceTrack, so.SourceTrackRule = true, true
		case "max-src-conn-rate":
			if so.MaxSrcConnRate.Limit != 0 {
				dup(o, "max-src-conn-rate")
			}
			if o.n[0] == 0 || o.n[1] == 0 {
				p.fail(o.pos, "'max-src-conn-rate' values must be > 0")
			}
			if o.n[0] > pfThresholdMax {
				p.fail(o.pos, "'max-src-conn-rate' maximum rate must be < %d", pfThresholdMax)
			}
			so.MaxSrcConnRate.Limit, so.MaxSrcConnRate.Seconds = o.n[0], o.n[1]
			so.SourceTrack, so.SourceTrackRule = true, true
		case "max-src-nodes":
			if so.MaxSrcNodes != 0 {
				dup(o, "max-src-nodes")
			}
			if o.n[0] == 0 {
				p.fail(o.pos, "'max-src-nodes' must be > 0")
			}
			so.MaxSrcNodes = o.n[0]
			so.SourceTrack, so.SourceTrackRule = true, true
		case "overload":
			if so.Overload != "" {
				p.fail(o.pos, "multiple 'overload' table definitions")
			}
			so.Overload, so.Flush, so.FlushGlobal = o.s, o.b, o.g
		case "if-bound", "floating":
			if statelock {
				p.fail(o.pos, "state locking option: multiple definitions")
			}
			statelock = true
			so.IfBound = o.kind == "if-bound"
			so.Floating = o.kind == "floating"
		case "sloppy":
			if so.Sloppy {
				p.fail(o.pos, "state sloppy option: multiple definitions")
			}
			so.Sloppy = true
		case "pflow":
			// OpenBSD parse.y pfrule: PF_STATE_OPT_PFLOW.
			if so.Pflow {
				p.fail(o.pos, "state pflow option: multiple definitions")
			}
			so.Pflow = true
		case "timeout":
			if so.Timeouts[o.n[1]] != 0 {
				p.fail(o.pos, "state timeout %s multiple definitions", o.s)
			}
			so.Timeouts[o.n[1]] = o.n[0]
		}
	}
	// parse.y: "if (r.rule_flag & PFRULE_SRCTRACK)", which every
	// max-src-* option sets, not only an explicit source-track; the
	// src.track timeout then grows to the max-src-conn-rate interval.
	if so.SourceTrack {
		global := srctrack && srctrackGlobal
		if global && so.MaxSrcNodes != 0 {
			p.fail(r.Pos, "'max-src-nodes' is incompatible with 'source-track global'")
		}
		if global && so.MaxSrcConn != 0 {
			p.fail(r.Pos, "'max-src-conn' is incompatible with 'source-track global'")
		}
		if global && so.MaxSrcConnRate.Seconds != 0 {
			p.fail(r.Pos, "'max-src-conn-rate' is incompatible with 'source-track global'")
		}
		if so.Timeouts[TmSrcNode] < so.MaxSrcConnRate.Seconds {
			so.Timeouts[TmSrcNode] = so.MaxSrcConnRate.Seconds
		}
		if srctrackRule {
			so.SourceTrackRule = true
		}
	}
	if r.KeepState != StateNone && !statelock && p.statePolicyIfBound {
		so.IfBound = true
	}
}

// afToFamily is OpenBSD parse.y filter_opt AFTO's check that the af-to
// addresses written as literals are of the target family.
func (p *parser) afToFamily(pos Pos, spec *RedirSpec, naf AF) {
	for _, h := range spec.Hosts {
		if a := literalAF(h); a != AFUnspec && a != naf {
			p.fail(pos, "af-to addresses must be in the target address family")
		}
	}
}

// binatToChecks applies OpenBSD parse.y expand_rule's checks of binat-to
// (made for each expanded rule; the addresses as written decide them, so
// they are made once here). Each problem is reported, then the rule is
// skipped as expand_rule does.
func (p *parser) binatToChecks(rs *RuleStmt) {
	if !rs.BinatTo || rs.Nat == nil || len(rs.Nat.Hosts) == 0 {
		return
	}
	var msgs []string
	bad := func(format string, args ...any) { msgs = append(msgs, fmt.Sprintf(format, args...)) }
	nat := rs.Nat.Hosts[0]
	srcs := rs.SrcHosts
	if len(srcs) == 0 {
		srcs = []HostItem{{Kind: HostAddr, Bits: 0}} // any: an all-zero mask
	}
	for _, src := range srcs {
		switch {
		case src.Kind == HostTable:
			bad("invalid use of table <%s> as the source address of a binat-to rule", src.Name)
		case dynMultiItem(src):
			bad("invalid use of interface (%s) as the source address of a binat-to rule", src.Name)
		case src.Kind == HostNoRoute || src.Kind == HostURPF || src.Kind == HostRange || nat.Kind == HostTable || nat.Kind == HostRange:
			bad("binat-to requires a specified source and redirect address")
		}
		if dynMultiItem(src) || dynMultiItem(nat) {
			bad("dynamic interfaces must be used with :0 in a binat-to rule")
		}
		if (src.Kind == HostAddr && src.Bits == 0) || (nat.Kind == HostAddr && nat.Bits == 0) {
			bad("source and redir addresess must have a matching network mask in binat-rule")
		}
	}
	if nat.Kind == HostTable {
		bad("tables cannot be used as the redirect address of a binat-to rule")
	}
	if rs.R.Direction != DirAny {
		bad("binat-to cannot be specified with a direction")
	}
	if len(msgs) == 0 {
		return
	}
	for _, m := range msgs {
		p.errorf(rs.P, "%s", m)
	}
	p.errorf(rs.P, "skipping rule due to errors")
	p.fail(rs.P, "rule expands to no valid combination")
}

// tcpOnly is parse.y's check (pfrule, anchorrule) that flags and an OS
// fingerprint come with a protocol list that has tcp; pfrule writes
// "apply", anchorrule "applies".
func (p *parser) tcpOnly(rs *RuleStmt) {
	r := &rs.R
	if r.Flags == 0 && r.FlagSet == 0 && r.OS == "" {
		return
	}
	for _, pr := range rs.Protos {
		if pr.Proto == 6 {
			return
		}
	}
	if len(rs.Protos) == 0 {
		return
	}
	if r.Flags != 0 || r.FlagSet != 0 {
		p.errorf(rs.P, "flags only apply to tcp")
	}
	if r.OS != "" {
		if r.AnchorCall != "" || rs.anchorRule {
			p.errorf(rs.P, "OS fingerprinting only applies to tcp")
		} else {
			p.errorf(rs.P, "OS fingerprinting only apply to tcp")
		}
	}
	panic(bailout{})
}

// finishFilter applies pfctl's defaults and checks to a pass/block/match
// rule.
func (p *parser) finishFilter(rs *RuleStmt, fo *filterOptions) {
	r := &rs.R
	if fo.prio >= 0 {
		r.Prio = uint8(fo.prio)
		if fo.prio == 0 {
			r.Prio = prioZero
		}
	}
	if r.Flags&r.FlagSet != r.Flags {
		p.fail(rs.P, "flags always false")
	}
	p.tcpOnly(rs)
	r.KeepState = fo.keep
	opts := fo.stateOpts
	if !fo.keepGiven && r.Action == ActPass {
		// 'keep state' by default on pass rules, with the
		// state-defaults (parse.y: o = keep_state_defaults).
		r.KeepState = StateNormal
		opts = p.stateDefaults
	}
	p.applyStateOpts(r, opts)
	if r.AFTo && r.Direction != DirIn {
		p.fail(rs.P, "af-to can only be used with direction in")
	}
	// FreeBSD asks a direction of dup-to too, OpenBSD does not
	// (pfrule: $8.rt != PF_DUPTO); pfconf accepts what either accepts.
	if rs.Route != nil && r.RouteType != RouteFastRoute && r.RouteType != RouteDupTo && r.Direction == DirAny {
		p.fail(rs.P, "direction must be explicit with rules that specify routing")
	}
	if rs.Route != nil {
		r.PreferIPv6Nexthop = rs.Route.PreferV6
	}
	p.divertSpec(rs)
	p.binatToChecks(rs)
	if r.Action == ActPass && r.Flags == 0 && r.FlagSet == 0 && !r.Fragment && !rs.flagsGiven && r.KeepState != StateNone {
		r.Flags = 1 << 1        // S
		r.FlagSet = 1<<1 | 1<<4 // SA
	}
	if len(rs.ICMPs) > 0 {
		for _, it := range rs.ICMPs {
			if (it.Proto == 1 && r.AF == AFInet6) || (it.Proto == 58 && r.AF == AFInet) {
				p.fail(rs.P, "icmp-type mismatch")
			}
		}
	}
	if rs.Nat != nil && rs.Nat.StaticPort && rs.Nat.HasRPort {
		p.fail(rs.P, "the 'static-port' option can't be used when specifying a port range")
	}
	if rs.Rdr != nil && rs.Rdr.StaticPort {
		p.fail(rs.P, "the 'static-port' option is only valid with nat rules")
	}
}

// redirSpec parses a translation target: host, brace list, and optional
// "port" (nat-to, rdr-to, af-to, or old-style "->").
func (p *parser) redirSpec(pos Pos, _ bool) *RedirSpec {
	spec := &RedirSpec{P: pos, Hosts: braceList(p, p.xhostNoNot)}
	if p.gotKw("port") {
		spec.RPort = p.portRange(pPortRange | pPortStar)
		spec.HasRPort = true
	}
	return spec
}

func (p *parser) xhostNoNot() HostItem {
	pos := p.pos
	h := p.xhost()
	if h.Not {
		p.fail(pos, "invalid use of '!' in translation address")
	}
	if h.Kind == HostNoRoute || h.Kind == HostURPF {
		p.syntaxError()
	}
	return h
}

// scrubRule parses "scrub [in|out] [log] [quick] [on ...] [af] [proto] fromto opts".
func (p *parser) scrubRule() Stmt {
	rs := newRuleStmt(p.pos)
	r := &rs.R
	p.checkRuleState(rs.P, stateScrub)
	p.expectKw("scrub")
	r.Action = ActScrub
	r.Direction = p.dir()
	qpos := p.pos
	p.logQuick(r, true)
	if p.gotKw("on") {
		rs.Ifs = p.ruleIfs()
	}
	r.AF = p.af()
	if p.gotKw("proto") {
		rs.Protos = p.protoSpec()
	}
	p.fromTo(rs)
	p.scrubOpts(&r.Scrub, false, r)
	// parse.y scrubrule's checks.
	if r.Quick {
		p.fail(qpos, "scrub rules do not support 'quick'")
	}
	if r.Scrub.ReassembleTCP && r.Direction != DirAny {
		p.fail(rs.P, "reassemble tcp rules can not specify direction")
	}
	p.endStmt()
	return rs
}

// scrubOpts parses scrub options (space or comma separated). r is the
// scrub rule, whose options (FreeBSD parse.y scrub_opt) also take
// "[!] tagged NAME" and "rtable N"; nil inside "scrub ( ... )".
func (p *parser) scrubOpts(s *ScrubOpts, inParens bool, r *Rule) {
	seen := map[string]bool{}
	once := func(pos Pos, what string) {
		if seen[what] {
			p.fail(pos, "%s cannot be respecified", what)
		}
		seen[what] = true
	}
	for {
		pos := p.pos
		switch {
		case p.gotKw("no-df"):
			once(pos, "no-df")
			s.NoDF = true
		case p.gotKw("min-ttl"):
			once(pos, "min-ttl")
			_, n := p.numberIn(0, 255, "illegal min-ttl value %d")
			s.MinTTL = uint8(n)
		case p.gotKw("max-mss"):
			once(pos, "max-mss")
			_, n := p.numberIn(0, 65535, "illegal max-mss value %d")
			s.MaxMSS = uint16(n)
		case p.gotKw("set-tos"):
			once(pos, "set-tos")
			s.SetTOS = p.tos()
			s.SetTOSSet = true
		case p.gotKw("fragment"):
			once(pos, "fragcache")
			switch {
			case p.gotKw("reassemble"):
			case p.gotKw("no"):
				p.expectKw("reassemble")
				s.NoReassemble = true
			case p.gotKw("crop"), p.gotKw("drop-ovl"):
			default:
				p.syntaxError()
			}
		case p.gotKw("random-id"):
			once(pos, "random-id")
			s.RandomID = true
		case p.gotKw("reassemble"):
			once(pos, "reassemble tcp")
			_, w := p.str()
			if w != "tcp" {
				p.fail(pos, "scrub reassemble supports only tcp, not '%s'", w)
			}
			s.ReassembleTCP = true
		case r != nil && (p.tok == NOT || p.isKw("tagged")):
			r.TaggedNot = p.got(NOT)
			p.expectKw("tagged")
			_, r.Tagged = p.name()
			p.checkTag(pos, r.Tagged)
		case r != nil && p.gotKw("rtable"):
			_, n := p.numberIn(0, math.MaxInt32, "invalid rtable id")
			r.Rtable = int(n)
		default:
			if inParens && p.tok == COMMA {
				p.next()
				continue
			}
			return
		}
	}
}

// antispoof parses "antispoof [log] [quick] for IFS [af] [label ...]".
func (p *parser) antispoof() Stmt {
	rs := newRuleStmt(p.pos)
	r := &rs.R
	p.checkRuleState(rs.P, stateFilter)
	p.expectKw("antispoof")
	rs.Antispoof = true
	r.Action = ActBlock
	r.Direction = DirIn
	p.logQuick(r, true)
	p.expectKw("for")
	one := func() IfItem {
		pos := p.pos
		if p.got(LPAREN) {
			_, name := p.name()
			p.expect(RPAREN)
			return IfItem{P: pos, Name: name, Dynamic: true}
		}
		_, name := p.name()
		return IfItem{P: pos, Name: name}
	}
	if p.got(LBRACE) {
		p.optnl()
		for p.tok != RBRACE {
			rs.Ifs = append(rs.Ifs, one())
			p.comma()
		}
		p.next()
		if len(rs.Ifs) == 0 {
			p.syntaxError()
		}
	} else {
		rs.Ifs = []IfItem{one()}
	}
	r.AF = p.af()
	for {
		pos := p.pos
		switch {
		case p.gotKw("label"):
			_, s := p.str()
			if len(r.Labels) >= 5 {
				p.fail(pos, "label can only be used 5 times")
			}
			r.Labels = append(r.Labels, s)
			continue
		case p.gotKw("ridentifier"):
			npos, n := p.numberOrString()
			if n > math.MaxUint32 {
				p.fail(npos, "invalid ridentifier")
			}
			r.Ridentifier = uint32(n)
			continue
		}
		break
	}
	p.endStmt()
	return rs
}

// anchorRule parses anchor, nat-anchor, rdr-anchor and binat-anchor rules,
// with an optional inline body.
func (p *parser) anchorRule() Stmt {
	rs := newRuleStmt(p.pos)
	r := &rs.R
	rs.anchorRule = true
	kw := p.lit
	p.next()
	switch kw {
	case "anchor":
		r.Action = ActPass
		p.checkRuleState(rs.P, stateFilter)
	case "nat-anchor":
		r.Action = ActNAT
		p.checkRuleState(rs.P, stateNAT)
	case "rdr-anchor":
		r.Action = ActRDR
		p.checkRuleState(rs.P, stateNAT)
	case "binat-anchor":
		r.Action = ActBINAT
		p.checkRuleState(rs.P, stateNAT)
	}
	name := ""
	if p.isString() {
		npos, s := p.str()
		name = s
		if s == "" {
			p.fail(npos, "anchor name must not be empty")
		}
		// OpenBSD parse.y anchorname (PATH_MAX) and anchorrule.
		if len(s) >= 1024 {
			p.fail(npos, "anchor name is longer than 1023")
		}
		if strings.HasSuffix(s, "/") {
			p.fail(npos, "anchorrule: bad anchor name %s", s)
		}
		if s[0] == '_' || strings.Contains(s, "/_") {
			p.fail(npos, "anchor names beginning with '_' are reserved for internal use")
		}
	}
	if kw == "anchor" {
		r.Direction = p.dir()
		p.logQuick(r, true)
		if r.Log != 0 {
			p.fail(rs.P, "syntax error")
		}
	}
	if p.gotKw("on") {
		rs.Ifs = p.ruleIfs()
	}
	r.AF = p.af()
	if p.gotKw("proto") {
		rs.Protos = p.protoSpec()
	}
	p.fromTo(rs)
	var fo *filterOptions
	if kw == "anchor" {
		fo = p.filterOpts(rs)
		if r.Flags&r.FlagSet != r.Flags {
			p.fail(rs.P, "flags always false")
		}
		p.tcpOnly(rs)
		// parse.y anchorrule: filter_opts are parsed, then refused.
		if fo.keepGiven {
			p.fail(rs.P, "cannot specify state handling on anchors")
		}
		if rs.Route != nil {
			// OpenBSD anchorrule (FreeBSD has no route in it).
			p.fail(rs.P, "cannot specify route handling on anchors")
		}
		if r.Once {
			p.fail(rs.P, "cannot specify 'once' on anchors")
		}
		if rs.Nat != nil || rs.Rdr != nil {
			p.fail(rs.P, "syntax error")
		}
	} else if p.gotKw("rtable") {
		_, n := p.numberIn(0, math.MaxInt32, "invalid rtable id")
		r.Rtable = int(n)
	}
	switch kw {
	case "rdr-anchor":
		// parse.y anchorrule RDRANCHOR.
		if len(rs.SrcPorts) > 0 {
			p.fail(rs.P, "source port parameter not supported in rdr-anchor")
		}
		if len(rs.DstPorts) > 1 {
			p.fail(rs.P, "destination port list expansion not supported in rdr-anchor")
		}
		if len(rs.DstPorts) == 1 && rs.DstPorts[0].Op != OpEQ {
			p.fail(rs.P, "destination port operators not supported in rdr-anchor")
		}
	case "binat-anchor":
		// parse.y anchorrule BINATANCHOR.
		if len(rs.Protos) > 1 {
			p.fail(rs.P, "proto list expansion not supported in binat-anchor")
		}
		if len(rs.SrcHosts) > 0 || len(rs.SrcPorts) > 0 || len(rs.DstHosts) > 0 || len(rs.DstPorts) > 0 {
			p.fail(rs.P, "fromto parameter not supported in binat-anchor")
		}
	}
	if p.tok == LBRACE {
		bpos := p.pos
		p.next()
		if strings.Contains(name, "*") {
			p.fail(bpos, "wildcard anchor name not allowed in inline anchors")
		}
		p.anchorSeq++
		if name == "" {
			name = fmt.Sprintf("_%d", p.anchorSeq)
		}
		p.depth++
		if p.depth > 64 {
			p.fail(bpos, "anchors too deep")
		}
		outer := p.anchorNames
		p.anchorNames = map[string]bool{}
		body := p.stmtList(true)
		p.anchorNames = outer
		p.depth--
		if p.tok != RBRACE {
			p.fail(p.pos, "syntax error")
		}
		epos := p.pos
		p.next()
		// parse.y anchorrule, inline: checked once the body is read.
		if strings.Contains(name, "/") {
			p.fail(epos, "anchor paths containing '/' cannot be used for inline anchors.")
		}
		if p.anchorNames[name] {
			p.fail(epos, "inline anchor '%s' already exists", name)
		}
		rs.Body = body
		rs.Inline = true
	} else if name == "" {
		p.fail(rs.P, "anchors without explicit rules must specify a name")
	}
	r.AnchorCall = name
	p.endStmt()
	if kw == "anchor" {
		if p.anchorNames == nil {
			p.anchorNames = map[string]bool{}
		}
		p.anchorNames[name] = true
	}
	return rs
}

// loadRule parses "load anchor NAME from FILE".
func (p *parser) loadRule() Stmt {
	pos := p.pos
	p.expectKw("load")
	p.expectKw("anchor")
	if p.isKw("from") {
		// OpenBSD parse.y loadrule.
		p.fail(p.pos, "anchor name is missing")
	}
	npos, name := p.str()
	p.expectKw("from")
	_, file := p.str()
	p.endStmt()
	// parse.y loadrule: the anchor path must fit MAXPATHLEN (the
	// message carries a newline of its own).
	if len(name) >= 1024 {
		p.fail(npos, "anchorname %s too long, max 1023\n", name)
	}
	return &LoadStmt{P: pos, Name: name, File: file}
}

var _ = netip.Addr{}

// setOpt parses one of OpenBSD's "set" filter options (parse.y
// filter_set): prio N, prio (N, M), queue Q, queue (Q, P), tos T.
func (p *parser) setOpt(r *Rule, fo *filterOptions) {
	pos := p.pos
	switch {
	case p.gotKw("prio"):
		// parse.y filter_set prio: FOM_SETPRIO.
		if fo.setPrio {
			p.fail(pos, "prio cannot be redefined")
		}
		fo.setPrio = true
		if p.got(LPAREN) {
			_, a := p.numberIn(0, 7, "prio must be 0 - 7")
			p.comma()
			_, b := p.numberIn(0, 7, "prio must be 0 - 7")
			p.expect(RPAREN)
			r.SetPrio = [2]uint8{uint8(a), uint8(b)}
		} else {
			_, a := p.numberIn(0, 7, "prio must be 0 - 7")
			r.SetPrio = [2]uint8{uint8(a), uint8(a)}
		}
		r.SetPrioSet = true
	case p.gotKw("tos"):
		// OpenBSD parse.y filter_set SET TOS: FOM_SETTOS.
		if fo.setTOS {
			p.fail(pos, "tos cannot be respecified")
		}
		fo.setTOS = true
		r.SetTOS = p.tos()
		r.SetTOSSet = true
	case p.gotKw("queue"):
		if fo.queue {
			p.fail(pos, "queue cannot be redefined")
		}
		fo.queue = true
		p.queueName(r)
	default:
		p.syntaxError()
	}
}

// queueName parses "Q" or "(Q, P)" of a queue assignment.
func (p *parser) queueName(r *Rule) {
	pos := p.pos
	if p.got(LPAREN) {
		_, r.Queue = p.name()
		if p.got(COMMA) {
			p.optnl()
			_, r.PQueue = p.name()
		}
		p.expect(RPAREN)
	} else {
		_, r.Queue = p.name()
	}
	// parse.y pfrule: qname and pqname must fit PF_QNAME_SIZE.
	if len(r.Queue) >= 64 {
		p.fail(pos, "rule qname too long (max 63 chars)")
	}
	if len(r.PQueue) >= 64 {
		p.fail(pos, "rule pqname too long (max 63 chars)")
	}
}

// divertSpec applies OpenBSD parse.y's expand_divertspec checks: divert-to
// with an address diverts incoming packets to a local socket and gives the
// rule the address's family; divert-reply is for outgoing ones. (FreeBSD's
// divert-to takes only a port, for ipfw divert sockets, and has no checks.)
func (p *parser) divertSpec(rs *RuleStmt) {
	r := &rs.R
	if r.DivertAddr.IsValid() {
		if r.Direction == DirOut {
			p.fail(rs.P, "divert-to used with outgoing rule")
		}
		af := AFInet
		if r.DivertAddr.Is6() {
			af = AFInet6
		}
		if r.AF != 0 && r.AF != af {
			p.fail(rs.P, "divert-to address family mismatch")
		}
		r.AF = af
	}
	if r.DivertReply && r.Direction == DirIn {
		p.fail(rs.P, "divert-reply used with incoming rule")
	}
}
