package pfconf

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// ALTQ schedulers.
const (
	schedNone = iota
	schedCBQ
	schedPRIQ
	schedHFSC
	schedFAIRQ
	schedCODEL
)

var schedNames = []string{"", "cbq", "priq", "hfsc", "fairq", "codel"}

const (
	defaultPriority = 1
	defaultQlimit   = 50
	defaultMTU      = 1500 // what pfctl assumes when it cannot ask the interface
)

// bwSpec is a bandwidth as written: absolute bits per second or percent.
type bwSpec struct {
	abs     float64
	percent float64
}

// serviceCurve is an HFSC/FAIRQ service curve (m1 d m2).
type serviceCurve struct {
	m1, m2 bwSpec
	d      uint32
	set    bool
}

// queueOpts are the options of an altq or queue statement.
type queueOpts struct {
	sched    int
	flags    []string // scheduler flags as written (red, ecn, default, ...)
	bw       bwSpec
	bwSet    bool
	priority int
	prioSet  bool
	qlimit   int
	qlimSet  bool
	tbrsize  int
	tbrSet   bool
	// hfsc/fairq
	realtime, linkshare, upperlimit serviceCurve
	buckets, hogs                   string
	// codel
	target, interval int
	ecn              bool
}

// altqRoot remembers an interface's queue discipline for its queues.
type altqRoot struct {
	ifname string
	sched  int
	bw     float64 // bits per second
}

// queueNode remembers a queue's parent and scheduler.
type queueNode struct {
	name   string
	parent string
	ifname string
	sched  int
	bw     float64
}

func (p *parser) bandwidth() bwSpec {
	pos := p.pos
	if p.tok == NUMBER {
		_, n := p.number()
		if n < 0 || n == math.MaxInt64 {
			// parse.y bandwidth NUMBER: $1 >= LLONG_MAX (no int64 is
			// larger: number refuses what does not fit).
			p.fail(pos, "bandwidth number too big")
		}
		return bwSpec{abs: float64(n)}
	}
	_, s := p.str()
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	v, err := strconv.ParseFloat(s[:i], 64)
	if err != nil {
		v = 0
	}
	unit := s[i:]
	if len(unit) > 1 {
		switch unit[1:] {
		case "Bit", "B", "bit", "b":
			unit = unit[:1]
		}
	}
	switch unit {
	case "", "b":
	case "K":
		v *= 1000
	case "M":
		v *= 1000 * 1000
	case "G":
		v *= 1000 * 1000 * 1000
	case "%":
		if v < 0 || v > 100 {
			p.fail(pos, "bandwidth spec out of range")
		}
		return bwSpec{percent: v}
	default:
		p.fail(pos, "unknown unit %s", unit)
	}
	return bwSpec{abs: math.Trunc(v)}
}

// queueOptions parses bandwidth, priority, qlimit, tbrsize and a scheduler
// with its options, in any order.
func (p *parser) queueOptions() *queueOpts {
	o := &queueOpts{}
	for {
		pos := p.pos
		switch {
		case p.gotKw("bandwidth"):
			if o.bwSet {
				p.fail(pos, "bandwidth cannot be respecified")
			}
			o.bw, o.bwSet = p.bandwidth(), true
		case p.gotKw("priority"):
			if o.prioSet {
				p.fail(pos, "priority cannot be respecified")
			}
			_, n := p.numberIn(0, 255, "priority out of range: max 255")
			o.priority, o.prioSet = int(n), true
		case p.gotKw("qlimit"):
			if o.qlimSet {
				p.fail(pos, "qlimit cannot be respecified")
			}
			_, n := p.numberIn(0, 65535, "qlimit out of range: max 65535")
			o.qlimit, o.qlimSet = int(n), true
		case p.gotKw("tbrsize"):
			if o.tbrSet {
				p.fail(pos, "tbrsize cannot be respecified")
			}
			_, n := p.numberIn(0, math.MaxUint32, "tbrsize too big: max 4294967295")
			o.tbrsize, o.tbrSet = int(n), true
		case p.isKw("cbq"), p.isKw("priq"), p.isKw("hfsc"), p.isKw("fairq"), p.isKw("codelq"):
			if o.sched != schedNone {
				p.fail(pos, "scheduler cannot be respecified")
			}
			switch p.lit {
			case "cbq":
				o.sched = schedCBQ
			case "priq":
				o.sched = schedPRIQ
			case "hfsc":
				o.sched = schedHFSC
			case "fairq":
				o.sched = schedFAIRQ
			case "codelq":
				o.sched = schedCODEL
			}
			p.next()
			if p.got(LPAREN) {
				p.schedOpts(o)
			}
		default:
			return o
		}
	}
}

func (p *parser) serviceCurve() serviceCurve {
	if p.got(LPAREN) {
		sc := serviceCurve{set: true}
		sc.m1 = p.bandwidth()
		p.comma()
		_, d := p.numberIn(0, math.MaxInt32, "timing in curve out of range")
		sc.d = uint32(d)
		p.comma()
		sc.m2 = p.bandwidth()
		p.expect(RPAREN)
		return sc
	}
	return serviceCurve{set: true, m2: p.bandwidth()}
}

// schedOpts parses the parenthesised scheduler options (after "(").
func (p *parser) schedOpts(o *queueOpts) {
	for p.tok != RPAREN {
		pos := p.pos
		switch {
		// parse.y hfscopts_item / fairqopts_item: each curve once (the
		// curve is read, and its timing checked, first).
		case p.gotKw("linkshare"):
			sc := p.serviceCurve()
			if o.linkshare.set {
				p.fail(pos, "linkshare already specified")
			}
			o.linkshare = sc
		case p.gotKw("realtime"):
			sc := p.serviceCurve()
			if o.realtime.set {
				p.fail(pos, "realtime already specified")
			}
			o.realtime = sc
		case p.gotKw("upperlimit"):
			sc := p.serviceCurve()
			if o.upperlimit.set {
				p.fail(pos, "upperlimit already specified")
			}
			o.upperlimit = sc
		case p.gotKw("buckets"):
			_, s := p.numberString()
			o.buckets = s
		case p.gotKw("hogs"):
			b := p.bandwidth()
			o.hogs = rate2str(b.abs)
		// parse.y codelopts_item: a value of 0 counts as not given.
		case p.gotKw("target"):
			_, n := p.numberIn(0, math.MaxInt32, "target out of range")
			if o.target != 0 {
				p.fail(pos, "target already specified")
			}
			o.target = int(n)
		case p.gotKw("interval"):
			_, n := p.numberIn(0, math.MaxInt32, "interval out of range")
			if o.interval != 0 {
				p.fail(pos, "interval already specified")
			}
			o.interval = int(n)
		case p.isString():
			_, s := p.str()
			switch s {
			case "default", "red", "ecn", "rio", "codel", "cleardscp", "borrow", "flowvalve", "wrr", "efficient":
				if s == "ecn" && o.sched == schedCODEL {
					o.ecn = true
				}
				o.flags = append(o.flags, s)
			default:
				if o.sched == schedCODEL {
					p.fail(pos, "unknown codel option \"%s\"", s)
				}
				p.fail(pos, "unknown %s flag \"%s\"", schedNames[o.sched], s)
			}
		default:
			p.syntaxError()
		}
		p.got(COMMA)
	}
	p.next()
}

// queueList parses "queue NAME" or "queue { A B ... }" child lists.
func (p *parser) queueNames() []string {
	// parse.y qassign_item: the name must fit PF_QNAME_SIZE.
	one := func() string {
		pos, s := p.name()
		if len(s) >= 64 {
			p.fail(pos, "queue name '%s' too long (max 63 chars)", s)
		}
		return s
	}
	if p.got(LBRACE) {
		p.optnl()
		var l []string
		for p.tok != RBRACE {
			l = append(l, one())
			p.comma()
		}
		p.next()
		return l
	}
	if p.isString() {
		return []string{one()}
	}
	return nil
}

// rate2str formats a bandwidth as pfctl does (100Kb, 1.50Mb, ...).
func rate2str(rate float64) string {
	const unit = " KMG"
	i := 0
	for rate >= 1000 && i < 3 { // pfctl runs past 'G' into the NUL
		rate /= 1000
		i++
	}
	if int64(rate*100)%100 != 0 {
		return fmt.Sprintf("%.2f%cb", rate, unit[i])
	}
	return fmt.Sprintf("%d%cb", int64(rate), unit[i])
}

// altq parses "altq on IF [options] [queue { ... }]".
func (p *parser) altq() Decl {
	pos := p.pos
	p.expectKw("altq")
	p.checkRuleState(pos, stateQueue)
	p.expectKw("on")
	ifs := p.ifList()
	o := p.queueOptions()
	var children []string
	if p.gotKw("queue") {
		children = p.queueNames()
	}
	p.endStmt()
	if o.sched == schedNone {
		p.fail(pos, "no scheduler specified!")
	}
	if len(children) == 0 && o.sched != schedCODEL {
		p.fail(pos, "no child queues specified")
	}
	for _, i := range ifs {
		if i.Not {
			// parse.y expand_altq.
			p.fail(i.P, "altq on ! <interface> is not supported")
		}
	}
	if !o.bwSet || o.bw.percent > 0 || o.bw.abs == 0 {
		p.fail(pos, "cannot determine interface bandwidth for %s, specify an absolute bandwidth", ifs[0].Name)
	}
	var lines []string
	var queues []Queue
	for _, ifc := range ifs {
		queues = append(queues, o.typed("", "", ifc.Name, o.bw.abs, o.bw.abs))
		if p.altqRoots == nil {
			p.altqRoots = map[string]*altqRoot{}
			p.queues = map[string]*queueNode{}
		}
		if _, dup := p.altqRoots[ifc.Name]; dup {
			p.fail(pos, "altq already defined on %s", ifc.Name)
		}
		p.altqRoots[ifc.Name] = &altqRoot{ifname: ifc.Name, sched: o.sched, bw: o.bw.abs}
		for _, c := range children {
			p.queues[ifc.Name+"\x00"+c] = &queueNode{name: c, ifname: ifc.Name, sched: o.sched, bw: o.bw.abs}
		}
		var b strings.Builder
		fmt.Fprintf(&b, "altq on %s ", ifc.Name)
		if !schedOptsText(&b, o, o.bw.abs) {
			b.WriteString(schedNames[o.sched] + " ")
		}
		fmt.Fprintf(&b, "bandwidth %s ", rate2str(o.bw.abs))
		if o.qlimSet && o.qlimit != defaultQlimit {
			fmt.Fprintf(&b, "qlimit %d ", o.qlimit)
		}
		tbr := o.tbrsize
		if !o.tbrSet || tbr == 0 {
			tbr = tbrSize(o.bw.abs)
		}
		fmt.Fprintf(&b, "tbrsize %d ", tbr)
		if len(children) > 0 {
			b.WriteString("queue { ")
			for _, c := range children {
				b.WriteString(c + " ")
			}
			b.WriteString("}")
		}
		lines = append(lines, b.String())
	}
	return &AltqDecl{Pos: pos, Text: strings.Join(lines, "\n"), Queues: queues}
}

// typed is the Queue of these options on ifname: bw is the queue's
// bandwidth (0: not given), ref the parent's, which percentages of the
// service curves refer to (pfctl_altq.c eval_pfqueue_hfsc).
func (o *queueOpts) typed(name, parent, ifname string, bw, ref float64) Queue {
	q := Queue{Name: name, Parent: parent, Ifname: ifname, Sched: schedNames[o.sched],
		Bandwidth: uint64(bw), Priority: defaultPriority, Flags: o.flags}
	if o.prioSet {
		q.Priority = o.priority
	}
	if o.qlimSet {
		q.Qlimit = o.qlimit
	}
	q.Default = q.HasFlag("default")
	q.Realtime, q.Linkshare, q.Upperlimit = o.realtime.typed(ref), o.linkshare.typed(ref), o.upperlimit.typed(ref)
	return q
}

func (b bwSpec) bits(ref float64) uint64 {
	if b.percent > 0 {
		return uint64(ref * b.percent / 100)
	}
	return uint64(b.abs)
}

func (c serviceCurve) typed(ref float64) Curve {
	if !c.set {
		return Curve{}
	}
	return Curve{M1: c.m1.bits(ref), M2: c.m2.bits(ref), D: c.d, Set: true}
}

func tbrSize(rate float64) int {
	var size int
	switch {
	case rate <= 1*1000*1000:
		size = 1
	case rate <= 10*1000*1000:
		size = 4
	case rate <= 200*1000*1000:
		size = 8
	case rate <= 2500*1000*1000:
		size = 24
	default:
		size = 128
	}
	return size * defaultMTU
}

// schedOptsText writes the scheduler options as pfctl's print_*_opts do;
// it reports whether it wrote anything.
func schedOptsText(b *strings.Builder, o *queueOpts, bw float64) bool {
	has := func(f string) bool {
		for _, x := range o.flags {
			if x == f {
				return true
			}
		}
		return false
	}
	flagList := func(order []string) {
		for _, f := range order {
			if has(f) {
				b.WriteString(" " + f)
			}
		}
	}
	sc := func(name string, c serviceCurve) {
		fmt.Fprintf(b, " %s", name)
		if c.d != 0 {
			b.WriteString("(")
			if c.m1.percent > 0 {
				fmt.Fprintf(b, "%d%%", int(c.m1.percent))
			} else {
				b.WriteString(rate2str(c.m1.abs))
			}
			fmt.Fprintf(b, " %d", c.d)
		}
		if c.m2.percent > 0 {
			fmt.Fprintf(b, " %d%%", int(c.m2.percent))
		} else {
			fmt.Fprintf(b, " %s", rate2str(c.m2.abs))
		}
		if c.d != 0 {
			b.WriteString(")")
		}
	}
	lsPrinted := func() bool {
		if !o.linkshare.set {
			return false
		}
		m2 := o.linkshare.m2.abs
		if o.linkshare.m2.percent > 0 {
			m2 = bw * o.linkshare.m2.percent / 100
		}
		return m2 != 0 && (m2 != bw || o.linkshare.d != 0)
	}
	switch o.sched {
	case schedCBQ:
		if len(o.flags) == 0 {
			return false
		}
		b.WriteString("cbq(")
		flagList([]string{"red", "ecn", "rio", "codel", "cleardscp", "flowvalve", "borrow", "wrr", "efficient", "root", "default"})
		b.WriteString(" ) ")
		return true
	case schedPRIQ:
		if len(o.flags) == 0 {
			return false
		}
		b.WriteString("priq(")
		flagList([]string{"red", "ecn", "rio", "codel", "cleardscp", "default"})
		b.WriteString(" ) ")
		return true
	case schedHFSC:
		if len(o.flags) == 0 && !o.realtime.set && !o.upperlimit.set && !lsPrinted() {
			return false
		}
		b.WriteString("hfsc(")
		flagList([]string{"red", "ecn", "rio", "codel", "cleardscp", "default"})
		if o.realtime.set {
			sc("realtime", o.realtime)
		}
		if lsPrinted() {
			sc("linkshare", o.linkshare)
		}
		if o.upperlimit.set {
			sc("upperlimit", o.upperlimit)
		}
		b.WriteString(" ) ")
		return true
	case schedFAIRQ:
		if len(o.flags) == 0 && !lsPrinted() {
			return false
		}
		b.WriteString("fairq(")
		flagList([]string{"red", "ecn", "rio", "codel", "cleardscp", "default"})
		if lsPrinted() {
			sc("linkshare", o.linkshare)
		}
		b.WriteString(" ) ")
		return true
	case schedCODEL:
		if o.target == 0 && o.interval == 0 && !o.ecn {
			return false
		}
		b.WriteString("codel(")
		if o.target != 0 {
			fmt.Fprintf(b, " target %d", o.target)
		}
		if o.interval != 0 {
			fmt.Fprintf(b, " interval %d", o.interval)
		}
		if o.ecn {
			b.WriteString("ecn")
		}
		b.WriteString(" ) ")
		return true
	}
	return false
}

// queue parses "queue NAME [on IF] [options] [{ children }]".
func (p *parser) queue() Decl {
	pos := p.pos
	p.expectKw("queue")
	p.checkRuleState(pos, stateQueue)
	npos, name := p.name()
	var ifs []IfItem
	if p.gotKw("on") {
		ifs = p.ifList()
	}
	if p.obQueueStart(name, ifs) {
		return p.obQueue(pos, npos, name, ifs)
	}
	o := p.queueOptions()
	children := p.queueNames()
	p.endStmt()
	if len(name) >= 64 {
		p.fail(npos, "queue name too long (max 63 chars)")
	}
	if o.tbrSet {
		p.fail(pos, "cannot specify tbrsize for queue")
	}
	// Find the parents: every interface that lists this queue.
	var found []*queueNode
	for _, q := range p.queueNodesSorted() {
		if q.name != name {
			continue
		}
		if len(ifs) > 0 {
			ok := false
			for _, i := range ifs {
				ok = ok || i.Name == q.ifname
			}
			if !ok {
				continue
			}
		}
		found = append(found, q)
	}
	if len(found) == 0 {
		p.fail(pos, "queue %s has no parent", name)
	}
	var lines []string
	var queues []Queue
	for _, q := range found {
		// parse.y expand_queue's checks; queuespec adds "errors in
		// queue definition" after each.
		bad := func(msg string) {
			p.errorf(pos, "%s", msg)
			p.fail(pos, "errors in queue definition")
		}
		if o.sched != schedNone && o.sched != q.sched {
			bad("exactly one scheduler type per interface allowed")
		}
		if q.sched == schedPRIQ && len(children) > 0 {
			bad("priq queues cannot have child queues")
		}
		if q.sched == schedPRIQ && o.bwSet && (o.bw.abs > 0 || o.bw.percent < 100) {
			bad("priq doesn't take bandwidth")
		}
		if slices.Contains(children, name) {
			bad("queue cannot have itself as child")
		}
		o.sched = q.sched
		bw := q.bw
		if o.bwSet {
			if o.bw.percent > 0 {
				bw = q.bw * o.bw.percent / 100
			} else {
				bw = o.bw.abs
			}
		}
		for _, c := range children {
			p.queues[q.ifname+"\x00"+c] = &queueNode{name: c, parent: name, ifname: q.ifname, sched: q.sched, bw: bw}
		}
		own := 0.0
		if o.bwSet {
			own = bw
		}
		queues = append(queues, o.typed(name, q.parent, q.ifname, own, q.bw))
		var b strings.Builder
		fmt.Fprintf(&b, "queue %s ", name)
		if len(ifs) > 0 {
			fmt.Fprintf(&b, "on %s ", q.ifname)
		}
		if o.sched == schedCBQ || o.sched == schedHFSC || o.sched == schedFAIRQ {
			if !o.bwSet || o.bw.percent > 0 || o.bw.abs == 0 {
				if o.bwSet && o.bw.percent < 100 {
					fmt.Fprintf(&b, "bandwidth %s%% ", strconv.FormatFloat(o.bw.percent, 'f', -1, 64))
				}
			} else {
				fmt.Fprintf(&b, "bandwidth %s ", rate2str(bw))
			}
		}
		if o.prioSet && o.priority != defaultPriority {
			fmt.Fprintf(&b, "priority %d ", o.priority)
		}
		if o.qlimSet && o.qlimit != defaultQlimit {
			fmt.Fprintf(&b, "qlimit %d ", o.qlimit)
		}
		schedOptsText(&b, o, bw)
		if len(children) > 0 {
			b.WriteString("{ ")
			for _, c := range children {
				b.WriteString(c + " ")
			}
			b.WriteString("}")
		}
		lines = append(lines, b.String())
	}
	return &AltqDecl{Pos: pos, Text: strings.Join(lines, "\n"), Queues: queues}
}

// queueNodesSorted returns the known queues in a deterministic order.
func (p *parser) queueNodesSorted() []*queueNode {
	var l []*queueNode
	for _, q := range p.queues {
		l = append(l, q)
	}
	for i := 1; i < len(l); i++ {
		for j := i; j > 0 && l[j].ifname < l[j-1].ifname; j-- {
			l[j], l[j-1] = l[j-1], l[j]
		}
	}
	return l
}
