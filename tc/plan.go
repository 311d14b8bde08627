// Package tc turns pf.conf's queues (FreeBSD's ALTQ "altq on IF ...
// queue NAME ..." and OpenBSD's "queue NAME on IF|parent P ...") into Linux
// traffic control: one qdisc tree per interface, which Apply installs over
// netlink.
//
// Plan is pure: it maps the ruleset's queues onto qdiscs and classes and
// refuses, by queue and by name of the missing kernel feature, what the
// kernel at hand (Features) cannot do. Apply (Linux) replaces pfcarp's
// root qdisc of each interface with the plan's and removes it from the
// interfaces that no longer have queues; it never touches a qdisc pfcarp
// did not create (one with another handle than Major).
//
// # Classification
//
// No tc filters: HTB and HFSC put a packet whose skb priority is one of
// their class ids (Major:minor) into that class, and packets that match no
// leaf class into the default class. pf's queue names get one minor each
// for the whole ruleset (pf's qid is per name too), so a name's class id is
// the same on every interface that has a queue of that name; package
// compile sets the priority from the rules (see its doc, "Queues").
//
// # Mapping
//
// OpenBSD queues (HFSC service curves in OpenBSD) become HTB classes:
//
//	root queue "on IF bandwidth B [max X]"  HTB qdisc Major:, class rate B ceil X (or B)
//	bandwidth B                             rate B (the share of excess, quantum, follows B)
//	min M                                   rate M (HTB's rate is the guaranteed rate); quantum from B
//	max X                                   ceil X; without it, the parent's ceil
//	burst M1 for D ms (bandwidth, max)      burst (cburst) of M1*D bytes
//	default                                 HTB default class
//	qlimit N                                leaf pfifo limit N (default 50 packets)
//	flows N [quantum Q]                     leaf fq_codel, flows N, quantum Q, limit qlimit
//	root "on IF flows N" without bandwidth  fq_codel root qdisc
//
// OpenBSD's HFSC gives the excess in proportion to the bandwidth curves;
// HTB in proportion to quantum, which is set from the bandwidth. A min
// (realtime) curve's own burst is not kept. HTB has no upper limit above the
// parent's ceil, as HFSC's max does not either.
//
// ALTQ's schedulers:
//
//	cbq   HTB: the class rate is the queue's bandwidth (default: the
//	      parent's); borrow lets it use the parent's ceil, else ceil =
//	      rate; priority P (0-7) is HTB prio 7-P (HTB serves low prio
//	      first); red, ecn, rio, codel, cleardscp are not applied (the leaf
//	      is a FIFO of qlimit packets; a warning says so).
//	priq  HTB with strict priority: every queue is a class guaranteed 8
//	      bit/s with the interface's bandwidth as ceil, and the
//	      priorities in decreasing order are HTB prios 0, 1, ... HTB
//	      lends the parent's bandwidth to the lowest prio value first, so
//	      a queue only sends while no higher priority queue has a packet,
//	      as PRIQ does (more than 8 distinct priorities are refused: HTB
//	      has 8).
//	hfsc  the Linux HFSC qdisc with the same realtime, linkshare (default:
//	      the bandwidth) and upperlimit curves; refused where the kernel
//	      has no HFSC.
//	fairq, codelq  refused (no Linux scheduler of that kind is used).
//
// tbrsize (ALTQ's token bucket regulator for the interface) has no
// counterpart: the root class's rate is the interface's bandwidth.
package tc

import (
	"fmt"
	"sort"
	"strings"

	"github.com/pfcarp/pfcarp/pfconf"
)

// Major is the handle major of every qdisc pfcarp creates: the class ids
// of its queues are Major:minor.
const Major uint16 = 0x0caf

// rootMinor is the minor of an ALTQ interface's root class; queue names
// get minors from firstMinor on.
const (
	rootMinor  = 1
	firstMinor = 2
	maxMinor   = 0x0fff // leaf qdisc handles are 0xd000|minor
)

// DefaultQlimit is pf's queue length when qlimit is not given (ALTQ's and
// OpenBSD's HFSC's 50 packets).
const DefaultQlimit = 50

// Qdisc kinds.
const (
	HTB     = "htb"
	HFSC    = "hfsc"
	FqCodel = "fq_codel"
	Pfifo   = "pfifo"
)

// kernelOption names the kernel option that builds a qdisc kind.
var kernelOption = map[string]string{
	HTB: "CONFIG_NET_SCH_HTB", HFSC: "CONFIG_NET_SCH_HFSC", FqCodel: "CONFIG_NET_SCH_FQ_CODEL", Pfifo: "CONFIG_NET_SCH_FIFO",
}

// qdiscName is a kind as the kernel's documentation names it.
var qdiscName = map[string]string{HTB: "HTB", HFSC: "HFSC", FqCodel: "FQ-CoDel", Pfifo: "FIFO"}

// Features says which qdisc kinds the kernel has.
type Features func(kind string) bool

// Mainline is a kernel with every qdisc kind a stock distribution kernel
// builds (for compiling without a kernel at hand).
func Mainline(string) bool { return true }

// leafMajor is the handle major of the qdisc of the leaf class with minor m
// (minors are below 0x1000, see maxMinor).
func leafMajor(m uint16) uint16 { return 0xd000 | m }

// Handle is the tc handle Major:minor.
func Handle(minor uint16) uint32 { return uint32(Major)<<16 | uint32(minor) }

// Plan is the qdisc trees of a ruleset.
type Plan struct {
	// Ifaces are the interfaces with queues, by name.
	Ifaces []*Iface
	// IDs are the queue names' minors.
	IDs map[string]uint16
	// Declared are all queue names of the ruleset, refused ones too.
	Declared map[string]bool
	// Warnings name what loads with a difference from pf
	// (file:line:col: text).
	Warnings []string
}

// ClassID returns queue name's class id (Major:minor); ok is false when
// no interface has a queue of that name.
func (p *Plan) ClassID(name string) (uint32, bool) {
	if p == nil {
		return 0, false
	}
	m, ok := p.IDs[name]
	return Handle(m), ok
}

// Empty reports whether the plan has no queues.
func (p *Plan) Empty() bool { return p == nil || len(p.Ifaces) == 0 }

// Iface is one interface's tree.
type Iface struct {
	Name string
	// Kind is the root qdisc's: HTB, HFSC, or FqCodel for an OpenBSD
	// flow queue without bandwidth (then there are no classes).
	Kind string
	// Default is the minor of the default class.
	Default uint16
	// Classes are in parent-first order.
	Classes []*Class
	// Leaf is the root FqCodel qdisc's options (Kind FqCodel).
	Leaf Leaf
}

// Class is one class: a queue, or an ALTQ interface's root.
type Class struct {
	Name   string // "" for an ALTQ root
	Minor  uint16
	Parent uint16 // 0: the qdisc
	// HTB: rates in bits per second, bursts in bytes (0: the kernel's
	// default), prio 0-7, quantum in bytes (0: rate/r2q).
	Rate, Ceil    uint64
	Burst, Cburst uint32
	Prio, Quantum uint32
	RT, LS, UL    pfconf.Curve // HFSC
	Leaf          *Leaf        // nil for an inner class
	children      int
}

// Leaf is the qdisc of a leaf class.
type Leaf struct {
	Kind    string // Pfifo or FqCodel
	Limit   uint32 // packets
	Flows   uint32 // FqCodel
	Quantum uint32 // FqCodel, bytes (0: the kernel's default)
}

// Error is a queue the kernel cannot have.
type Error struct {
	Pos pfconf.Pos
	Msg string
}

// missing is the refusal of a qdisc kind the kernel lacks.
func missing(what, kind string) string {
	return fmt.Sprintf("%s needs the Linux %s qdisc (%s), not in this kernel", what, qdiscName[kind], kernelOption[kind])
}

// Build plans rs's queues for a kernel with features has (nil: Mainline).
// It returns every queue it refuses; pos names the statement.
func Build(rs *pfconf.Ruleset, has Features) (*Plan, []Error) {
	if has == nil {
		has = Mainline
	}
	b := &builder{has: has, plan: &Plan{IDs: map[string]uint16{}, Declared: map[string]bool{}}, ifaces: map[string]*ifState{}, src: rs.Sources}
	for _, d := range rs.Decls {
		a, ok := d.(*pfconf.AltqDecl)
		if !ok {
			continue
		}
		for _, q := range a.Queues {
			b.add(a.Pos, q)
		}
	}
	b.finish()
	return b.plan, b.errs
}

type ifState struct {
	iface   *Iface
	pos     pfconf.Pos
	sched   string // ALTQ scheduler, "" for OpenBSD
	bw      uint64 // the interface's bandwidth (ALTQ root, OpenBSD root queue)
	byName  map[string]*Class
	prios   map[int]bool
	priq    []*Class
	qPrio   map[*Class]int
	bad     bool
	defPos  pfconf.Pos
	defName string
}

func (st *ifState) class(minor uint16) *Class {
	for _, c := range st.iface.Classes {
		if c.Minor == minor {
			return c
		}
	}
	return nil
}

type builder struct {
	has    Features
	plan   *Plan
	ifaces map[string]*ifState
	order  []string
	errs   []Error
	src    *pfconf.Sources
}

func (b *builder) errorf(pos pfconf.Pos, format string, args ...any) {
	for _, e := range b.errs {
		if e.Pos == pos && e.Msg == fmt.Sprintf(format, args...) {
			return
		}
	}
	b.errs = append(b.errs, Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

func (b *builder) warnf(pos pfconf.Pos, format string, args ...any) {
	w := fmt.Sprintf(format, args...)
	if b.src != nil {
		w = b.src.Position(pos).String() + ": " + w
	}
	for _, x := range b.plan.Warnings {
		if x == w {
			return
		}
	}
	b.plan.Warnings = append(b.plan.Warnings, w)
}

// minor returns name's minor, giving it the next one.
func (b *builder) minor(pos pfconf.Pos, name string) uint16 {
	if m, ok := b.plan.IDs[name]; ok {
		return m
	}
	n := len(b.plan.IDs) + firstMinor
	if n > maxMinor {
		b.errorf(pos, "queue %s: more than %d queue names are not supported", name, maxMinor-firstMinor+1)
		return 0
	}
	b.plan.IDs[name] = uint16(n)
	return uint16(n)
}

func (b *builder) add(pos pfconf.Pos, q pfconf.Queue) {
	if q.Name != "" {
		b.plan.Declared[q.Name] = true
	}
	st := b.ifaces[q.Ifname]
	root := q.Parent == "" && (q.Name == "" || q.Sched == "")
	if st == nil {
		if !root {
			b.errorf(pos, "queue %s: interface %s has no root queue", q.Name, q.Ifname)
			return
		}
		st = &ifState{iface: &Iface{Name: q.Ifname}, pos: pos, sched: q.Sched, byName: map[string]*Class{}, prios: map[int]bool{}, qPrio: map[*Class]int{}}
		b.ifaces[q.Ifname] = st
		b.order = append(b.order, q.Ifname)
	} else if root && q.Sched == "" && q.Name != "" {
		b.errorf(pos, "queue %s: interface %s already has a root queue", q.Name, q.Ifname)
		return
	}
	if st.bad {
		return
	}
	switch q.Sched {
	case "":
		b.openbsd(st, pos, q, root)
	case "cbq", "priq":
		b.htbALTQ(st, pos, q)
	case "hfsc":
		b.hfsc(st, pos, q)
	case "fairq":
		b.errorf(pos, "fairq queues are not supported: Linux has no FAIRQ scheduler")
		st.bad = true
	default:
		b.errorf(pos, "%s queues are not supported: Linux has no ALTQ %s scheduler", q.Sched, q.Sched)
		st.bad = true
	}
}

// parentOf returns q's parent class on st (the ALTQ root for "").
func (b *builder) parentOf(st *ifState, pos pfconf.Pos, q pfconf.Queue) *Class {
	name := q.Parent
	if name == "" && q.Sched != "" {
		for _, c := range st.iface.Classes {
			if c.Minor == rootMinor {
				return c
			}
		}
		return nil
	}
	p := st.byName[name]
	if p == nil {
		b.errorf(pos, "queue %s: parent %s is not a queue of %s", q.Name, name, q.Ifname)
	}
	return p
}

func (b *builder) addClass(st *ifState, pos pfconf.Pos, c *Class, parent *Class, isDefault bool) {
	if parent != nil {
		c.Parent = parent.Minor
		parent.children++
		parent.Leaf = nil // an inner class now
	}
	if c.Name != "" {
		if st.byName[c.Name] != nil {
			b.errorf(pos, "queue %s is defined twice on %s", c.Name, st.iface.Name)
			return
		}
		st.byName[c.Name] = c
	}
	if isDefault {
		if st.iface.Default != 0 {
			b.errorf(pos, "queue %s: %s already has the default queue %s", c.Name, st.iface.Name, st.defName)
		}
		st.defName, st.defPos = c.Name, pos
		st.iface.Default = c.Minor
	}
	st.iface.Classes = append(st.iface.Classes, c)
}

func qlimit(q pfconf.Queue) uint32 {
	if q.Qlimit > 0 {
		return uint32(q.Qlimit)
	}
	return DefaultQlimit
}

// burstBytes is a burst curve's volume: M1 for D ms.
func burstBytes(c pfconf.Curve) uint32 {
	v := c.M1 / 8 * uint64(c.D) / 1000
	if v > 1<<31 {
		v = 1 << 31
	}
	return uint32(v)
}

// quantumFor is the HTB quantum that shares excess in proportion to bw
// (the kernel's rate/r2q with r2q 10, within its 1000..200000 bounds).
func quantumFor(bw uint64) uint32 {
	q := bw / 8 / 10
	return uint32(min(max(q, 1000), 200000))
}

func (b *builder) openbsd(st *ifState, pos pfconf.Pos, q pfconf.Queue, root bool) {
	if st.sched != "" {
		b.errorf(pos, "queue %s: interface %s has ALTQ queues", q.Name, q.Ifname)
		return
	}
	if root && q.Linkshare.M2 == 0 {
		// a flow queue alone: fq_codel as the root
		if !b.has(FqCodel) {
			b.errorf(pos, "%s", missing("flows queue "+q.Name, FqCodel))
			st.bad = true
			return
		}
		st.iface.Kind = FqCodel
		st.iface.Leaf = Leaf{Kind: FqCodel, Limit: uint32(q.Qlimit), Flows: uint32(q.Flows), Quantum: uint32(q.Quantum)}
		st.byName[q.Name] = &Class{Name: q.Name}
		b.minor(pos, q.Name)
		return
	}
	if st.iface.Kind == FqCodel {
		b.errorf(pos, "queue %s: the root queue of %s has no bandwidth", q.Name, q.Ifname)
		return
	}
	if !b.has(HTB) {
		b.errorf(pos, "%s", missing("queue "+q.Name, HTB))
		st.bad = true
		return
	}
	st.iface.Kind = HTB
	c := &Class{Name: q.Name, Minor: b.minor(pos, q.Name), Rate: q.Linkshare.M2}
	if q.Linkshare.D != 0 {
		c.Burst = burstBytes(q.Linkshare)
	}
	if q.Realtime.Set && q.Realtime.M2 != 0 {
		c.Rate, c.Quantum = q.Realtime.M2, quantumFor(q.Linkshare.M2)
		if q.Realtime.D != 0 {
			b.warnf(pos, "queue %s: the burst of min is not applied (HTB has one burst per rate)", q.Name)
		}
	}
	var parent *Class
	if !root {
		if parent = b.parentOf(st, pos, q); parent == nil {
			return
		}
		c.Ceil = parent.Ceil
	} else {
		c.Ceil = q.Linkshare.M2
		st.bw = q.Linkshare.M2
	}
	if q.Upperlimit.Set && q.Upperlimit.M2 != 0 {
		c.Ceil = q.Upperlimit.M2
		if q.Upperlimit.D != 0 {
			c.Cburst = burstBytes(q.Upperlimit)
		}
	}
	c.Ceil = max(c.Ceil, c.Rate)
	if q.Flows > 0 {
		if !b.has(FqCodel) {
			b.errorf(pos, "%s", missing("flows queue "+q.Name, FqCodel))
			st.bad = true
			return
		}
		c.Leaf = &Leaf{Kind: FqCodel, Limit: uint32(q.Qlimit), Flows: uint32(q.Flows), Quantum: uint32(q.Quantum)}
	} else {
		c.Leaf = &Leaf{Kind: Pfifo, Limit: qlimit(q)}
	}
	b.addClass(st, pos, c, parent, q.Default)
}

// htbALTQ plans cbq and priq (see the package doc).
func (b *builder) htbALTQ(st *ifState, pos pfconf.Pos, q pfconf.Queue) {
	if !b.has(HTB) {
		b.errorf(pos, "%s", missing(q.Sched+" queues", HTB))
		st.bad = true
		return
	}
	st.iface.Kind = HTB
	if q.Name == "" { // altq on IF
		st.bw = q.Bandwidth
		b.addClass(st, pos, &Class{Minor: rootMinor, Rate: q.Bandwidth, Ceil: q.Bandwidth, Leaf: &Leaf{Kind: Pfifo, Limit: qlimit(q)}}, nil, q.Default)
		return
	}
	parent := b.parentOf(st, pos, q)
	if parent == nil {
		return
	}
	for _, f := range q.Flags {
		switch f {
		case "default", "borrow":
		case "red", "ecn", "rio", "codel":
			b.warnf(pos, "queue %s: %s(%s) is not applied: the queue is a FIFO of %d packets", q.Name, q.Sched, f, qlimit(q))
		default:
			b.warnf(pos, "queue %s: %s(%s) is not applied", q.Name, q.Sched, f)
		}
	}
	c := &Class{Name: q.Name, Minor: b.minor(pos, q.Name), Leaf: &Leaf{Kind: Pfifo, Limit: qlimit(q)}}
	if q.Sched == "priq" {
		if q.Priority > 15 {
			b.errorf(pos, "queue %s: priq priority %d out of range 0-15", q.Name, q.Priority)
			return
		}
		c.Rate, c.Ceil, c.Quantum = 8, st.bw, 1514
		st.prios[q.Priority] = true
		st.qPrio[c] = q.Priority
		st.priq = append(st.priq, c)
	} else {
		if q.Priority > 7 {
			b.errorf(pos, "queue %s: cbq priority %d out of range 0-7", q.Name, q.Priority)
			return
		}
		c.Rate = q.Bandwidth
		if c.Rate == 0 {
			c.Rate = parent.Rate
		}
		c.Ceil = c.Rate
		if q.HasFlag("borrow") {
			c.Ceil = max(parent.Ceil, c.Rate)
		}
		c.Prio = uint32(7 - q.Priority)
	}
	b.addClass(st, pos, c, parent, q.Default)
}

func (b *builder) hfsc(st *ifState, pos pfconf.Pos, q pfconf.Queue) {
	if !b.has(HFSC) {
		what := "hfsc queue"
		if q.Name != "" {
			what += " " + q.Name
		}
		b.errorf(pos, "%s", missing(what, HFSC))
		st.bad = true
		return
	}
	st.iface.Kind = HFSC
	if q.Name == "" {
		st.bw = q.Bandwidth
		c := &Class{Minor: rootMinor, Rate: q.Bandwidth, Ceil: q.Bandwidth,
			LS: pfconf.Curve{M2: q.Bandwidth, Set: true}, UL: pfconf.Curve{M2: q.Bandwidth, Set: true}}
		b.addClass(st, pos, c, nil, false)
		return
	}
	parent := b.parentOf(st, pos, q)
	if parent == nil {
		return
	}
	c := &Class{Name: q.Name, Minor: b.minor(pos, q.Name), Rate: q.Bandwidth, RT: q.Realtime, LS: q.Linkshare, UL: q.Upperlimit,
		Leaf: &Leaf{Kind: Pfifo, Limit: qlimit(q)}}
	if !c.LS.Set || c.LS.M2 == 0 {
		bw := q.Bandwidth
		if bw == 0 {
			bw = parent.Rate
		}
		c.LS = pfconf.Curve{M2: bw, Set: true}
	}
	for _, f := range q.Flags {
		if f != "default" {
			b.warnf(pos, "queue %s: hfsc(%s) is not applied", q.Name, f)
		}
	}
	b.addClass(st, pos, c, parent, q.Default)
}

// finish checks the default queues and gives priq queues their HTB prios.
func (b *builder) finish() {
	for _, name := range b.order {
		st := b.ifaces[name]
		if st.bad {
			continue
		}
		if st.iface.Kind != FqCodel && st.iface.Default == 0 {
			b.errorf(st.pos, "interface %s has no default queue", name)
			continue
		}
		if d := st.class(st.iface.Default); d != nil && d.Leaf == nil {
			what := "queue " + d.Name
			if d.Name == "" {
				what = "the root queue of " + name
			}
			b.errorf(st.defPos, "the default queue is %s, which has child queues: not supported (Linux HTB and HFSC queue packets in leaf classes only)", what)
			continue
		}
		if len(st.priq) > 0 {
			var ps []int
			for p := range st.prios {
				ps = append(ps, p)
			}
			if len(ps) > 8 {
				b.errorf(st.pos, "priq on %s with %d distinct priorities is not supported: HTB has 8 priority levels", name, len(ps))
				continue
			}
			sort.Sort(sort.Reverse(sort.IntSlice(ps)))
			rank := map[int]uint32{}
			for i, p := range ps {
				rank[p] = uint32(i)
			}
			for _, c := range st.priq {
				c.Prio = rank[st.qPrio[c]]
			}
		}
		b.plan.Ifaces = append(b.plan.Ifaces, st.iface)
	}
	sort.Slice(b.plan.Ifaces, func(i, j int) bool { return b.plan.Ifaces[i].Name < b.plan.Ifaces[j].Name })
}

// Leaves returns the names of the queues that are leaves on some
// interface.
func (p *Plan) Leaves() map[string]bool {
	out := map[string]bool{}
	for _, ifc := range p.Ifaces {
		for _, c := range ifc.Classes {
			if c.Leaf != nil && c.Name != "" {
				out[c.Name] = true
			}
		}
	}
	return out
}

// String is the plan as tc(8) commands would build it (pfctl -nvvv).
func (p *Plan) String() string {
	var b strings.Builder
	h := func(m uint16) string { return fmt.Sprintf("%x:%x", Major, m) }
	for _, ifc := range p.Ifaces {
		if ifc.Kind == FqCodel {
			fmt.Fprintf(&b, "qdisc replace dev %s root handle %x: fq_codel%s\n", ifc.Name, Major, ifc.Leaf.opts())
			continue
		}
		fmt.Fprintf(&b, "qdisc replace dev %s root handle %x: %s default %x\n", ifc.Name, Major, ifc.Kind, ifc.Default)
		for _, c := range ifc.Classes {
			parent := fmt.Sprintf("%x:", Major)
			if c.Parent != 0 {
				parent = h(c.Parent)
			}
			fmt.Fprintf(&b, "class replace dev %s parent %s classid %s %s", ifc.Name, parent, h(c.Minor), ifc.Kind)
			if ifc.Kind == HFSC {
				for _, sc := range []struct {
					n string
					c pfconf.Curve
				}{{"rt", c.RT}, {"ls", c.LS}, {"ul", c.UL}} {
					if sc.c.M2 != 0 {
						fmt.Fprintf(&b, " %s m1 %dbit d %dms m2 %dbit", sc.n, sc.c.M1, sc.c.D, sc.c.M2)
					}
				}
			} else {
				fmt.Fprintf(&b, " rate %dbit ceil %dbit prio %d", c.Rate, c.Ceil, c.Prio)
				if c.Burst != 0 {
					fmt.Fprintf(&b, " burst %d", c.Burst)
				}
				if c.Cburst != 0 {
					fmt.Fprintf(&b, " cburst %d", c.Cburst)
				}
				if c.Quantum != 0 {
					fmt.Fprintf(&b, " quantum %d", c.Quantum)
				}
			}
			if c.Name != "" {
				fmt.Fprintf(&b, " # queue %s", c.Name)
			}
			b.WriteByte('\n')
			if c.Leaf != nil {
				fmt.Fprintf(&b, "qdisc replace dev %s parent %s handle %x: %s%s\n", ifc.Name, h(c.Minor), leafMajor(c.Minor), c.Leaf.Kind, c.Leaf.opts())
			}
		}
	}
	return b.String()
}

func (l Leaf) opts() string {
	var s string
	if l.Limit != 0 {
		s += fmt.Sprintf(" limit %d", l.Limit)
	}
	if l.Flows != 0 {
		s += fmt.Sprintf(" flows %d", l.Flows)
	}
	if l.Quantum != 0 {
		s += fmt.Sprintf(" quantum %d", l.Quantum)
	}
	return s
}
