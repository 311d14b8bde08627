package compile

import (
	"fmt"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/pfconf"
	"github.com/pfcarp/pfcarp/pflog"
)

// filter compiles the filter ruleset: translations of pass/match rules in
// file order, then the filter chains in pf's evaluation order: match
// rules, quick rules and the tag setters of the other rules in file order,
// then the other rules in reverse file order.
func (c *compiler) filter(rules []*pfconf.Rule) {
	first, rest := c.splitFilter(rules)
	c.filterFirst(first)
	c.filterRest(rest)
}

// splitFilter records rules, compiles their translations (first match, in
// file order) and splits them into pf's two halves: first (match and quick
// rules, the tag setters of the others, and anchor calls, in file order)
// and rest (the other rules and non-quick anchor calls, in file order; they
// are compiled last to first). It also refuses tag orders pf would see
// otherwise (checkTagOrder).
func (c *compiler) splitFilter(rules []*pfconf.Rule) (first []filterEntry, rest []*pfconf.Rule) {
	for _, r := range rules {
		c.record(nft.KindFilter, r)
		if !r.RDR.Empty() {
			c.translation(r, nft.KindFilter, r.RDR, true)
		}
		if !r.NAT.Empty() {
			if r.AFTo {
				c.refuse(r, "af-to (NAT64, translation between IPv4 and IPv6) is not supported: Linux netfilter has no stateful NAT64")
				continue
			}
			c.translation(r, nft.KindFilter, r.NAT, false)
		}
		switch {
		case r.AnchorCall != "": // anchor.go: in both halves
			if !c.anchorRef(r) {
				continue
			}
			c.xlateCall(r)
			first = append(first, filterEntry{r: r})
			if !r.Quick {
				rest = append(rest, r)
			}
		case r.Action == pfconf.ActMatch || r.Quick:
			first = append(first, filterEntry{r: r})
		default:
			if r.Tag != "" {
				first = append(first, filterEntry{r: r, tagOnly: true})
			}
			rest = append(rest, r)
		}
	}
	c.checkTagOrder(rules)
	return first, rest
}

// filterFirst compiles the first half in file order.
func (c *compiler) filterFirst(first []filterEntry) {
	for _, e := range first {
		if e.r.AnchorCall != "" {
			c.filterCall(e.r, true)
			continue
		}
		c.filterRule(e.r, e.tagOnly)
	}
}

// filterRest compiles the second half last to first.
func (c *compiler) filterRest(rest []*pfconf.Rule) {
	for i := len(rest) - 1; i >= 0; i-- {
		if rest[i].AnchorCall != "" {
			c.filterCall(rest[i], false)
			continue
		}
		c.filterRule(rest[i], false)
	}
}

type filterEntry struct {
	r       *pfconf.Rule
	tagOnly bool
}

// checkTagOrder refuses the non-quick rules whose tagged would see another
// tag than pf's (see tags.go).
func (c *compiler) checkTagOrder(rules []*pfconf.Rule) {
	for i, r := range rules {
		if r.Tagged == "" || r.Quick || r.Action == pfconf.ActMatch {
			continue
		}
		if r.Tag != "" && r.Tag != r.Tagged {
			c.refuse(r, "tagged %s with tag %s on a rule that is not quick is not supported (non-quick rules are evaluated last to first, after the tags are set): make it quick or a match rule", r.Tagged, r.Tag)
			continue
		}
		for _, l := range rules[i+1:] {
			if l.Action == pfconf.ActMatch && l.Tag != "" {
				at := c.rs.Sources.Position(l.Pos)
				c.refuse(r, "tagged %s on a rule that is not quick, followed by the match rule at %s that tags, is not supported (non-quick rules see the tag at the end of the file): make it quick or move the match rule before it", r.Tagged, at)
				break
			}
		}
	}
}

// unsupported returns why r cannot be enforced here: one message per
// feature, none when it can.
func unsupported(r *pfconf.Rule) []string {
	var out []string
	add := func(cond bool, msg string) {
		if cond {
			out = append(out, msg)
		}
	}
	add(r.OS != "", "os fingerprints are not supported")
	add(r.Prob != 0, "probability is not supported yet")
	add(r.Rtable >= 0 && r.Rtable != 0, "rtable is not supported")
	add(r.DivertPort != 0 && !r.DivertAddr.IsValid(), "divert-packet (a divert socket) is not supported: its Linux equivalent is NFQUEUE (nft queue), which pfcarp does not compile")
	add(r.Dnpipe != 0 || r.Dnrpipe != 0, "dummynet pipes and queues are not supported")
	add(r.MaxPktSize != 0, "max-pkt-size is not supported yet")
	add(r.Once, "once is not supported")
	add(r.StateLimiterSet, "state limiters are not supported")
	so := r.StateOpts
	add(so.Pflow, "pflow is not supported")
	for i, t := range so.Timeouts {
		// src.track is how long a source node outlives its states; the
		// per-source sets expire on their own (limits.go)
		if t != 0 && i != int(pfconf.TmSrcNode) {
			out = append(out, "per-rule state timeouts are not supported yet")
			break
		}
	}
	return out
}

// refuseAll reports every unsupported feature of r; it returns false when
// there was one.
func (c *compiler) refuseAll(r *pfconf.Rule) bool {
	msgs := unsupported(r)
	for _, m := range msgs {
		c.refuse(r, "%s", m)
	}
	return len(msgs) == 0
}

// filterRule compiles one filter rule into filter_in and/or filter_out;
// tagOnly compiles only the setting of its tag (see filter).
func (c *compiler) filterRule(r *pfconf.Rule, tagOnly bool) {
	if r.Anchor != nil || r.AnchorCall != "" {
		return // refused by anchorRules
	}
	ok := c.refuseAll(r)
	ok = c.checkLimits(r) && ok
	ok = c.checkPrio(r) && ok
	ok = c.synproxyRule(r) && ok // synproxy.go
	ok = c.checkDivert(r) && ok  // divert.go
	if c.checkRoute(r) {         // routeto.go
		if r.RouteType != pfconf.RouteNone {
			c.noteRouteRule(r)
		}
	} else {
		ok = false
	}
	ok = c.checkQueue(r) && ok
	if r.Action != pfconf.ActPass && r.Action != pfconf.ActBlock && r.Action != pfconf.ActMatch {
		c.refuse(r, "action %d is not a filter action", r.Action)
		return
	}
	c.ifBoundRule(r) // ifbound.go: numbers the interface or warns
	if r.KeepState == pfconf.StateModulate {
		c.warnf(r.Pos, "modulate state: loaded as keep state: Linux conntrack does not modulate TCP initial sequence numbers (the hosts' own are used)")
	}
	if r.Scrub.Set || r.SetTOSSet {
		c.scrubWarnings(r)
		if r.Scrub.NoReassemble {
			c.refuse(r, "fragment no reassemble is not possible: the kernel reassembles for connection tracking")
			ok = false
		}
		if _, pok := c.profile(r); !pok {
			ok = false
		}
	}
	in, out := r.Direction != pfconf.DirOut, r.Direction != pfconf.DirIn
	if r.UID.Set || r.GID.Set {
		// Sockets are known on output (and not on forwarded packets,
		// which pf's user never matches either); prerouting has none.
		if r.Direction == pfconf.DirIn {
			c.refuse(r, "user and group on inbound rules are not supported (the kernel knows no socket before routing)")
			ok = false
		}
		in = false
	}
	if r.Src.Addr.Type == pfconf.AddrURPF {
		if r.Direction == pfconf.DirOut {
			c.refuse(r, "urpf-failed needs the inbound interface; use it on \"in\" rules")
			ok = false
		}
		out = false
	}
	if !ok {
		return
	}
	part := 0
	for _, dir := range []struct {
		on    bool
		out   bool
		chain *[]*nft.Rule
	}{{in, false, &c.filterIn}, {out, true, &c.filterOut}} {
		if !dir.on {
			continue
		}
		part = 0
		if tagOnly {
			part = 100 // after the rule's own kernel rules: evaluations count there
		}
		for _, fam := range ruleFamilies(r) {
			for _, v := range flagVariants(r) {
				for _, ov := range c.overloadVariants(r) {
					b := &builder{}
					b.counter()
					if !c.match(b, v.r, matchOpts{out: dir.out, fam: fam, orig: !r.RDR.Empty(), notTCP: v.notTCP, ovl: ov}) {
						return
					}
					c.addPktRate(b, r) // pktrate.go
					var tails []*builder
					if tagOnly {
						c.setTag(b, r)
						tails = []*builder{b}
					} else if tails, ok = c.verdicts(b, r, fam, dir.out); !ok {
						return
					}
					for _, v := range tails {
						*dir.chain = append(*dir.chain, v.rule(nft.Ref{Kind: nft.KindFilter, Nr: c.nr(r), Part: part}))
						part++
					}
				}
			}
		}
	}
}

type flagVariant struct {
	r      *pfconf.Rule
	notTCP bool
}

// flagVariants splits a rule without protocol that has TCP flags (pf's
// default "flags S/SA" on keep-state rules) into its TCP half, which checks
// the flags, and the rest, which does not.
func flagVariants(r *pfconf.Rule) []flagVariant {
	if r.Proto != 0 || r.FlagSet == 0 {
		return []flagVariant{{r: r}}
	}
	tcp := *r
	tcp.Proto = protoTCP
	other := *r
	other.Flags, other.FlagSet = 0, 0
	return []flagVariant{{r: &tcp}, {r: &other, notTCP: true}}
}

// verdicts completes the match in b into r's kernel rules (log, counter,
// verdict): usually one; two for "block return" without a protocol (TCP
// reset for TCP, ICMP unreachable for the rest).
func (c *compiler) verdicts(b *builder, r *pfconf.Rule, fam byte, out bool) ([]*builder, bool) {
	finish := func(b *builder, verdict func(*builder)) *builder {
		c.log(b, r, out)
		b.counter()
		verdict(b)
		return b
	}
	// synproxy.go: an untracked SYN for the proxy cannot meet the
	// statements that read the connection mark (the rule would break)
	pre := c.synproxyUntracked(b, r, out, finish)
	// divert.go: when tproxy finds no transparent socket, the pass breaks
	// and this drop (same match) stops the packet from being forwarded
	var post []*builder
	if r.Action == pfconf.ActPass && r.DivertAddr.IsValid() && !out && c.diverting(r) {
		post = append(post, finish(b.clone(), func(b *builder) { b.add("drop", &expr.Verdict{Kind: expr.VerdictDrop}) }))
	}
	// Tags: match and quick rules set theirs here; the other rules' tags
	// were set in file order (see filter).
	if r.Action == pfconf.ActMatch || r.Quick {
		c.setTag(b, r)
	}
	keep := r.KeepState != pfconf.StateNone || r.Action == pfconf.ActMatch
	c.setPrio(b, r, keep)
	c.setQueue(b, r) // queue.go
	// A stateless pass rule's packets each meet the rule again and set it
	// again; its connection's other packets (replies) get the profile too.
	c.setProfile(b, r)
	switch r.Action {
	case pfconf.ActMatch:
		return []*builder{finish(b, func(*builder) {})}, true
	case pfconf.ActPass:
		pass := func(b *builder) *builder {
			return finish(b, func(b *builder) {
				if r.KeepState != pfconf.StateNone {
					bits := CtMarkState
					if r.StateOpts.NoSync {
						bits |= CtMarkNoSync
					}
					nr := uint32(c.nr(r) + 1)
					if nr > CtMarkRuleMask || c.inAnchor() {
						nr = 0 // the mark numbers main ruleset rules only
					}
					setMark(b, bits, nr)
					c.keepQueue(b, out)
				}
				if c.synproxyMarks(r, out) {
					setMetaMark(b, MetaMarkSynproxy) // synproxy.go
				}
				c.divertPass(b, r, out) // divert.go
				c.routePass(b, r, out)  // routeto.go
				if r.KeepState != pfconf.StateNone {
					c.setIfBound(b, r, out) // ifbound.go
				}
				b.add("accept", &expr.Verdict{Kind: expr.VerdictAccept})
			})
		}
		if hasLimits(&r.StateOpts) {
			drop := func(b *builder) *builder {
				b.counter()
				b.add("drop", &expr.Verdict{Kind: expr.VerdictDrop})
				return b
			}
			return append(append(pre, c.limitTails(b, r, fam, pass, drop)...), post...), true
		}
		return append(append(pre, pass(b)), post...), true
	}
	// block
	rst := func(b *builder) {
		b.add("reject with tcp reset", &expr.Reject{Type: unix.NFT_REJECT_TCP_RST})
	}
	icmpx := func(b *builder) {
		b.add("reject with icmpx port-unreachable", &expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_PORT_UNREACH})
	}
	switch r.Return {
	case pfconf.ReturnDrop:
		return []*builder{finish(b, func(b *builder) { b.add("drop", &expr.Verdict{Kind: expr.VerdictDrop}) })}, true
	case pfconf.ReturnRST:
		return []*builder{finish(b, rst)}, true
	case pfconf.ReturnICMP:
		code := r.ReturnICMP
		typ, want := code>>8, uint16(3) // ICMP_UNREACH
		if fam == famV6 {
			code, want = r.ReturnICMP6, 1 // ICMP6_DST_UNREACH
			if code == 0 {
				code = 1<<8 | 4 // port unreachable
			}
			typ = code >> 8
		}
		if typ != want {
			c.refuse(r, "return-icmp type %d: the kernel only sends destination-unreachable errors", typ)
			return nil, false
		}
		proto := "icmp"
		if fam == famV6 {
			proto = "icmpv6"
		}
		return []*builder{finish(b, func(b *builder) {
			b.add(fmt.Sprintf("reject with %s code %d", proto, code&0xff), &expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: uint8(code)})
		})}, true
	}
	// ReturnBoth
	switch {
	case r.Proto == protoTCP:
		return []*builder{finish(b, rst)}, true
	case r.Proto != 0:
		return []*builder{finish(b, icmpx)}, true
	}
	tcp := b.clone()
	tcp.proto(protoTCP)
	return []*builder{finish(tcp, rst), finish(b, icmpx)}, true
}

// logMeta is the pflog metadata of r's packets in one direction.
func (c *compiler) logMeta(r *pfconf.Rule, out bool) pflog.Meta {
	m := pflog.Meta{Rule: uint32(c.nr(r)), Action: pflog.Action(r.Action), Dir: pflog.DirIn, RIdentifier: r.Ridentifier}
	c.anchorLogMeta(&m) // anchor.go
	if out {
		m.Dir = pflog.DirOut
	}
	return m
}

func (c *compiler) log(b *builder, r *pfconf.Rule, out bool) {
	if r.Log == 0 {
		return
	}
	prefix := pflog.FormatPrefix(c.logMeta(r, out))
	b.add(fmt.Sprintf("log group %d prefix %q", c.opts.LogGroup, prefix), &expr.Log{
		Key:   1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_PREFIX,
		Group: c.opts.LogGroup,
		Data:  []byte(prefix),
	})
}

// setMark ORs bits into the connection mark and stores rule (0-0xffff) in
// its low bits.
func setMark(b *builder, bits uint32, rule uint32) {
	mask := ^(bits | CtMarkRuleMask)
	if rule == 0 {
		mask = ^bits
	}
	val := bits | rule
	b.add(fmt.Sprintf("ct mark set ct mark & 0x%08x | 0x%08x", mask, val),
		&expr.Ct{Register: 1, Key: expr.CtKeyMARK},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: u32(mask), Xor: u32(val)},
		&expr.Ct{Register: 1, Key: expr.CtKeyMARK, SourceRegister: true})
}
