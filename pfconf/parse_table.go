package pfconf

import (
	"math"
	"strconv"
)

// table parses "table <name> [const|persist|counters] [{ ... }] [file "f"] ...".
func (p *parser) table() Stmt {
	pos := p.pos
	p.expectKw("table")
	p.expect(LT)
	npos, name := p.name()
	p.expect(GT)
	if len(name) >= 32 {
		p.fail(npos, "table name too long, max 31 chars")
	}
	if name == "" {
		p.fail(npos, "empty table name")
	}
	t := &TableStmt{P: pos, Name: name}
	for {
		switch {
		case p.isString():
			opos, s := p.str()
			switch s {
			case "const":
				t.Const = true
			case "persist":
				t.Persist = true
			case "counters":
				t.Counters = true
			default:
				p.fail(opos, "invalid table option '%s'", s)
			}
		case p.tok == LBRACE:
			ipos := p.pos
			p.next()
			p.optnl()
			var hosts []HostItem
			for p.tok != RBRACE {
				hosts = append(hosts, p.ipSpec()...)
				p.comma()
			}
			p.next()
			// parse.y table_opt '{' host_list '}': only addresses
			// (host names are resolved to addresses by host()).
			for _, h := range hosts {
				switch h.Kind {
				case HostRange:
					p.fail(h.P, "address ranges are not permitted inside tables")
				case HostDynIf:
					p.fail(h.P, "dynamic addresses are not permitted inside tables")
				case HostTable:
					p.fail(h.P, "tables cannot contain tables")
				case HostNoRoute:
					p.fail(h.P, "\"no-route\" is not permitted inside tables")
				case HostURPF:
					p.fail(h.P, "\"urpf-failed\" is not permitted inside tables")
				}
			}
			t.InitAddr = true
			if len(hosts) > 0 {
				t.Inits = append(t.Inits, TableInitItem{P: ipos, Hosts: hosts})
			}
		case p.isKw("file"):
			fpos := p.pos
			p.next()
			_, f := p.str()
			t.Inits = append(t.Inits, TableInitItem{P: fpos, File: f})
		default:
			p.endStmt()
			return t
		}
	}
}

// limiter parses "state limiter NAME id N limit N [rate N/N]".
func (p *parser) limiter() Decl {
	pos := p.pos
	p.expectKw("state")
	if !(p.tok == WORD && p.lit == "limiter") {
		p.syntaxError()
	}
	p.next()
	npos, name := p.str()
	d := &LimiterDecl{Pos: pos, Name: name}
	gotID, gotLimit := false, false
	for p.tok == WORD {
		switch p.lit {
		case "id":
			p.next()
			_, n := p.numberIn(1, math.MaxUint32, "invalid state limiter id")
			d.ID, gotID = uint32(n), true
		case "limit":
			p.next()
			_, n := p.numberIn(1, math.MaxUint32, "invalid state limiter limit")
			d.Limit, gotLimit = uint32(n), true
		case "rate":
			p.next()
			_, a := p.numberIn(1, math.MaxUint32, "invalid state limiter rate")
			p.expect(SLASH)
			_, b := p.numberIn(1, math.MaxUint32, "invalid state limiter rate")
			d.Rate.Limit, d.Rate.Seconds = uint32(a), uint32(b)
		default:
			p.syntaxError()
		}
	}
	if !gotID {
		p.fail(npos, "state limiter %s: id not specified", name)
	}
	if !gotLimit {
		p.fail(npos, "state limiter %s: limit not specified", name)
	}
	if _, dup := p.limiters[name]; dup {
		p.fail(npos, "state limiter %s already defined", name)
	}
	for _, o := range p.limiters {
		if o.ID == d.ID {
			p.fail(npos, "state limiter id %d already in use", d.ID)
		}
	}
	p.endStmt()
	p.limiters[name] = d
	return d
}

// String renders a limiter declaration as pfctl prints it.
func (d *LimiterDecl) String() string {
	s := "state limiter " + d.Name + " id " + strconv.FormatUint(uint64(d.ID), 10) +
		" limit " + strconv.FormatUint(uint64(d.Limit), 10)
	if d.Rate.Limit != 0 {
		s += " rate " + strconv.FormatUint(uint64(d.Rate.Limit), 10) + "/" + strconv.FormatUint(uint64(d.Rate.Seconds), 10)
	}
	return s
}
