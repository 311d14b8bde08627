package pfconf

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// etherRule parses "ether pass|block|anchor ..." rules.
func (p *parser) etherRule() Stmt {
	pos := p.pos
	p.expectKw("ether")
	p.checkRuleState(pos, stateEther)
	es := &EtherStmt{P: pos}
	r := &es.R
	r.Pos = pos
	anchor := false
	switch {
	case p.gotKw("pass"):
		r.Action = ActPass
	case p.gotKw("block"):
		r.Action = ActBlock
	case p.gotKw("match"):
		r.Action = ActMatch
	case p.gotKw("anchor"):
		anchor = true
		if p.isString() {
			npos, name := p.str()
			r.AnchorCall = name
			// parse.y etheranchorrule.
			if name != "" && (name[0] == '_' || strings.Contains(name, "/_")) {
				p.fail(npos, "anchor names beginning with '_' are reserved for internal use")
			}
		}
	default:
		p.syntaxError()
	}
	r.Direction = p.dir()
	r.Quick = p.gotKw("quick")
	if p.gotKw("on") {
		es.Ifs = p.ifList()
	}
	if p.gotKw("bridge-to") {
		_, r.BridgeTo = p.name()
	}
	if p.gotKw("proto") {
		// parse.y etherprotoval and etherproto_item.
		one := func() uint16 {
			ppos := p.pos
			var n uint64
			if p.tok == NUMBER {
				_, v := p.number()
				if v < 0 || v > 65565 {
					p.fail(ppos, "protocol outside range")
				}
				n = uint64(v)
			} else {
				_, s := p.str()
				if !strings.HasPrefix(s, "0x") {
					p.fail(ppos, "Symbolic EtherType not yet supported")
				}
				// sscanf "0x%4x": up to four hex digits.
				h := s[2:]
				if len(h) > 4 {
					h = h[:4]
				}
				v, err := strconv.ParseUint(h, 16, 16)
				if err != nil {
					p.fail(ppos, "invalid EtherType hex")
				}
				n = v
			}
			if uint16(n) == 0 {
				p.fail(ppos, "proto 0 cannot be used")
			}
			return uint16(n)
		}
		if p.got(LBRACE) {
			p.optnl()
			for p.tok != RBRACE {
				es.Protos = append(es.Protos, one())
				p.comma()
			}
			p.next()
		} else {
			es.Protos = []uint16{one()}
		}
	}
	if !p.gotKw("all") {
		if p.gotKw("from") {
			es.Srcs = p.macSpec()
		}
		if p.gotKw("to") {
			es.Dsts = p.macSpec()
		}
	}
	if p.gotKw("l3") {
		tmp := &RuleStmt{}
		lpos := p.pos
		p.fromTo(tmp)
		es.IPSrc, es.IPDst = tmp.SrcHosts, tmp.DstHosts
		// parse.y l3fromto: only an address (host names are
		// resolved to addresses) or a table.
		l3ok := func(l []HostItem) bool {
			for _, h := range l {
				if h.Kind != HostAddr && h.Kind != HostName && h.Kind != HostTable {
					return false
				}
			}
			return true
		}
		if !l3ok(es.IPSrc) {
			p.fail(lpos, "from must be an address or table")
		}
		if !l3ok(es.IPDst) {
			p.fail(lpos, "to must be an address or table")
		}
	}
	for {
		opos := p.pos
		switch {
		case p.gotKw("queue"):
			if r.Queue != "" {
				p.fail(opos, "queue cannot be redefined")
			}
			_, r.Queue = p.name()
			continue
		case p.gotKw("tag"):
			_, r.Tag = p.name()
			continue
		case p.tok == NOT || p.isKw("tagged"):
			r.TaggedNot = p.got(NOT)
			p.expectKw("tagged")
			_, r.Tagged = p.name()
			p.checkTag(opos, r.Tagged)
			continue
		case p.gotKw("label"):
			_, s := p.str()
			if len(r.Labels) >= 5 {
				p.fail(opos, "label can only be used 5 times")
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
		case p.isKw("dnpipe"), p.isKw("dnqueue"):
			r.DnQueue = p.lit == "dnqueue"
			p.next()
			_, n := p.numberIn(0, math.MaxUint32, "invalid dummynet number")
			r.Dnpipe = uint32(n)
			continue
		}
		break
	}
	if anchor && p.tok == LBRACE {
		bpos := p.pos
		p.next()
		p.anchorSeq++
		if r.AnchorCall == "" {
			r.AnchorCall = fmt.Sprintf("_%d", p.anchorSeq)
		}
		p.depth++
		if p.depth > 64 {
			p.fail(bpos, "anchors too deep")
		}
		es.Body = p.stmtList(true)
		p.depth--
		epos := p.pos
		p.expect(RBRACE)
		es.Inline = true
		if strings.Contains(r.AnchorCall, "/") {
			p.fail(epos, "anchor paths containing '/' cannot be used for inline anchors.")
		}
	} else if anchor && r.AnchorCall == "" {
		p.fail(pos, "anchors without explicit rules must specify a name")
	}
	p.endStmt()
	return es
}

// macSpec parses one MAC address or a brace list.
func (p *parser) macSpec() []EtherAddr {
	if p.got(LBRACE) {
		p.optnl()
		var l []EtherAddr
		for p.tok != RBRACE {
			l = append(l, p.mac())
			p.comma()
		}
		p.next()
		return l
	}
	return []EtherAddr{p.mac()}
}

func parseMAC(s string) ([6]byte, bool) {
	var m [6]byte
	parts := strings.Split(s, ":")
	if len(parts) != 6 {
		return m, false
	}
	for i, x := range parts {
		if len(x) == 0 || len(x) > 2 {
			return m, false
		}
		v, err := strconv.ParseUint(x, 16, 8)
		if err != nil {
			return m, false
		}
		m[i] = byte(v)
	}
	return m, true
}

func (p *parser) mac() EtherAddr {
	not := p.got(NOT)
	pos, s := p.str()
	a := EtherAddr{Neg: not, Set: true}
	for i := range a.Mask {
		a.Mask[i] = 0xff
	}
	addr, mask, hasMask := strings.Cut(s, "&")
	m, ok := parseMAC(addr)
	if !ok {
		p.fail(pos, "invalid MAC address")
	}
	a.Addr = m
	if m == ([6]byte{}) {
		// pfctl prints an all-zero address as nothing ("to  l3"); treat
		// it as no address so the printed rule parses again.
		a.Set = false
	}
	if hasMask {
		mm, ok := parseMAC(mask)
		if !ok {
			p.fail(pos, "invalid MAC mask")
		}
		a.Mask = mm
	} else if p.got(SLASH) {
		_, n := p.numberIn(0, 48, "invalid MAC mask length")
		a.Mask = [6]byte{}
		// pfctl fills (and prints) MAC mask bits from the low bit of
		// each byte; whole bytes, the usual case, are the same either way.
		for i := 0; i < int(n); i++ {
			a.Mask[i/8] |= 1 << uint(i%8)
		}
	}
	return a
}
