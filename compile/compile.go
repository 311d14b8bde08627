package compile

import (
	"fmt"
	"maps"
	"net/netip"
	"strconv"
	"time"

	"github.com/google/nftables"

	"github.com/pfcarp/pfcarp/netdb"
	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/pfconf"
	"github.com/pfcarp/pfcarp/tc"
)

// Connection mark layout: the contract with pfsync and with -s rules -v.
const (
	// CtMarkRuleMask holds the number + 1 of the filter rule that created
	// the state (0: none).
	CtMarkRuleMask uint32 = 0x0000ffff
	// CtMarkTagMask holds the connection's pf tag, a number the compiler
	// gives each tag name of the ruleset (0: none).
	CtMarkTagMask uint32 = 0x003f0000
	// CtMarkPrioMask holds the connection's set prio + 1 (0: none).
	CtMarkPrioMask uint32 = 0x03c00000
	// CtMarkScrubMask holds the connection's scrub profile (0: none): the
	// scrub options of the match or pass rules it matched.
	CtMarkScrubMask uint32 = 0x1c000000
	// CtMarkPass marks a connection passed by "nat pass"/"rdr pass".
	CtMarkPass uint32 = 1 << 29
	// CtMarkState marks a connection passed by a keep-state rule: its
	// later packets pass without rule evaluation.
	CtMarkState uint32 = 1 << 30
	// CtMarkNoSync marks a connection of a (no-sync) rule: pfsync must not
	// replicate it.
	CtMarkNoSync uint32 = 1 << 31
)

// DefaultLogGroup is the NFLOG group of `log` rules unless Options say
// otherwise (117 is DLT_PFLOG's number).
const DefaultLogGroup = 117

// DefaultStickyTimeout is how long a sticky-address entry outlives the last
// new connection from its source when pf.conf sets no src.track timeout.
// pf's default (0) keeps a source node while it has states; here entries are
// only refreshed by new connections, so 0 would forget a client between two
// page loads.
const DefaultStickyTimeout = 5 * time.Minute

// Chain names.
const (
	ChainDNAT      = "hook_dnat"
	ChainIn        = "hook_in"
	ChainFwd       = "hook_fwd"
	ChainOut       = "hook_out"
	ChainSNAT      = "hook_snat"
	ChainRDR       = "rdr"
	ChainNAT       = "nat"
	ChainFilterIn  = "filter_in"
	ChainFilterOut = "filter_out"
)

// StickyMapName is the dynamic map of rdr (or rdr-to) rule nr's
// sticky-address choices for one address family.
func StickyMapName(kind nft.Kind, nr int, v6 bool) string {
	f := "4"
	if v6 {
		f = "6"
	}
	return "sticky_" + kind.String() + strconv.Itoa(nr) + "_" + f
}

// Options tune Compile. The zero value uses the defaults.
type Options struct {
	// LogGroup is the NFLOG group of log rules; 0 means DefaultLogGroup.
	LogGroup uint16
	// StickyTimeout overrides pf.conf's src.track timeout when > 0.
	StickyTimeout time.Duration
	// RuleText returns the rule as pfctl prints it, for the records; nil
	// means the compiler's own short description.
	RuleText func(kind nft.Kind, r *pfconf.Rule) string
	// Host, when set, fills the dynamic interface address sets of the
	// program with its addresses (nft.Conn.Load fills them from the
	// kernel's interfaces in any case).
	Host netdb.Host
	// LoadAnchors says the caller compiles the ruleset's "load anchor"
	// files itself (CompileAnchor) and adds them to Program.Anchors; without
	// it a ruleset with load anchor statements is refused rather than
	// loaded without them.
	LoadAnchors bool
	// Queues says which qdiscs the kernel has (tc.Probe); nil means
	// tc.Mainline. Queues whose qdisc is missing are refused.
	Queues tc.Features
}

// compiler holds one Compile call.
type compiler struct {
	rs   *pfconf.Ruleset
	opts Options
	errs pfconf.ErrorList
	prog *nft.Program

	nrs map[*pfconf.Rule]int // rule numbers per ruleset kind, as the BSD kernels number them

	tables map[string]*tableSets
	sets   map[string]bool
	sticky time.Duration

	errSeen  map[string]bool
	warnSeen map[string]bool
	warns    []string
	// globalRule is the first rule with source-track global and limits;
	// the others must have its limits.
	globalRule *pfconf.Rule
	tags       tagNames
	profiles   []scrubProfile
	prioUsed   [8]bool
	prioPairs  [][2]uint8 // prio.go: the two-value set prio pairs
	pqueues    []string   // pqueue.go: the second queues of queue pairs
	// pktRateRules counts the kernel rules of each max-pkt-rate rule
	// (pktrate.go).
	pktRateRules map[*pfconf.Rule]int
	plan         *tc.Plan // queues (queue.go); nil without

	filterIn, filterOut, rdr, nat []*nft.Rule
	scrubIn, scrubOut             []*nft.Rule
	scrubUsed                     bool

	anc *anchorState // anchor.go

	synproxy []*pfconf.Rule // synproxy.go: inbound synproxy rules
	diverts  []*pfconf.Rule // divert.go: divert-to and divert-reply rules
	// routeto.go: route-to and reply-to targets and rules
	routes     []routeTarget
	routeRules []*pfconf.Rule
	boundIfs   []string // ifbound.go: interfaces of if-bound states
	boundUsed  map[[2]uint32]bool
}

type tableSets struct {
	v4, v6 *nft.Set
	// ovl4, ovl6 are the overload sets of a table rules overload (nil
	// otherwise).
	ovl4, ovl6 *nft.Set
}

// Compile translates rs. On error it returns nil and an *pfconf.ErrorList
// naming every rule it refuses (file:line:col: rule: reason).
func Compile(rs *pfconf.Ruleset, opts Options) (*nft.Program, error) {
	if opts.LogGroup == 0 {
		opts.LogGroup = DefaultLogGroup
	}
	c := &compiler{rs: rs, opts: opts, prog: &nft.Program{}, tables: map[string]*tableSets{}, sets: map[string]bool{}, nrs: map[*pfconf.Rule]int{},
		errSeen: map[string]bool{}, warnSeen: map[string]bool{}}
	c.sticky = c.stickyTimeout()
	c.decls()
	c.queueDecls() // queue.go
	c.anchors().declTables = maps.Clone(c.tables)
	c.refuseLoads() // anchor.go
	if rs.Main != nil {
		for _, list := range [][]*pfconf.Rule{rs.Main.Scrub, rs.Main.Filter, rs.Main.NAT, rs.Main.RDR, rs.Main.BINAT} {
			for i, r := range list {
				c.nrs[r] = i
			}
		}
		c.anchorRules(rs.Main)
		c.overloadTables(rs.Main.Filter)
		c.firstGlobal(rs.Main.Filter)
		for _, r := range rs.Main.Scrub {
			c.record(nft.KindScrub, r)
			c.scrub(r)
		}
		for _, r := range rs.Main.BINAT {
			c.record(nft.KindBINAT, r)
			c.binat(r)
		}
		for _, r := range rs.Main.RDR {
			c.record(nft.KindRDR, r)
			c.rdrRule(r)
		}
		for _, r := range rs.Main.NAT {
			c.record(nft.KindNAT, r)
			c.natRule(r)
		}
		c.filter(rs.Main.Filter)
	}
	c.errs.Sort()
	if err := c.errs.Err(); err != nil {
		return nil, err
	}
	c.assemble()
	c.prog.Warnings = c.warns
	return c.prog, nil
}

// anchorRules refuses ether rules (anchors: anchor.go).
func (c *compiler) anchorRules(a *pfconf.Anchor) {
	for _, r := range a.Ether {
		c.errorf(r.Pos, "ether rules are not supported: nftables' inet table does not see layer 2")
	}
}

// errorf reports a refusal at pos, once per position and message (the
// rules one statement expands to share both).
func (c *compiler) errorf(pos pfconf.Pos, format string, args ...any) {
	p, msg := c.rs.Sources.Position(pos), fmt.Sprintf(format, args...)
	if key := p.String() + "\x00" + msg; !c.errSeen[key] {
		c.errSeen[key] = true
		c.errs.Add(p, msg)
	}
}

// warnf notes that what is at pos loads with a difference from pf, once
// per position and message.
func (c *compiler) warnf(pos pfconf.Pos, format string, args ...any) {
	w := c.rs.Sources.Position(pos).String() + ": " + fmt.Sprintf(format, args...)
	if !c.warnSeen[w] {
		c.warnSeen[w] = true
		c.warns = append(c.warns, w)
	}
}

// refuse reports that rule r uses something the kernel here cannot enforce.
func (c *compiler) refuse(r *pfconf.Rule, format string, args ...any) {
	c.errorf(r.Pos, "%s", fmt.Sprintf(format, args...))
}

// stickyTimeout is how long a sticky-address binding outlives its last
// state: Options.StickyTimeout, else pf.conf's "set timeout src.track",
// else DefaultStickyTimeout.
func (c *compiler) stickyTimeout() time.Duration {
	if c.opts.StickyTimeout > 0 {
		return c.opts.StickyTimeout
	}
	if n, ok := c.rs.Options.Timeout(pfconf.TmSrcNode); ok && n > 0 {
		return time.Duration(n) * time.Second
	}
	return DefaultStickyTimeout
}

// decls turns tables into sets and refuses what cannot be enforced (queues:
// queue.go).
func (c *compiler) decls() {
	for _, d := range c.rs.Decls {
		switch d := d.(type) {
		case *pfconf.AltqDecl:
			if c.prog.Anchor != "" { // the main ruleset's: queueDecls
				c.errorf(d.Pos, "queues in an anchor are not supported: pf defines queues in the main ruleset")
			}
		case *pfconf.LimiterDecl:
			c.errorf(d.Pos, "state limiters are not supported")
		case *pfconf.TableDecl:
			ts := c.table(d.Name)
			var v4, v6 []tableEntry
			neg := false
			for _, e := range d.Entries {
				if e.Addr.Type != pfconf.AddrMask || !e.Addr.Addr.IsValid() {
					c.errorf(d.Pos, "table <%s>: entry %s is not an address or network", d.Name, addrString(e.Addr))
					continue
				}
				te := tableEntry{netip.PrefixFrom(e.Addr.Addr, e.Addr.Bits).Masked(), e.Neg}
				neg = neg || e.Neg
				if te.p.Addr().Is4() {
					v4 = append(v4, te)
				} else {
					v6 = append(v6, te)
				}
			}
			if !neg { // as written
				for _, e := range v4 {
					ts.v4.Prefixes = append(ts.v4.Prefixes, e.p)
				}
				for _, e := range v6 {
					ts.v6.Prefixes = append(ts.v6.Prefixes, e.p)
				}
				continue
			}
			ts.v4.Prefixes = append(ts.v4.Prefixes, flattenTable(v4)...) // negtable.go
			ts.v6.Prefixes = append(ts.v6.Prefixes, flattenTable(v6)...)
		}
	}
}

// table returns the sets of pf table name, creating them empty.
func (c *compiler) table(name string) *tableSets {
	if ts := c.tables[name]; ts != nil {
		return ts
	}
	ts := &tableSets{
		v4: &nft.Set{Name: nft.TableSetName(name, false), Kind: nft.SetAddr, Table: name},
		v6: &nft.Set{Name: nft.TableSetName(name, true), Kind: nft.SetAddr, V6: true, Table: name},
	}
	c.tables[name] = ts
	c.prog.Sets = append(c.prog.Sets, ts.v4, ts.v6)
	return ts
}

func (c *compiler) addSet(s *nft.Set) {
	if !c.sets[s.Name] {
		c.sets[s.Name] = true
		c.prog.Sets = append(c.prog.Sets, s)
	}
}

// nr is r's number in its ruleset kind (pfctl -s rules -vv's @N, and the
// number pflog reports).
func (c *compiler) nr(r *pfconf.Rule) int { return c.nrs[r] }

func (c *compiler) record(kind nft.Kind, r *pfconf.Rule) {
	text := ""
	if c.opts.RuleText != nil {
		text = c.opts.RuleText(kind, r)
	}
	if text == "" {
		text = describe(r)
	}
	c.prog.Records = append(c.prog.Records, nft.Record{
		Kind:   kind,
		Nr:     c.nr(r),
		Pos:    c.rs.Sources.Position(r.Pos).String(),
		Text:   text,
		Labels: r.Labels,
	})
}

// describe is a short description of r for records when no printer is
// given: action, direction and line.
func describe(r *pfconf.Rule) string {
	names := map[pfconf.Action]string{
		pfconf.ActPass: "pass", pfconf.ActBlock: "block", pfconf.ActScrub: "scrub",
		pfconf.ActNAT: "nat", pfconf.ActNoNAT: "no nat", pfconf.ActRDR: "rdr",
		pfconf.ActNoRDR: "no rdr", pfconf.ActBINAT: "binat", pfconf.ActNoBINAT: "no binat",
		pfconf.ActMatch: "match", pfconf.ActNoScrub: "no scrub",
	}
	s := names[r.Action]
	switch r.Direction {
	case pfconf.DirIn:
		s += " in"
	case pfconf.DirOut:
		s += " out"
	}
	if r.Quick {
		s += " quick"
	}
	if r.Ifname != "" {
		s += " on "
		if r.IfNot {
			s += "! "
		}
		s += r.Ifname
	}
	return s
}

// assemble lays out the chains.
func (c *compiler) assemble() {
	hook := func(typ nftables.ChainType, num *nftables.ChainHook, prio int32) *nft.Hook {
		return &nft.Hook{Type: typ, Num: *num, Priority: prio}
	}
	base := func(name string, h *nft.Hook, state bool, skipOut bool, target string) *nft.Chain {
		ch := &nft.Chain{Name: name, Hook: h}
		if state {
			ch.Rules = append(ch.Rules, c.preState(name)...)
			ch.Rules = append(ch.Rules, stateRule(), natPassRule())
		}
		for _, ifn := range c.rs.Options.Skip {
			ch.Rules = append(ch.Rules, skipRule(ifn, skipOut))
		}
		ch.Rules = append(ch.Rules, jumpRule(target))
		return ch
	}
	in := base(ChainIn, hook(nftables.ChainTypeFilter, nftables.ChainHookPrerouting, 0), true, false, ChainFilterIn)
	insertBeforeLast(in, c.synproxyACKs())   // synproxy.go
	insertAt(in, 0, c.divertStateRules())    // divert.go
	insertAt(in, 0, c.routeStateRules(true)) // routeto.go
	insertAt(in, 0, c.ifBoundRules(true))    // ifbound.go
	if c.dropInvalid() {
		// before the jump, after the skip rules (pf never sees those)
		in.Rules = append(in.Rules[:len(in.Rules)-1], invalidDropRule(), in.Rules[len(in.Rules)-1])
	}
	out := base(ChainOut, hook(nftables.ChainTypeFilter, nftables.ChainHookOutput, 0), true, true, ChainFilterOut)
	// synproxy.go: after the state shortcut, before set skip (the proxy's
	// SYN to a local server leaves on lo)
	insertAt(out, len(c.preState(ChainOut))+2, c.synproxyOut())
	fwd := base(ChainFwd, hook(nftables.ChainTypeFilter, nftables.ChainHookForward, 0), true, true, ChainFilterOut)
	insertAt(fwd, 0, c.ifBoundRules(false)) // ifbound.go
	insertAt(out, 0, c.ifBoundRules(false))
	c.prog.Chains = []*nft.Chain{
		{Name: ChainRDR, Rules: c.rdr},
		{Name: ChainNAT, Rules: c.nat},
		{Name: ChainFilterIn, Rules: c.filterIn},
		{Name: ChainFilterOut, Rules: c.filterOut},
		base(ChainDNAT, hook(nftables.ChainTypeNAT, nftables.ChainHookPrerouting, -100), false, false, ChainRDR),
		in,
		fwd,
		out,
		base(ChainSNAT, hook(nftables.ChainTypeNAT, nftables.ChainHookPostrouting, 100), false, true, ChainNAT),
	}
	c.prog.Chains = append(c.prog.Chains, c.scrubChains()...)
	c.prog.Chains = append(c.prog.Chains, c.synproxyChains()...)
	c.prog.Chains = append(c.prog.Chains, c.prioChains()...)
	c.prog.Chains = append(c.prog.Chains, c.pqueueChains()...)
	c.prog.Chains = append(c.prog.Chains, c.routeChains()...)
	c.prog.Routes = append(c.divertRoutes(), c.routePolicies()...)
}

// preState returns the rules a base filter chain has before the state
// shortcut: the drops of flushed states (limits.go) and, in hook_fwd and
// hook_out, the priority of connections with set prio (tags.go) and the
// class of connections with a queue (queue.go).
func (c *compiler) preState(chain string) []*nft.Rule {
	out := c.flushRules()
	if chain != ChainIn {
		out = append(out, c.prioRules()...)
		out = append(out, c.queueRules()...) // queue.go: after prio, which it overrides
	}
	return out
}

// dropInvalid reports whether hook_in drops conntrack-invalid packets (see
// "Invalid packets" in the package doc): yes unless a pass rule is
// stateless ("no state") or sloppy, whose packets pf does not check
// against a state's windows.
func (c *compiler) dropInvalid() bool {
	if c.rs == nil || c.rs.Main == nil {
		return true
	}
	for _, r := range c.rs.Main.Filter {
		if r.Action == pfconf.ActPass && (r.KeepState == pfconf.StateNone || r.StateOpts.Sloppy) {
			return false
		}
	}
	return true
}

func addrString(a pfconf.Addr) string {
	switch a.Type {
	case pfconf.AddrMask:
		if !a.Addr.IsValid() {
			return "any"
		}
		if a.Bits == a.Addr.BitLen() {
			return a.Addr.String()
		}
		return netip.PrefixFrom(a.Addr, a.Bits).String()
	case pfconf.AddrRange:
		return a.Addr.String() + " - " + a.To.String()
	case pfconf.AddrTable:
		return "<" + a.Name + ">"
	case pfconf.AddrDynIf:
		return "(" + a.Name + ")"
	case pfconf.AddrNoRoute:
		return "no-route"
	case pfconf.AddrURPF:
		return "urpf-failed"
	}
	return "?"
}

// RuleTexts returns a RuleText function that gives each rule of rs (inline
// anchors' too) as `pfctl -nvv` prints it, without its "@N" (pfconf's
// RuleText).
func RuleTexts(rs *pfconf.Ruleset) func(nft.Kind, *pfconf.Rule) string {
	return func(_ nft.Kind, r *pfconf.Rule) string { return pfconf.RuleText(r) }
}
