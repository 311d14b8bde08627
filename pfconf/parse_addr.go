package pfconf

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/pfcarp/pfcarp/netdb"
)

// interfaces parses "on IF", "on ! IF", "on { IF, ! IF }" (after "on").
func (p *parser) ifList() []IfItem {
	return braceList(p, p.ifItem)
}

// ifNameSize is IFNAMSIZ: an interface name has at most 15 bytes.
const ifNameSize = 16

func (p *parser) ifItem() IfItem {
	not := p.got(NOT)
	if p.anyIf && p.isKw("any") {
		// OpenBSD's if_item ANY: the interface "any" (see ruleIfs).
		pos := p.pos
		p.next()
		return IfItem{P: pos, Name: "any", Not: not}
	}
	pos, name := p.name()
	if len(name) >= 16 {
		p.fail(pos, "interface name too long")
	}
	if name == "" || !(name[0] >= 'a' && name[0] <= 'z' || name[0] >= 'A' && name[0] <= 'Z') {
		// Interface names start with a letter; a digit would print as a
		// number that does not parse back.
		p.fail(pos, "invalid interface name '%s'", name)
	}
	return IfItem{P: pos, Name: name, Not: not}
}

// ruleIfs parses the interfaces of a rule's "on". OpenBSD accepts "on
// any", which pf matches against every interface: the rule is kept without
// an interface, which means the same (pfctl would print "on any"). "any"
// inside a list or negated is refused: it would make one rule match all
// interfaces or none.
func (p *parser) ruleIfs() []IfItem {
	p.anyIf = true
	ifs := p.ifList()
	p.anyIf = false
	for _, i := range ifs {
		if i.Name != "any" {
			continue
		}
		if len(ifs) > 1 || i.Not {
			p.fail(i.P, "interface any must stand alone: use \"on any\" or leave \"on\" out")
		}
		return nil
	}
	return ifs
}

// protoSpec parses what follows "proto".
func (p *parser) protoSpec() []ProtoItem {
	return braceList(p, p.protoItem)
}

func (p *parser) protoItem() ProtoItem {
	pos := p.pos
	if p.tok == NUMBER {
		_, n := p.number()
		if n < 0 || n > 255 {
			p.fail(pos, "protocol outside range")
		}
		if n == 0 {
			// parse.y proto_item.
			p.fail(pos, "proto 0 cannot be used")
		}
		return ProtoItem{P: pos, Proto: uint8(n)}
	}
	_, name := p.str()
	n, ok := netdb.ProtoByName(name)
	if !ok && p.tok == SLASH {
		// FreeBSD names protocol 107 "a/n"; pfctl prints it that way.
		p.next()
		_, rest := p.numberString()
		name += "/" + rest
		n, ok = netdb.ProtoByName(name)
	}
	if !ok {
		p.fail(pos, "unknown protocol %s", name)
	}
	if n == 0 {
		p.fail(pos, "proto 0 cannot be used")
	}
	return ProtoItem{P: pos, Proto: n}
}

// addrSpec parses "ipspec [port portspec] | port portspec" after from/to.
func (p *parser) ipPortSpec() (hosts []HostItem, ports []PortItem) {
	if !p.isKw("port") {
		hosts = p.ipSpec()
	}
	if p.gotKw("port") {
		ports = p.portSpec()
	}
	return hosts, ports
}

// ipSpec parses "any", one host or a brace list. A nil result means any.
func (p *parser) ipSpec() []HostItem {
	if p.gotKw("any") {
		return nil
	}
	if p.got(LBRACE) {
		p.optnl()
		var l []HostItem
		n := 0
		for p.tok != RBRACE {
			l = append(l, p.ipSpec()...)
			n++
			p.comma()
		}
		p.next()
		if n == 0 {
			p.syntaxError()
		}
		return l
	}
	return []HostItem{p.xhost()}
}

// xhost parses "[!] host | [!] no-route | [!] urpf-failed".
func (p *parser) xhost() HostItem {
	not := p.got(NOT)
	pos := p.pos
	var h HostItem
	switch {
	case p.gotKw("no-route"):
		h = HostItem{P: pos, Kind: HostNoRoute, Bits: -1}
	case p.gotKw("urpf-failed"):
		h = HostItem{P: pos, Kind: HostURPF, Bits: -1}
	default:
		h = p.host()
	}
	h.Not = not
	return h
}

// host parses one address form (pfctl's "host" production).
func (p *parser) host() HostItem {
	pos := p.pos
	switch {
	case p.tok == LT:
		p.next()
		_, name := p.name()
		p.expect(GT)
		if len(name) >= 32 {
			// parse.y host '<' STRING '>' (PF_TABLE_NAME_SIZE).
			p.fail(pos, "table name '%s' too long", name)
		}
		return HostItem{P: pos, Kind: HostTable, Name: name, Bits: -1}
	case p.tok == LPAREN:
		h := p.dynaddr()
		if p.got(SLASH) {
			bpos, n := p.number()
			if n < 0 || n > 128 {
				p.fail(bpos, "bit number too big")
			}
			h.Bits = int(n)
		}
		return h
	case p.tok == NUMBER:
		a := p.lit
		p.next()
		if p.tok != SLASH {
			p.fail(pos, "syntax error")
		}
		p.next()
		bpos, n := p.number()
		return p.hostString(pos, a+"/"+strconv.FormatInt(n, 10), bpos)
	case p.isString():
		_, s := p.str()
		if p.tok == MINUS {
			p.next()
			epos, e := p.str()
			b, okb := parseIP(s)
			en, oke := parseIP(e)
			if !okb || !oke {
				p.fail(pos, "could not parse host specification")
			}
			_ = epos
			if b.Is4() != en.Is4() {
				p.fail(pos, "invalid address range")
			}
			return HostItem{P: pos, Kind: HostRange, Addr: b, To: en, Bits: -1}
		}
		if p.tok == SLASH {
			p.next()
			bpos, n := p.number()
			return p.hostString(pos, s+"/"+strconv.FormatInt(n, 10), bpos)
		}
		return p.hostString(pos, s, pos)
	}
	p.syntaxError()
	return HostItem{}
}

// parseIP parses an IPv4 or IPv6 literal (IPv6 may carry a %zone).
func parseIP(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a, true
}

// parseNetV4 parses the inet_net_pton forms "a", "a.b", "a.b.c", "a.b.c.d"
// (decimal parts) used before a "/bits".
func parseNetV4(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var b [4]byte
	for i, part := range parts {
		if part == "" || len(part) > 3 {
			return netip.Addr{}, false
		}
		n, err := strconv.Atoi(part)
		if err != nil || n > 255 {
			return netip.Addr{}, false
		}
		b[i] = byte(n)
	}
	return netip.AddrFrom4(b), true
}

// hostString classifies a host string as pfctl's host() does, without any
// lookup: an IPv4 or IPv6 literal (with optional /bits), otherwise a name
// (interface, group, self or host name) with optional :modifiers.
func (p *parser) hostString(pos Pos, s string, bpos Pos) HostItem {
	h := HostItem{P: pos, Bits: -1}
	base := s
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		base = s[:i]
		n, err := strconv.Atoi(s[i+1:])
		if err != nil || n < 0 || n > 128 {
			p.errorf(bpos, "invalid netmask '%s'", s[i:])
			p.fail(pos, "could not parse host specification")
		}
		h.Bits = n
		if a, ok := parseNetV4(base); ok && strings.Contains(s, "/") && n <= 32 {
			h.Kind, h.Addr = HostAddr, a
			return h
		}
	}
	if a, ok := parseIP(base); ok {
		if a.Is4() && h.Bits > 32 {
			p.fail(pos, "could not parse host specification")
		}
		h.Kind, h.Addr = HostAddr, a
		return h
	}
	// A name, maybe with modifiers.
	name := base
	for {
		i := strings.LastIndexByte(name, ':')
		if i < 0 {
			break
		}
		switch name[i+1:] {
		case "network":
			h.IfFlags |= IfNetwork
		case "broadcast":
			h.IfFlags |= IfBroadcast
		case "peer":
			h.IfFlags |= IfPeer
		case "0":
			h.IfFlags |= IfNoAlias
		default:
			p.errorf(pos, "no IP address found for %s", s)
			p.fail(pos, "could not parse host specification")
		}
		name = name[:i]
	}
	m := h.IfFlags & (IfNetwork | IfBroadcast | IfPeer)
	if m&(m-1) != 0 {
		p.errorf(pos, "illegal combination of interface modifiers")
		p.fail(pos, "could not parse host specification")
	}
	if h.IfFlags&(IfNetwork|IfBroadcast) != 0 && h.Bits >= 0 {
		p.errorf(pos, "network or broadcast lookup, but extra netmask given")
		p.fail(pos, "could not parse host specification")
	}
	if name == "" {
		p.fail(pos, "could not parse host specification")
	}
	h.Kind, h.Name = HostName, name
	return h
}

// dynaddr parses "(ifname[:modifier])".
func (p *parser) dynaddr() HostItem {
	pos := p.pos
	p.expect(LPAREN)
	_, s := p.str()
	p.expect(RPAREN)
	if s == "" || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		p.fail(pos, "invalid interface name '%s'", s)
	}
	h := HostItem{P: pos, Kind: HostDynIf, Bits: -1}
	name := s
	for {
		i := strings.LastIndexByte(name, ':')
		if i < 0 {
			break
		}
		switch name[i+1:] {
		case "network":
			h.IfFlags |= IfNetwork
		case "broadcast":
			h.IfFlags |= IfBroadcast
		case "peer":
			h.IfFlags |= IfPeer
		case "0":
			h.IfFlags |= IfNoAlias
		default:
			p.fail(pos, "interface %s has bad modifier", s)
		}
		name = name[:i]
	}
	m := h.IfFlags & (IfNetwork | IfBroadcast | IfPeer)
	if m&(m-1) != 0 {
		p.fail(pos, "illegal combination of interface modifiers")
	}
	if len(name) >= 16 {
		p.fail(pos, "interface name too long")
	}
	if !wordLike(name) {
		p.fail(pos, "invalid interface name '%s'", s)
	}
	h.Name = name
	return h
}

// portSpec parses what follows "port".
func (p *parser) portSpec() []PortItem {
	return braceList(p, p.portItem)
}

func unaryOp(t Token) (PortOp, bool) {
	switch t {
	case ASSIGN:
		return OpEQ, true
	case NE:
		return OpNE, true
	case LT:
		return OpLT, true
	case LE:
		return OpLE, true
	case GT:
		return OpGT, true
	case GE:
		return OpGE, true
	}
	return OpNone, false
}

func (p *parser) portItem() PortItem {
	pos := p.pos
	if op, ok := unaryOp(p.tok); ok {
		p.next()
		r := p.portRange(pPortRange)
		if r.T != OpNone {
			p.fail(pos, "':' cannot be used with an other port operator")
		}
		return PortItem{P: pos, Op: op, Port: [2]uint16{r.A, r.B}}
	}
	r := p.portRange(pPortRange)
	if p.tok == IRG || p.tok == XRG {
		op := OpIRG
		if p.tok == XRG {
			op = OpXRG
		}
		p.next()
		r2 := p.portRange(pPortRange)
		if r.T != OpNone || r2.T != OpNone {
			p.fail(pos, "':' cannot be used with an other port operator")
		}
		return PortItem{P: pos, Op: op, Port: [2]uint16{r.A, r2.A}}
	}
	if r.T != OpNone {
		return PortItem{P: pos, Op: OpRRG, Port: [2]uint16{r.A, r.B}}
	}
	return PortItem{P: pos, Op: OpEQ, Port: [2]uint16{r.A, r.B}}
}

const (
	pPortRange = 1 << iota
	pPortStar
)

// portRange parses a port, "a:b" or (with pPortStar) "a:*" (pfctl's
// parseport).
func (p *parser) portRange(ext int) portRange {
	pos, s := p.numberString()
	var r portRange
	i := strings.IndexByte(s, ':')
	if i < 0 {
		r.A = p.service(pos, s)
		return r
	}
	if ext&pPortStar != 0 && s[i+1:] == "*" {
		r.A = p.service(pos, s[:i])
		r.T = OpIRG
		return r
	}
	if ext&pPortRange != 0 {
		r.A = p.service(pos, s[:i])
		r.B = p.service(pos, s[i+1:])
		if r.A == r.B {
			r.B = 0
		} else {
			r.T = OpRRG
		}
		return r
	}
	p.fail(pos, "syntax error")
	return r
}

// service resolves a port number or name (tcp first, then udp).
func (p *parser) service(pos Pos, s string) uint16 {
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		if n > 65535 {
			p.fail(pos, "illegal port value %d", n)
		}
		return uint16(n)
	}
	if port, ok := netdb.PortByName(s, "tcp"); ok {
		return port
	}
	if port, ok := netdb.PortByName(s, "udp"); ok {
		return port
	}
	p.fail(pos, "unknown port %s", s)
	return 0
}

// idSpec parses the list after "user" or "group".
func (p *parser) idSpec(isUser bool) []IDItem {
	return braceList(p, func() IDItem { return p.idItem(isUser) })
}

func (p *parser) idItem(isUser bool) IDItem {
	pos := p.pos
	it := IDItem{P: pos, isSet: true}
	one := func(i int) {
		if p.tok == NUMBER {
			npos, n := p.number()
			max := int64(1<<32 - 1)
			if n < 0 || n >= max {
				if isUser {
					p.fail(npos, "illegal uid value %d", n)
				}
				p.fail(npos, "illegal gid value %d", n)
			}
			it.ID[i] = uint32(n)
			return
		}
		_, s := p.str()
		it.Name[i] = s
	}
	// parse.y uid_item / gid_item: "unknown" (UID_MAX) only with = or !=.
	unknownOp := func() {
		if isUser {
			p.fail(pos, "user unknown requires operator = or !=")
		}
		p.fail(pos, "group unknown requires operator = or !=")
	}
	if op, ok := unaryOp(p.tok); ok {
		p.next()
		it.Op = op
		one(0)
		if it.Name[0] == "unknown" && op != OpEQ && op != OpNE {
			unknownOp()
		}
		return it
	}
	one(0)
	if p.tok == IRG || p.tok == XRG {
		it.Op = OpIRG
		if p.tok == XRG {
			it.Op = OpXRG
		}
		p.next()
		one(1)
		if it.Name[0] == "unknown" || it.Name[1] == "unknown" {
			unknownOp()
		}
		return it
	}
	it.Op = OpEQ
	return it
}
