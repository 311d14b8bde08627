package compile

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/google/nftables/expr"

	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/pfconf"
	"github.com/pfcarp/pfcarp/pflog"
)

// Anchors
//
// An anchor is compiled into its own nft.Program (Program.Anchor is its
// path) whose chains are nft.AnchorChain(path, part): the filter rules in
// four chains, inbound and outbound times "quick" and "rest", and the
// translation rules in rdr, nat, binat_in and binat_out. pf evaluates an
// anchor's rules in place of the anchor rule: the last matching rule wins
// across the anchor boundary, a quick rule inside ends the evaluation, and
// "anchor quick" ends it after the anchor if anything inside matched. With
// filter chains that hold quick rules first to last and the other rules
// last to first (see "Evaluation order"), that becomes:
//
//   - in the quick half of the calling chain, at the anchor rule's place,
//     "<criteria> jump @A:in_q", which holds A's match and quick rules and
//     A's anchor calls in file order; for "anchor quick", also
//     "<criteria> jump @A:in_r" right after it, so that A's last match is
//     final there;
//   - in the rest half of the calling chain (last rule first), at the
//     anchor rule's place, "<criteria> jump @A:in_r" (not for anchor
//     quick), which holds A's other rules and non-quick calls last to first.
//
// So the first quick match in file order decides, else the last other
// match, counting every anchor's rules at the anchor's place. Translation
// anchors are simpler: translation is first match, so nat-anchor,
// rdr-anchor and binat-anchor jump to @A:nat, @A:rdr, @A:binat_in and
// @A:binat_out in place.
//
// Paths resolve as pf's kernel resolves them (pf_ruleset.c,
// pf_kanchor_setup): a name starting with "/" is absolute, any other is
// relative to the anchor that holds the call, "../" going up one level; a
// last component "*" makes a wildcard call, "A/*", which evaluates every
// child anchor of A in name order. A wildcard call jumps to dispatch
// chains @A/*:PART that package nft rewrites whenever an anchor is
// installed, so a child loaded later (pfctl -a relayd/web -f -) is
// evaluated at once, without a reload of the rules that call it.
//
// Inline anchors (anchor "name" { ... }) and "load anchor" files are
// installed with the main ruleset, in its transaction; they may use the
// main ruleset's tables. An anchor loaded on its own (CompileAnchor,
// pfctl -a) has its own tables: every table its rules name is the
// anchor's (pf falls back to the main ruleset's table of that name when
// the anchor defines none; here the anchor's is empty until filled with
// pfctl -a NAME -t T -T ...).

// anchorState is the anchor side of one compiler.
type anchorState struct {
	path string    // "" for the main ruleset
	root *compiler // the compiler of the program installed (main or CompileAnchor's)
	// defined maps inline anchors already compiled to their path.
	defined map[*pfconf.Anchor]string
	paths   map[string]bool
	// calls are the resolved paths of this compiler's anchor rules.
	calls map[*pfconf.Rule]string
	parts map[*pfconf.Rule]int
	// declTables are the tables declared before any rule was compiled:
	// inline anchors share them.
	declTables map[string]*tableSets
	// callNr is the number of the rule that calls an inline anchor (pflog's
	// rule number for the anchor's packets); 0 when loaded on its own.
	callNr int
}

// refuseLoads refuses "load anchor" unless the caller handles it.
func (c *compiler) refuseLoads() {
	if c.opts.LoadAnchors {
		return
	}
	for _, l := range c.rs.Loads {
		c.errorf(l.Pos, "load anchor %s from %s: this loader does not read anchor files; load them with pfctl -f, or with pfctl -a %s -f %s", l.Name, l.File, l.Name, l.File)
	}
}

// anchorLogMeta fills in what pflog reports for a rule inside an anchor:
// the anchor's name (its last path component, as pf_log_packet copies
// anchor->name), the rule's number in it as the subrule, and the calling
// rule's number.
func (c *compiler) anchorLogMeta(m *pflog.Meta) {
	if !c.inAnchor() {
		return
	}
	path := c.anc.path
	m.Anchor = path[strings.LastIndexByte(path, '/')+1:]
	m.SubRule = m.Rule
	m.Rule = uint32(c.anc.callNr)
}

func (c *compiler) anchors() *anchorState {
	if c.anc == nil {
		c.anc = &anchorState{root: c, defined: map[*pfconf.Anchor]string{}, paths: map[string]bool{}}
	}
	if c.anc.calls == nil {
		c.anc.calls = map[*pfconf.Rule]string{}
		c.anc.parts = map[*pfconf.Rule]int{}
	}
	return c.anc
}

// ResolveAnchor returns the path anchor rule name names when written in
// anchor cur (pf_kanchor_setup's rules).
func ResolveAnchor(cur, name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("empty anchor name")
	}
	if strings.HasPrefix(name, "/") {
		return strings.TrimPrefix(name, "/"), nil
	}
	path, orig := cur, name
	for strings.HasPrefix(name, "../") {
		if path == "" {
			return "", fmt.Errorf("anchor %q: .. beyond the main ruleset", orig)
		}
		if i := strings.LastIndexByte(path, '/'); i >= 0 {
			path = path[:i]
		} else {
			path = ""
		}
		name = name[3:]
	}
	if path != "" {
		path += "/"
	}
	return path + name, nil
}

func hasRules(a *pfconf.Anchor) bool {
	return a != nil && len(a.Scrub)+len(a.Filter)+len(a.NAT)+len(a.RDR)+len(a.BINAT) > 0
}

// anchorRef resolves anchor rule r, records the call and compiles the
// inline anchor it defines. It returns false (having reported why) when r
// cannot be compiled.
func (c *compiler) anchorRef(r *pfconf.Rule) bool {
	st := c.anchors()
	if _, ok := st.calls[r]; ok {
		return true
	}
	path, err := ResolveAnchor(st.path, r.AnchorCall)
	if err == nil && len(path) > nft.MaxAnchorPath {
		err = fmt.Errorf("anchor path %q is longer than %d bytes", path, nft.MaxAnchorPath)
	}
	if err == nil && (path == "" || strings.Contains(path, ":") || strings.Contains(path, "//") || strings.HasSuffix(path, "/")) {
		err = fmt.Errorf("anchor path %q is not valid", path)
	}
	if err != nil {
		c.refuse(r, "%v", err)
		return false
	}
	if !c.refuseAll(r) {
		return false
	}
	st.calls[r] = path
	if !containsStr(c.prog.Calls, path) {
		c.prog.Calls = append(c.prog.Calls, path)
	}
	if hasRules(r.Anchor) && !nft.IsWildcard(path) {
		c.defineInline(r, path, r.Anchor)
	}
	return true
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// defineInline compiles inline anchor a as path into the root program.
func (c *compiler) defineInline(r *pfconf.Rule, path string, a *pfconf.Anchor) {
	root := c.anc.root
	if p, ok := root.anc.defined[a]; ok {
		if p != path {
			c.refuse(r, "anchor %q is also called as %q", p, path)
		}
		return
	}
	if root.anc.paths[path] {
		c.refuse(r, "anchor %q is defined twice", path)
		return
	}
	root.anc.defined[a] = path
	root.anc.paths[path] = true
	sub := c.newSub(path, c.anc.declTables)
	sub.anc.callNr = c.nr(r)
	sub.prog.FromMain = root.anc.path == "" || root.prog.FromMain
	sub.compileAnchor(a)
	c.errs.List = append(c.errs.List, sub.errs.List...)
	for _, w := range sub.warns {
		if !c.warnSeen[w] {
			c.warnSeen[w] = true
			c.warns = append(c.warns, w)
		}
	}
	root.prog.Anchors = append(root.prog.Anchors, sub.prog)
}

// newSub returns a compiler for anchor path that shares tables (may be
// nil) and reports into a list of its own.
func (c *compiler) newSub(path string, tables map[string]*tableSets) *compiler {
	s := &compiler{rs: c.rs, opts: c.opts, prog: &nft.Program{Anchor: path},
		tables: map[string]*tableSets{}, sets: map[string]bool{}, nrs: map[*pfconf.Rule]int{}, sticky: c.sticky,
		errSeen: map[string]bool{}, warnSeen: map[string]bool{}}
	for k, v := range tables {
		s.tables[k] = v
	}
	s.anc = &anchorState{path: path, root: c.anchors().root, declTables: s.tables}
	return s
}

// compileAnchor compiles a's rules into c.prog's anchor chains.
func (c *compiler) compileAnchor(a *pfconf.Anchor) {
	for _, list := range [][]*pfconf.Rule{a.Scrub, a.Filter, a.NAT, a.RDR, a.BINAT} {
		for i, r := range list {
			c.nrs[r] = i
		}
	}
	for _, r := range a.Ether {
		c.errorf(r.Pos, "ether rules are not supported: nftables' inet table does not see layer 2")
	}
	path := c.anc.path
	chain := func(part string, rules []*nft.Rule) {
		c.prog.Chains = append(c.prog.Chains, &nft.Chain{Name: nft.AnchorChain(path, part), Rules: rules})
	}
	for _, r := range a.Scrub {
		c.record(nft.KindScrub, r)
		c.scrub(r)
	}
	for _, r := range a.BINAT {
		c.record(nft.KindBINAT, r)
		c.binat(r)
	}
	chain(nft.PartBINATIn, c.rdr)
	chain(nft.PartBINATOut, c.nat)
	c.rdr, c.nat = nil, nil
	for _, r := range a.RDR {
		c.record(nft.KindRDR, r)
		c.rdrRule(r)
	}
	chain(nft.PartRDR, c.rdr)
	for _, r := range a.NAT {
		c.record(nft.KindNAT, r)
		c.natRule(r)
	}
	chain(nft.PartNAT, c.nat)
	c.rdr, c.nat = nil, nil
	quick, rest := c.splitFilter(a.Filter) // as filter() does
	chain(nft.PartXRDR, c.rdr)
	chain(nft.PartXNAT, c.nat)
	c.rdr, c.nat = nil, nil
	c.filterFirst(quick)
	chain(nft.PartInQuick, c.filterIn)
	chain(nft.PartOutQuick, c.filterOut)
	c.filterIn, c.filterOut = nil, nil
	c.filterRest(rest)
	chain(nft.PartInRest, c.filterIn)
	chain(nft.PartOutRest, c.filterOut)
	c.filterIn, c.filterOut = nil, nil
	c.prefixSets()
}

// prefixSets gives the sets this anchor's program created their anchor
// names (nft.AnchorSet) and points its rules at them.
func (c *compiler) prefixSets() {
	path := c.anc.path
	names := map[string]string{}
	for _, s := range c.prog.Sets {
		if !strings.HasPrefix(s.Name, "@") {
			names[s.Name] = nft.AnchorSet(path, s.Name)
			s.Name = names[s.Name]
		}
	}
	if len(names) == 0 {
		return
	}
	var olds []string
	for o := range names {
		olds = append(olds, regexp.QuoteMeta(o))
	}
	sort.Slice(olds, func(i, j int) bool { return len(olds[i]) > len(olds[j]) })
	re := regexp.MustCompile(`@(` + strings.Join(olds, "|") + `)\b`)
	for _, ch := range c.prog.Chains {
		for _, r := range ch.Rules {
			r.Text = re.ReplaceAllStringFunc(r.Text, func(m string) string { return "@" + names[m[1:]] })
			for i, e := range r.Exprs {
				switch x := e.(type) {
				case *expr.Lookup:
					if n, ok := names[x.SetName]; ok {
						y := *x
						y.SetName = n
						r.Exprs[i] = &y
					}
				case *expr.Dynset:
					if n, ok := names[x.SetName]; ok {
						y := *x
						y.SetName = n
						r.Exprs[i] = &y
					}
				}
			}
		}
	}
}

// transCall compiles a nat-anchor, rdr-anchor or binat-anchor rule in
// place. It reports whether r was an anchor rule.
func (c *compiler) transCall(r *pfconf.Rule, kind nft.Kind) bool {
	if r.AnchorCall == "" {
		return false
	}
	if !c.anchorRef(r) {
		return true
	}
	path := c.anc.calls[r]
	first := true
	emit := func(rr *pfconf.Rule, out bool, part string, into *[]*nft.Rule) {
		for _, fam := range ruleFamilies(rr) {
			b := &builder{}
			b.counter()
			if !c.match(b, rr, matchOpts{out: out, fam: fam}) {
				return
			}
			b.counter()
			target := nft.AnchorChain(path, part)
			b.add("jump "+target, &expr.Verdict{Kind: expr.VerdictJump, Chain: target})
			ref := nft.Ref{Kind: kind, Nr: c.nr(r)}
			if !first {
				ref.Part = c.nextPart(r)
			}
			first = false
			*into = append(*into, b.rule(ref))
		}
	}
	switch kind {
	case nft.KindNAT:
		emit(r, true, nft.PartNAT, &c.nat)
	case nft.KindRDR:
		emit(r, false, nft.PartRDR, &c.rdr)
	case nft.KindBINAT:
		emit(r, true, nft.PartBINATOut, &c.nat)
		in := *r // inbound, the rule's from and to are swapped (pf_match_translation)
		in.Src, in.Dst = r.Dst, r.Src
		emit(&in, false, nft.PartBINATIn, &c.rdr)
	}
	return true
}

// xlateCall adds the jumps of filter anchor rule r to the anchor's filter
// translations (rdr-to inbound, nat-to outbound), in place among the
// calling ruleset's filter translations.
func (c *compiler) xlateCall(r *pfconf.Rule) {
	path, ok := c.anchors().calls[r]
	if !ok {
		return
	}
	for _, side := range []struct {
		on   bool
		out  bool
		part string
		into *[]*nft.Rule
	}{{r.Direction != pfconf.DirOut, false, nft.PartXRDR, &c.rdr}, {r.Direction != pfconf.DirIn, true, nft.PartXNAT, &c.nat}} {
		if !side.on {
			continue
		}
		for _, fam := range ruleFamilies(r) {
			b := &builder{}
			if !c.match(b, r, matchOpts{out: side.out, fam: fam}) {
				return
			}
			target := nft.AnchorChain(path, side.part)
			b.add("jump "+target, &expr.Verdict{Kind: expr.VerdictJump, Chain: target})
			*side.into = append(*side.into, b.rule(nft.Ref{Kind: nft.KindFilter, Nr: c.nr(r), Part: c.nextPart(r)}))
		}
	}
}

// nextPart numbers the kernel rules of anchor rule r after its first
// (Part 0, which counts evaluations).
func (c *compiler) nextPart(r *pfconf.Rule) int {
	st := c.anchors()
	st.parts[r]++
	return st.parts[r]
}

// inAnchor reports whether c compiles an anchor's rules.
func (c *compiler) inAnchor() bool { return c.anc != nil && c.anc.path != "" }

// filterCall compiles anchor rule r into the quick (first to last) or the
// rest (last to first) half of the filter chains.
func (c *compiler) filterCall(r *pfconf.Rule, quickHalf bool) {
	path, ok := c.anchors().calls[r]
	if !ok {
		return
	}
	in, out := r.Direction != pfconf.DirOut, r.Direction != pfconf.DirIn
	for _, dir := range []struct {
		on          bool
		out         bool
		chain       *[]*nft.Rule
		quick, rest string
	}{{in, false, &c.filterIn, nft.PartInQuick, nft.PartInRest}, {out, true, &c.filterOut, nft.PartOutQuick, nft.PartOutRest}} {
		if !dir.on {
			continue
		}
		first := quickHalf
		parts := []string{dir.rest}
		if quickHalf {
			parts = []string{dir.quick}
			if r.Quick {
				parts = append(parts, dir.rest)
			}
		}
		for _, fam := range ruleFamilies(r) {
			for _, v := range flagVariants(r) {
				for i, part := range parts {
					b := &builder{}
					b.counter()
					if !c.match(b, v.r, matchOpts{out: dir.out, fam: fam, notTCP: v.notTCP}) {
						return
					}
					if quickHalf && i == 0 {
						b.counter() // matched: counted once per packet
					}
					target := nft.AnchorChain(path, part)
					b.add("jump "+target, &expr.Verdict{Kind: expr.VerdictJump, Chain: target})
					ref := nft.Ref{Kind: nft.KindFilter, Nr: c.nr(r)}
					if !first {
						ref.Part = c.nextPart(r)
					}
					first = false
					*dir.chain = append(*dir.chain, b.rule(ref))
				}
			}
		}
	}
}

// CompileAnchor compiles rs (a file loaded with pfctl -a path -f FILE, or
// what relayd installs) as anchor path. The program replaces that anchor
// alone: nft.Conn.LoadAnchor. Every table rs declares or names is the
// anchor's: nft.Open(nft.WithAnchor(path)) edits it. Options ("set ...")
// are ignored with a warning, as pfctl ignores them in anchors.
func CompileAnchor(path string, rs *pfconf.Ruleset, opts Options) (*nft.Program, error) {
	if opts.LogGroup == 0 {
		opts.LogGroup = DefaultLogGroup
	}
	c := &compiler{rs: rs, opts: opts, prog: &nft.Program{Anchor: path}, tables: map[string]*tableSets{}, sets: map[string]bool{}, nrs: map[*pfconf.Rule]int{},
		errSeen: map[string]bool{}, warnSeen: map[string]bool{}}
	c.anc = &anchorState{path: path, root: c, defined: map[*pfconf.Anchor]string{}, paths: map[string]bool{path: true}}
	if path == "" || nft.IsWildcard(path) || len(path) > nft.MaxAnchorPath || strings.Contains(path, ":") || strings.HasPrefix(path, "/") || strings.HasSuffix(path, "/") || strings.Contains(path, "//") {
		return nil, fmt.Errorf("anchor path %q is not valid", path)
	}
	// pfctl parses an anchor's "set" options and loads options for the
	// main ruleset only (pfctl.c pfctl_rules: "if (!anchorname[0])
	// pfctl_load_options"): they are ignored here too, and said so.
	ignored := false
	for _, d := range rs.Decls {
		if o, ok := d.(*pfconf.OptionDecl); ok {
			c.warnf(o.Pos, "set %s in anchor %s is ignored: pfctl loads set options for the main ruleset only", o.Name, path)
			ignored = true
		}
	}
	if ignored {
		plain := *c.rs
		plain.Options = pfconf.Options{}
		c.rs = &plain
	}
	c.sticky = c.stickyTimeout()
	c.decls()
	c.refuseLoads()
	for _, s := range c.prog.Sets {
		s.Name = nft.AnchorSet(path, s.Name)
	}
	c.anc.declTables = c.tables
	if rs.Main != nil {
		c.compileAnchor(rs.Main)
	}
	c.errs.Sort()
	if err := c.errs.Err(); err != nil {
		return nil, err
	}
	c.prog.Warnings = c.warns
	return c.prog, nil
}
