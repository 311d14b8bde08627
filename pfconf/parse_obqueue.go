package pfconf

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// OpenBSD's queueing (5.5 and later) replaced ALTQ with one grammar,
// parse.y's queuespec:
//
//	queue NAME [on IF] [bandwidth SC [[,] min SC] [[,] max SC]]
//	                   [parent NAME] [default] [qlimit N] [flows N] [quantum N]
//	SC = BW [burst BW for Nms]
//
// A queue with "on IF" and no parent is the root of IF's tree; the others
// name their parent. FreeBSD still has ALTQ's "queue NAME [on IF] bandwidth
// ... cbq(...) { children }" (queue in parse_queue.go); obQueueStart tells
// the two apart.

// obQueueStart reports whether the queue statement whose name (and "on"
// list) was just read is an OpenBSD queue: it names a parent or uses one of
// the options ALTQ does not have, or it has "on IF" and no ALTQ discipline
// lists it.
func (p *parser) obQueueStart(name string, ifs []IfItem) bool {
	if p.tok == WORD {
		switch p.lit {
		case "parent", "flows", "quantum", "default", "min", "max", "burst":
			return true
		}
	}
	if len(ifs) == 0 {
		return false
	}
	for _, q := range p.queues {
		if q.name == name {
			return false
		}
	}
	return p.altqRoots[ifs[0].Name] == nil
}

// obScSpec is a service curve: m2, or m2 with a burst m1 for d ms.
type obScSpec struct {
	m2, m1 uint64
	d      uint64
}

func (p *parser) obBandwidth() uint64 {
	pos := p.pos
	bw := p.bandwidth()
	if bw.percent > 0 {
		p.fail(pos, "no bandwidth in %% yet")
	}
	if bw.abs > math.MaxInt64 {
		p.fail(pos, "bandwidth number too big")
	}
	return uint64(bw.abs)
}

func (p *parser) obScSpec() obScSpec {
	sc := obScSpec{m2: p.obBandwidth()}
	if p.gotKw("burst") {
		sc.m1 = p.obBandwidth()
		p.expectKw("for")
		tpos, s := p.str()
		ms, ok := strings.CutSuffix(s, "ms")
		n, err := strconv.ParseUint(ms, 10, 32)
		if !ok || err != nil {
			p.fail(tpos, "time in scspec must be in ms")
		}
		sc.d = n
	}
	return sc
}

// obQueue parses the options of an OpenBSD queue (after "queue NAME [on
// IF]") with parse.y's checks and returns it as pfctl -nv prints it
// (pfctl_parser.c print_queuespec).
func (p *parser) obQueue(pos, npos Pos, name string, ifs []IfItem) Decl {
	var (
		bw, min, max                  obScSpec
		bwSet, minSet, maxSet, defSet bool
		parent                        string
		qlimit, flows, quantum        int64
		qlimSet, flowsSet, quantSet   bool
	)
	if strings.HasPrefix(name, "_") {
		// OpenBSD parse.y queuespec.
		p.fail(npos, "queue names must not start with _")
	}
	for p.tok != NEWLINE && p.tok != EOF {
		opos := p.pos
		switch {
		case p.gotKw("bandwidth"):
			if bwSet {
				p.fail(opos, "bandwidth cannot be respecified")
			}
			bw, bwSet = p.obScSpec(), true
			// optscs: [,] min SC [[,] max SC] or the other order.
			for i := 0; i < 2; i++ {
				save := p.tok == COMMA
				if save {
					p.next()
				}
				switch {
				case !minSet && p.gotKw("min"):
					min, minSet = p.obScSpec(), true
				case !maxSet && p.gotKw("max"):
					max, maxSet = p.obScSpec(), true
				default:
					if save {
						p.syntaxError()
					}
					i = 2
				}
			}
		case p.gotKw("parent"):
			if parent != "" {
				p.fail(opos, "parent cannot be respecified")
			}
			_, parent = p.name()
		case p.gotKw("default"):
			if defSet {
				p.fail(opos, "default cannot be respecified")
			}
			defSet = true
		case p.gotKw("qlimit"):
			if qlimSet {
				p.fail(opos, "qlimit cannot be respecified")
			}
			_, qlimit = p.numberIn(0, 65535, "qlimit out of range: max 65535")
			qlimSet = true
		case p.gotKw("flows"):
			if flowsSet {
				p.fail(opos, "number of flows cannot be respecified")
			}
			_, flows = p.numberIn(1, 32767, "number of flows out of range: max 32767")
			flowsSet = true
		case p.gotKw("quantum"):
			if quantSet {
				p.fail(opos, "quantum cannot be respecified")
			}
			_, quantum = p.numberIn(1, 65535, "quantum out of range: max 65535")
			quantSet = true
		default:
			p.syntaxError()
		}
	}
	p.endStmt()
	if len(ifs) == 0 && parent == "" {
		p.fail(pos, "root queue without interface")
	}
	var ifnames []string
	for _, i := range ifs {
		if i.Not {
			p.syntaxError()
		}
		ifnames = append(ifnames, i.Name)
	}
	// expand_queue's checks.
	if !bwSet && !flowsSet {
		p.fail(pos, "no bandwidth or flow specification")
	}
	if len(name) >= 64 {
		p.fail(npos, "queuename too long")
	}
	if len(parent) >= 64 {
		p.fail(pos, "parent too long")
	}
	if parent != "" {
		// A child lives on its parent's interfaces (expand_queue).
		pifs, ok := p.obQueues[parent]
		if !ok {
			p.fail(pos, "parent %s not found for %s", parent, name)
		}
		ifnames = pifs
	}
	if p.obQueues == nil {
		p.obQueues = map[string][]string{}
	}
	if parent == "" {
		// A root of the same name on another interface adds to it.
		p.obQueues[name] = append(p.obQueues[name], ifnames...)
	} else {
		p.obQueues[name] = ifnames
	}

	// One line per root interface; a child prints once (it names only
	// its parent, so the output parses back to the same queues).
	var lines []string
	var queues []Queue
	for _, ifname := range ifnames {
		queues = append(queues, Queue{Name: name, Parent: parent, Ifname: ifname, Bandwidth: bw.m2,
			Qlimit: int(qlimit), Default: defSet, Flows: int(flows), Quantum: int(quantum),
			Linkshare: bw.typed(bwSet), Realtime: min.typed(minSet), Upperlimit: max.typed(maxSet)})
	}
	if parent != "" && len(ifnames) > 1 {
		ifnames = ifnames[:1]
	}
	for _, ifname := range ifnames {
		lines = append(lines, obQueueText(name, parent, ifname, flowsSet, flows, quantSet, quantum, bw, min, max, defSet, qlimit))
	}
	return &AltqDecl{Pos: pos, Text: strings.Join(lines, "\n"), OpenBSD: true, Queues: queues}
}

func (sc obScSpec) typed(set bool) Curve {
	if !set || sc.m2 == 0 && sc.m1 == 0 {
		return Curve{}
	}
	return Curve{M1: sc.m1, M2: sc.m2, D: uint32(sc.d), Set: true}
}

// obQueueText is one queue as print_queuespec prints it.
func obQueueText(name, parent, ifname string, flowsSet bool, flows int64, quantSet bool, quantum int64, bw, min, max obScSpec, defSet bool, qlimit int64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "queue %s", name)
	if parent != "" {
		fmt.Fprintf(&b, " parent %s", parent)
	} else {
		fmt.Fprintf(&b, " on %s", ifname)
	}
	if flowsSet {
		fmt.Fprintf(&b, " flows %d", flows)
		if quantSet {
			fmt.Fprintf(&b, " quantum %d", quantum)
		}
	}
	if bw.m2 != 0 || bw.m1 != 0 {
		obScText(&b, " bandwidth ", bw)
		obScText(&b, ", min ", min)
		obScText(&b, ", max ", max)
	}
	if defSet {
		b.WriteString(" default")
	}
	if qlimit != 0 {
		fmt.Fprintf(&b, " qlimit %d", qlimit)
	}
	return b.String()
}

// obScText writes a service curve as print_scspec does: nothing when its
// rate is zero, the burst only when it has a duration.
func obScText(b *strings.Builder, prefix string, sc obScSpec) {
	if sc.m2 == 0 {
		return
	}
	b.WriteString(prefix + obRate(sc.m2))
	if sc.d != 0 {
		fmt.Fprintf(b, " burst %s for %dms", obRate(sc.m1), sc.d)
	}
}

// obRate prints a rate as print_bwspec does: divided by 1000 while it
// divides evenly, with the unit letter (no "b").
func obRate(r uint64) string {
	const unit = " KMG"
	i := 0
	for r >= 1000 && i < 3 && r%1000 == 0 {
		r /= 1000
		i++
	}
	if i == 0 {
		return strconv.FormatUint(r, 10)
	}
	return strconv.FormatUint(r, 10) + string(unit[i])
}
