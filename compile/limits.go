package compile

import (
	"fmt"
	"time"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/pfconf"
)

// DefaultSrcNodes bounds a source set when the rule gives no
// max-src-nodes and pf.conf no "set limit src-nodes": pf's default.
const DefaultSrcNodes = 10000

// srcNodes is the size of a source set without max-src-nodes: pf.conf's
// "set limit src-nodes" (pf's limit is for all rules together; here it
// bounds each set), else DefaultSrcNodes.
func (c *compiler) srcNodes() uint32 {
	if n, ok := c.rs.Options.Limit(pfconf.LimitSrcNodes); ok && n > 0 {
		return n
	}
	return DefaultSrcNodes
}

// SourceSetName is the dynamic set of sources of one kind ("src", "conn",
// "rate") of filter rule nr (global: nr < 0) and one family.
func SourceSetName(kind string, nr int, v6 bool) string {
	f := "4"
	if v6 {
		f = "6"
	}
	who := fmt.Sprintf("r%d", nr)
	if nr < 0 {
		who = "global"
	}
	return kind + "_" + who + "_" + f
}

// hasLimits reports whether r's state options need enforcement here.
func hasLimits(so *pfconf.StateOpts) bool {
	return so.Max != 0 || so.MaxSrcStates != 0 || so.MaxSrcNodes != 0 || so.MaxSrcConn != 0 || so.MaxSrcConnRate.Limit != 0
}

func hasSrcLimits(so *pfconf.StateOpts) bool {
	return so.MaxSrcStates != 0 || so.MaxSrcNodes != 0 || so.MaxSrcConn != 0 || so.MaxSrcConnRate.Limit != 0
}

// globalKey is what rules sharing global source sets must agree on.
type globalKey struct {
	states, nodes, conn, rate, secs uint32
}

func limitsKey(so *pfconf.StateOpts) globalKey {
	return globalKey{so.MaxSrcStates, so.MaxSrcNodes, so.MaxSrcConn, so.MaxSrcConnRate.Limit, so.MaxSrcConnRate.Seconds}
}

// checkLimits refuses what the state options ask that cannot be enforced;
// it returns false when r must not be compiled.
func (c *compiler) checkLimits(r *pfconf.Rule) bool {
	so := &r.StateOpts
	if !hasLimits(so) && so.Overload == "" {
		return true
	}
	ok := true
	if r.KeepState == pfconf.StateNone || r.Action != pfconf.ActPass {
		c.refuse(r, "state limits and overload need a pass rule that keeps state")
		return false
	}
	if so.Overload != "" && so.MaxSrcConn == 0 && so.MaxSrcConnRate.Limit == 0 {
		// pf accepts it and never overloads; say so rather than load a
		// table nobody fills.
		c.warnf(r.Pos, "overload <%s> without max-src-conn or max-src-conn-rate never adds a source", so.Overload)
	}
	if so.MaxSrcConnRate.Limit != 0 && so.MaxSrcConnRate.Seconds == 0 {
		c.refuse(r, "max-src-conn-rate %d/0: the interval must be at least one second", so.MaxSrcConnRate.Limit)
		ok = false
	}
	if so.SourceTrack && !so.SourceTrackRule && hasSrcLimits(so) && c.globalRule != nil && limitsKey(so) != limitsKey(&c.globalRule.StateOpts) {
		at := c.rs.Sources.Position(c.globalRule.Pos)
		c.refuse(r, "source-track global with other limits than the rule at %s is not supported: the kernel's shared source counters carry one limit each", at)
		ok = false
	}
	return ok
}

// firstGlobal notes the first rule (in file order) with source-track
// global and limits: the others must have its limits.
func (c *compiler) firstGlobal(rules []*pfconf.Rule) {
	for _, r := range rules {
		so := &r.StateOpts
		if so.SourceTrack && !so.SourceTrackRule && hasSrcLimits(so) {
			c.globalRule = r
			return
		}
	}
}

// limitTails returns the kernel rules of pass rule r with state limits:
// the match in b followed by, in order, the drop of a connection over
// "max", the pass (every per-source check passes), the overload (the
// source counts are fine, so max-src-conn or its rate failed: add the
// source to the table and drop) and the drop of the rest. pass completes a
// builder with log, counter and the pass verdict.
func (c *compiler) limitTails(b *builder, r *pfconf.Rule, fam byte, pass func(*builder) *builder, drop func(*builder) *builder) []*builder {
	so := &r.StateOpts
	var out []*builder
	if so.Max != 0 {
		k := b.clone()
		k.add(fmt.Sprintf("ct count over %d", so.Max), &expr.Connlimit{Count: so.Max, Flags: nftConnlimitInv})
		out = append(out, drop(k))
	}
	v6 := fam == famV6
	nr := c.nr(r)
	if so.SourceTrack && !so.SourceTrackRule {
		nr = -1
	}
	srcSet := func(k *builder) {
		if !hasSrcLimits(so) {
			return
		}
		states := so.MaxSrcStates
		text := fmt.Sprintf(" ct count %d", states)
		if states == 0 {
			states, text = ^uint32(0), ""
		}
		size := c.srcNodes()
		if so.MaxSrcNodes != 0 {
			size = so.MaxSrcNodes
		}
		name := SourceSetName("src", nr, v6)
		c.addSet(&nft.Set{Name: name, Kind: nft.SetSource, V6: v6, Size: size})
		src := k.loadAddr(false, fam, false, 1)
		if text == "" {
			text = " ct count 4294967295"
		}
		k.add(fmt.Sprintf("add @%s { %s%s }", name, src, text),
			&expr.Dynset{SrcRegKey: 1, SetName: name, Operation: unix.NFT_DYNSET_OP_ADD,
				Exprs: []expr.Any{&expr.Connlimit{Count: states}}})
	}
	k := b.clone()
	srcSet(k)
	if so.MaxSrcConn != 0 {
		name := SourceSetName("conn", nr, v6)
		c.addSet(&nft.Set{Name: name, Kind: nft.SetSource, V6: v6, Size: c.srcNodes()})
		src := k.loadAddr(false, fam, false, 1)
		k.add(fmt.Sprintf("add @%s { %s ct count %d }", name, src, so.MaxSrcConn),
			&expr.Dynset{SrcRegKey: 1, SetName: name, Operation: unix.NFT_DYNSET_OP_ADD,
				Exprs: []expr.Any{&expr.Connlimit{Count: so.MaxSrcConn}}})
	}
	if rt := so.MaxSrcConnRate; rt.Limit != 0 {
		name := SourceSetName("rate", nr, v6)
		ttl := time.Duration(rt.Seconds) * time.Second
		c.addSet(&nft.Set{Name: name, Kind: nft.SetSource, V6: v6, Size: c.srcNodes(), Timeout: ttl})
		src := k.loadAddr(false, fam, false, 1)
		k.add(fmt.Sprintf("update @%s { %s limit rate %d/%ds burst %d packets }", name, src, rt.Limit, rt.Seconds, rt.Limit),
			&expr.Dynset{SrcRegKey: 1, SetName: name, Operation: unix.NFT_DYNSET_OP_UPDATE, Timeout: ttl,
				Exprs: []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(rt.Limit), Unit: expr.LimitTime(rt.Seconds), Burst: rt.Limit}}})
	}
	out = append(out, pass(k))
	if !hasSrcLimits(so) {
		return out
	}
	if so.Overload != "" && (so.MaxSrcConn != 0 || so.MaxSrcConnRate.Limit != 0) {
		k := b.clone()
		srcSet(k)
		ts := c.table(so.Overload)
		ovl := ts.overload(c, v6)
		src := k.loadAddr(false, fam, false, 1)
		k.add(fmt.Sprintf("add @%s { %s }", ovl.Name, src),
			&expr.Dynset{SrcRegKey: 1, SetName: ovl.Name, Operation: unix.NFT_DYNSET_OP_ADD})
		out = append(out, drop(k))
	}
	out = append(out, drop(b.clone()))
	return out
}

// overload returns table ts's overload set of one family, creating it.
func (ts *tableSets) overload(c *compiler, v6 bool) *nft.Set {
	p := &ts.ovl4
	if v6 {
		p = &ts.ovl6
	}
	if *p == nil {
		name := ts.v4.Table
		*p = &nft.Set{Name: nft.OverloadSetName(name, v6), Kind: nft.SetOverload, V6: v6, Table: name}
		c.prog.Sets = append(c.prog.Sets, *p)
	}
	return *p
}

// overloadTables notes the tables rules overload, before any rule is
// compiled: their address matches must look in both sets.
func (c *compiler) overloadTables(rules []*pfconf.Rule) {
	for _, r := range rules {
		if t := r.StateOpts.Overload; t != "" && (r.StateOpts.MaxSrcConn != 0 || r.StateOpts.MaxSrcConnRate.Limit != 0) {
			ts := c.table(t)
			ts.overload(c, false)
			ts.overload(c, true)
		}
	}
}

// flushRules are the drops "flush" needs before the state shortcut of the
// base filter chains (see the package doc's state limits).
func (c *compiler) flushRules() []*nft.Rule {
	var out []*nft.Rule
	if c.rs.Main == nil {
		return nil
	}
	for _, r := range c.rs.Main.Filter {
		so := &r.StateOpts
		if so.Overload == "" || !so.Flush || (so.MaxSrcConn == 0 && so.MaxSrcConnRate.Limit == 0) || r.Action != pfconf.ActPass || r.KeepState == pfconf.StateNone {
			continue
		}
		ts := c.tables[so.Overload]
		if ts == nil {
			continue
		}
		for _, v6 := range []bool{false, true} {
			fam := byte(famV4)
			sets := []*nft.Set{ts.v4, ts.ovl4}
			if v6 {
				fam, sets = famV6, []*nft.Set{ts.v6, ts.ovl6}
			}
			for _, s := range sets {
				if s == nil {
					continue
				}
				b := &builder{}
				b.family(fam)
				b.add("ct state established,related",
					&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
					&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
						Mask: u32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED), Xor: u32(0)},
					&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: u32(0)})
				if !so.FlushGlobal {
					nr := uint32(c.nr(r) + 1)
					b.add(fmt.Sprintf("ct mark & 0x%08x == 0x%08x", CtMarkRuleMask, nr),
						&expr.Ct{Register: 1, Key: expr.CtKeyMARK},
						&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: u32(CtMarkRuleMask), Xor: u32(0)},
						&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: u32(nr)})
				}
				name := b.loadAddr(false, fam, true, 1)
				b.add(fmt.Sprintf("%s @%s", name, s.Name), &expr.Lookup{SourceRegister: 1, SetName: s.Name})
				b.counter()
				b.add("drop", &expr.Verdict{Kind: expr.VerdictDrop})
				out = append(out, b.rule(nft.Ref{Kind: nft.KindFilter, Nr: c.nr(r), Part: 1000 + len(out)}))
			}
		}
	}
	return dedupRules(out)
}

// dedupRules drops rules whose text repeats (two rules flushing one table
// globally need one drop).
func dedupRules(rs []*nft.Rule) []*nft.Rule {
	seen := map[string]bool{}
	var out []*nft.Rule
	for _, r := range rs {
		if !seen[r.Text] {
			seen[r.Text] = true
			out = append(out, r)
		}
	}
	return out
}

// nftConnlimitInv is NFT_CONNLIMIT_F_INV: "ct count over N".
const nftConnlimitInv = 1

// overloadVariants returns the ovl selections of matchOpts r needs: a
// positive match of an overload table matches either of its two sets, so
// the rule is compiled once per set.
func (c *compiler) overloadVariants(r *pfconf.Rule) []uint8 {
	isOvl := func(ra pfconf.RuleAddr) bool {
		if ra.Addr.Type != pfconf.AddrTable || ra.Neg {
			return false
		}
		ts := c.tables[ra.Addr.Name]
		return ts != nil && ts.ovl4 != nil
	}
	out := []uint8{0}
	if isOvl(r.Src) {
		out = append(out, 1)
	}
	if isOvl(r.Dst) {
		for _, v := range out {
			out = append(out, v|2)
		}
	}
	return out
}
