package nft

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/pfcarp/pfcarp/tc"
)

// TableName is the nftables table pfcarp owns (family inet).
const TableName = "pfcarp"

// MetaChain is the chain that holds the Records; no hook jumps to it.
const MetaChain = "pf_meta"

// Kind is the pf ruleset a rule belongs to.
type Kind uint8

// Rule kinds, as pfctl shows them: -s rules shows scrub and filter rules,
// -s nat shows nat, rdr and binat rules.
const (
	KindNone Kind = iota
	KindScrub
	KindFilter
	KindNAT
	KindRDR
	KindBINAT
)

var kindNames = [...]string{"none", "scrub", "filter", "nat", "rdr", "binat"}

// String returns the kind's name as stored in comments ("filter", ...).
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind" + strconv.Itoa(int(k))
}

// ParseKind is the inverse of Kind.String.
func ParseKind(s string) (Kind, bool) {
	for i, n := range kindNames {
		if n == s && i != 0 {
			return Kind(i), true
		}
	}
	return KindNone, false
}

// IsTranslation reports whether rules of kind k are shown by -s nat.
func (k Kind) IsTranslation() bool { return k == KindNAT || k == KindRDR || k == KindBINAT }

// Ref names the pf rule a kernel rule implements: its kind and number in
// that kind's ruleset (pfctl's @N). Part numbers the kernel rules one pf rule
// compiles to (one per address family or chain); only Part 0 counts
// evaluations. The zero Ref is "no pf rule" (structural rules: state
// shortcut, set skip, jumps).
type Ref struct {
	Kind Kind
	Nr   int
	Part int
}

// IsZero reports whether r names no pf rule.
func (r Ref) IsZero() bool { return r.Kind == KindNone }

// String returns the comment form: "pf filter 3" or "pf filter 3/1".
func (r Ref) String() string {
	s := "pf " + r.Kind.String() + " " + strconv.Itoa(r.Nr)
	if r.Part != 0 {
		s += "/" + strconv.Itoa(r.Part)
	}
	return s
}

// ParseRef parses Ref.String's form.
func ParseRef(s string) (Ref, bool) {
	f := strings.Fields(s)
	if len(f) != 3 || f[0] != "pf" {
		return Ref{}, false
	}
	k, ok := ParseKind(f[1])
	if !ok {
		return Ref{}, false
	}
	nr, part, hasPart := strings.Cut(f[2], "/")
	n, err := strconv.Atoi(nr)
	if err != nil || n < 0 {
		return Ref{}, false
	}
	r := Ref{Kind: k, Nr: n}
	if hasPart {
		p, err := strconv.Atoi(part)
		if err != nil || p < 0 {
			return Ref{}, false
		}
		r.Part = p
	}
	return r, true
}

// Record is the pf side of one rule, kept in the kernel next to the rules
// that implement it.
type Record struct {
	Kind Kind
	Nr   int
	// Pos is where the rule was written ("pf.conf:12:1"), for messages.
	Pos string
	// Text is the rule as pfctl prints it (without "@N ").
	Text   string
	Labels []string
}

// SetKind is what a Set holds.
type SetKind uint8

// Set kinds.
const (
	// SetAddr is an interval set of addresses (a pf table, one per address
	// family). Prefixes are its elements.
	SetAddr SetKind = iota
	// SetPool is a constant map from pool index (0..n-1, a 32-bit integer
	// in host byte order, as numgen and jhash produce it) to a pool
	// address. Pool holds the values.
	SetPool
	// SetSticky is a dynamic map source address -> pool address whose
	// entries expire after Timeout (sticky-address).
	SetSticky
	// SetSource is a dynamic hash set of source addresses filled from the
	// packet path (pf's source nodes for max-src-*): at most Size
	// elements (0: the kernel's default); elements carry the per-source
	// counters the updating rule attaches (ct count, limit), and without
	// Timeout they go when their connection count drops to zero.
	SetSource
	// SetOverload is the part of pf table Table that the packet path
	// fills (overload <table>): a dynamic hash set of single addresses,
	// since the kernel cannot add to an interval set from a rule. Table
	// reads and edits include it (see OverloadSetName).
	SetOverload
	// SetDynIf is an interval set of an interface's addresses (pf's
	// "(if)", "(if:network)", ...): DynIf says which; Prefixes are the
	// addresses at compile time, RefreshDynIf keeps them current.
	SetDynIf
	// SetDynIfPool is a map 0 -> the first address of DynIf, the target of
	// a translation to "(if)"; RefreshDynIf keeps it current. Pool holds
	// the address at compile time (empty: none yet).
	SetDynIfPool
)

// DynIf names the addresses a SetDynIf holds: those of interface Ifname,
// selected and shaped as pf does for "(Ifname[:mod])[/Bits]".
type DynIf struct {
	Ifname string
	// Flags are pfconf's If* modifiers (IfNetwork, IfBroadcast, IfPeer,
	// IfNoAlias).
	Flags uint8
	// Bits is the netmask applied to each address (128: none).
	Bits int
}

// Set is a named set or map of the table.
type Set struct {
	Name string
	Kind SetKind
	// V6 selects IPv6 keys (and IPv6 data for maps with address data).
	V6 bool
	// Prefixes are SetAddr's elements; overlapping and adjacent prefixes
	// are merged at load time.
	Prefixes []netip.Prefix
	// Pool are SetPool's values, key i -> Pool[i].
	Pool []netip.Addr
	// Timeout is SetSticky's element lifetime.
	Timeout time.Duration
	// Table is the pf table name of a SetAddr or SetOverload set (""
	// otherwise).
	Table string
	// Size bounds a SetSource (0: no bound of pfcarp's).
	Size uint32
	// DynIf is what a SetDynIf or SetDynIfPool follows.
	DynIf DynIf
}

// Hook attaches a base chain to a netfilter hook.
type Hook struct {
	Type     nftables.ChainType
	Num      nftables.ChainHook
	Priority int32
}

var hookNames = map[nftables.ChainHook]string{
	*nftables.ChainHookPrerouting:  "prerouting",
	*nftables.ChainHookInput:       "input",
	*nftables.ChainHookForward:     "forward",
	*nftables.ChainHookOutput:      "output",
	*nftables.ChainHookPostrouting: "postrouting",
}

// Chain is a chain of the table. A nil Hook makes a regular chain (a jump
// target). Base chains have policy accept: pf's default is pass.
type Chain struct {
	Name  string
	Hook  *Hook
	Rules []*Rule
}

// Rule is one kernel rule.
type Rule struct {
	Exprs []expr.Any
	// Text is the rule in nft's syntax, for people and golden tests; it is
	// written by the code that builds Exprs and is not parsed by anyone.
	Text string
	// Ref names the pf rule this kernel rule implements (stored as the
	// rule's comment).
	Ref Ref
	// Needs names the kernel feature this rule needs beyond plain
	// matching ("synproxy (nft_synproxy)"), for the load error when the
	// kernel refuses it.
	Needs string
}

// Program is a complete table: what Load installs. The zero value is an
// empty table. A Program is read-only once built; Load does not modify it.
type Program struct {
	Sets    []*Set
	Chains  []*Chain
	Records []Record
	// Warnings name what was loaded with a difference from pf
	// ("pf.conf:3:1: scrub reassemble tcp: ..."), one per problem; they
	// are not stored in the kernel.
	Warnings []string
	// Anchor is the path of the anchor this program fills ("" for the
	// main ruleset); its chains and sets carry AnchorChain/AnchorSet names.
	// See anchor.go.
	Anchor string
	// Anchors are the anchors installed with this program in the same
	// transaction (inline anchors, "load anchor").
	Anchors []*Program
	// Calls are the anchor paths the rules jump to ("relayd/*" for a
	// wildcard call); missing ones are created empty.
	Calls []string
	// Routes are the policy routing the program needs (divert-to,
	// route-to, reply-to); see policy.go. Only the main ruleset's are applied.
	Routes []PolicyRoute
	// FromMain marks an anchor installed by the main ruleset's load.
	FromMain bool
	// Queues is the ruleset's qdisc trees (nil: none), which the loader
	// installs with tc.Apply.
	Queues *tc.Plan
	noMeta bool // install's helper programs (empty and dispatch chains)
}

// Record returns the record of ref's pf rule, if any.
func (p *Program) Record(ref Ref) (Record, bool) {
	for _, r := range p.Records {
		if r.Kind == ref.Kind && r.Nr == ref.Nr {
			return r, true
		}
	}
	return Record{}, false
}

// NumRules counts the kernel rules of every chain (records excluded).
func (p *Program) NumRules() int {
	n := 0
	for _, c := range p.Chains {
		n += len(c.Rules)
	}
	return n
}

// String renders the program in nft's syntax (sets with their elements,
// chains with their rules' Text and comment), one item per line, for golden
// tests and `pfctl -n -vv`-like debugging. Records are listed as comments.
func (p *Program) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", TableName)
	for _, s := range p.Sets {
		writeSet(&b, s)
	}
	for _, c := range p.Chains {
		fmt.Fprintf(&b, "\tchain %s {\n", c.Name)
		if c.Hook != nil {
			fmt.Fprintf(&b, "\t\ttype %s hook %s priority %d; policy accept;\n", c.Hook.Type, hookNames[c.Hook.Num], c.Hook.Priority)
		}
		for _, r := range c.Rules {
			b.WriteString("\t\t")
			b.WriteString(r.Text)
			if !r.Ref.IsZero() {
				fmt.Fprintf(&b, " comment %q", r.Ref.String())
			}
			b.WriteByte('\n')
		}
		b.WriteString("\t}\n")
	}
	if len(p.Records) > 0 {
		fmt.Fprintf(&b, "\tchain %s {\n", p.metaChain())
		for _, r := range p.Records {
			fmt.Fprintf(&b, "\t\t# %s %d %s: %s", r.Kind, r.Nr, r.Pos, r.Text)
			for _, l := range r.Labels {
				fmt.Fprintf(&b, " [label %q]", l)
			}
			b.WriteByte('\n')
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	for _, r := range p.Routes {
		b.WriteString(r.String() + "\n")
	}
	if p.Queues != nil && !p.Queues.Empty() {
		b.WriteString("# queues (tc)\n")
		b.WriteString(p.Queues.String())
	}
	for _, a := range p.Anchors {
		fmt.Fprintf(&b, "# anchor %q\n", a.Anchor)
		b.WriteString(a.String())
	}
	return b.String()
}

func writeSet(b *strings.Builder, s *Set) {
	key := "ipv4_addr"
	if s.V6 {
		key = "ipv6_addr"
	}
	switch s.Kind {
	case SetAddr:
		fmt.Fprintf(b, "\tset %s { type %s; flags interval;", s.Name, key)
		if s.Table != "" {
			fmt.Fprintf(b, " comment %q;", "pf table <"+s.Table+">")
		}
		if len(s.Prefixes) > 0 {
			ps := append([]netip.Prefix(nil), s.Prefixes...)
			sort.Slice(ps, func(i, j int) bool { return lessPrefix(ps[i], ps[j]) })
			b.WriteString(" elements = { ")
			for i, p := range ps {
				if i > 0 {
					b.WriteString(", ")
				}
				if p.IsSingleIP() {
					b.WriteString(p.Addr().String())
				} else {
					b.WriteString(p.String())
				}
			}
			b.WriteString(" };")
		}
		b.WriteString(" }\n")
	case SetPool:
		fmt.Fprintf(b, "\tmap %s { type integer : %s; elements = { ", s.Name, key)
		for i, a := range s.Pool {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(b, "%d : %s", i, a)
		}
		b.WriteString(" }; }\n")
	case SetSticky:
		fmt.Fprintf(b, "\tmap %s { type %s : %s; flags dynamic,timeout; timeout %s; }\n", s.Name, key, key, s.Timeout)
	case SetSource:
		fmt.Fprintf(b, "\tset %s { type %s; flags dynamic", s.Name, key)
		if s.Timeout > 0 {
			fmt.Fprintf(b, ",timeout; timeout %s", s.Timeout)
		}
		b.WriteString(";")
		if s.Size > 0 {
			fmt.Fprintf(b, " size %d;", s.Size)
		}
		b.WriteString(" }\n")
	case SetOverload:
		fmt.Fprintf(b, "\tset %s { type %s; flags dynamic; comment %q; }\n", s.Name, key, "pf table <"+s.Table+"> (overload)")
	case SetDynIf:
		fmt.Fprintf(b, "\tset %s { type %s; flags interval; comment %q;", s.Name, key, s.DynIf.String())
		if len(s.Prefixes) > 0 {
			b.WriteString(" elements = { ")
			for i, p := range s.Prefixes {
				if i > 0 {
					b.WriteString(", ")
				}
				if p.IsSingleIP() {
					b.WriteString(p.Addr().String())
				} else {
					b.WriteString(p.String())
				}
			}
			b.WriteString(" };")
		}
		b.WriteString(" }\n")
	case SetDynIfPool:
		fmt.Fprintf(b, "\tmap %s { type integer : %s; comment %q;", s.Name, key, s.DynIf.String())
		if len(s.Pool) > 0 {
			fmt.Fprintf(b, " elements = { 0 : %s };", s.Pool[0])
		}
		b.WriteString(" }\n")
	}
}

func lessPrefix(a, b netip.Prefix) bool {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c < 0
	}
	return a.Bits() < b.Bits()
}
