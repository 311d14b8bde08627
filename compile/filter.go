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
// file order, then the filter chains in pf's evaluation order.
func (c *compiler) filter(rules []*pfconf.Rule) {
	var matches, quick, rest []*pfconf.Rule
	for _, r := range rules {
		c.record(nft.KindFilter, r)
		if !r.RDR.Empty() {
			c.translation(r, nft.KindFilter, r.RDR, true)
		}
		if !r.NAT.Empty() {
			if r.AFTo {
				c.refuse(r, "af-to (NAT64) is not supported")
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
			quick = append(quick, r)
			if !r.Quick {
				rest = append(rest, r)
			}
		case r.Action == pfconf.ActMatch:
			matches = append(matches, r)
		case r.Quick:
			quick = append(quick, r)
		default:
			rest = append(rest, r)
		}
	}
	order := append(matches, quick...)
	for i := len(rest) - 1; i >= 0; i-- {
		order = append(order, rest[i])
	}
	for i, r := range order {
		if r.AnchorCall != "" {
			c.filterCall(r, i < len(matches)+len(quick))
			continue
		}
		c.filterRule(r)
	}
}

// unsupported returns why r cannot be enforced here, or "".
func unsupported(r *pfconf.Rule) string {
	switch {
	case r.Queue != "" || r.PQueue != "":
		return "queue " + r.Queue + ": ALTQ queues are not supported (Linux has no ALTQ)"
	case r.KeepState == pfconf.StateModulate:
		return "modulate state is not supported: Linux conntrack does not modulate TCP sequence numbers"
	case r.RouteType != pfconf.RouteNone:
		return "route-to, reply-to, dup-to and fastroute are not supported yet"
	case r.Tag != "" || r.Tagged != "":
		return "tag and tagged are not supported yet"
	case r.OS != "":
		return "os fingerprints are not supported"
	case r.Prob != 0:
		return "probability is not supported yet"
	case r.Rtable >= 0 && r.Rtable != 0:
		return "rtable is not supported"
	case r.DivertPort != 0 || r.DivertAddr.IsValid() || r.DivertReply:
		return "divert-to and divert-reply are not supported"
	case r.Dnpipe != 0 || r.Dnrpipe != 0:
		return "dummynet pipes and queues are not supported"
	case r.MaxPktRate.Limit != 0 || r.MaxPktSize != 0:
		return "max-pkt-rate and max-pkt-size are not supported yet"
	case r.Prio != 0 || r.SetPrioSet || r.SetTOSSet:
		return "prio, set prio and set-tos are not supported yet"
	case r.Once:
		return "once is not supported"
	case r.StateLimiterSet:
		return "state limiters are not supported"
	case r.Scrub.Set:
		return "scrub options on filter rules are not supported yet"
	}
	so := r.StateOpts
	switch {
	case so.Max != 0 || so.MaxSrcStates != 0 || so.MaxSrcConn != 0 || so.MaxSrcConnRate.Limit != 0 || so.MaxSrcNodes != 0:
		return "state limits (max, max-src-*) are not supported yet"
	case so.SourceTrack || so.SourceTrackRule || so.Overload != "":
		return "source-track and overload are not supported yet"
	case so.IfBound:
		return "if-bound states are not supported: conntrack states are floating"
	case so.Pflow:
		return "pflow is not supported"
	}
	for _, t := range so.Timeouts {
		if t != 0 {
			return "per-rule state timeouts are not supported yet"
		}
	}
	return ""
}

// filterRule compiles one filter rule into filter_in and/or filter_out.
func (c *compiler) filterRule(r *pfconf.Rule) {
	if r.Anchor != nil || r.AnchorCall != "" {
		return // refused by anchorRules
	}
	if msg := unsupported(r); msg != "" {
		c.refuse(r, "%s", msg)
		return
	}
	if r.Action != pfconf.ActPass && r.Action != pfconf.ActBlock && r.Action != pfconf.ActMatch {
		c.refuse(r, "action %d is not a filter action", r.Action)
		return
	}
	in, out := r.Direction != pfconf.DirOut, r.Direction != pfconf.DirIn
	if r.UID.Set || r.GID.Set {
		// Sockets are known on output (and not on forwarded packets,
		// which pf's user never matches either); prerouting has none.
		if r.Direction == pfconf.DirIn {
			c.refuse(r, "user and group on inbound rules are not supported (the kernel knows no socket before routing)")
			return
		}
		in = false
	}
	if r.Src.Addr.Type == pfconf.AddrURPF {
		if r.Direction == pfconf.DirOut {
			c.refuse(r, "urpf-failed needs the inbound interface; use it on \"in\" rules")
			return
		}
		out = false
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
		for _, fam := range ruleFamilies(r) {
			for _, v := range flagVariants(r) {
				b := &builder{}
				b.counter()
				if !c.match(b, v.r, matchOpts{out: dir.out, fam: fam, orig: !r.RDR.Empty(), notTCP: v.notTCP}) {
					return
				}
				tails, ok := c.verdicts(b, r, fam, dir.out)
				if !ok {
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
	switch r.Action {
	case pfconf.ActMatch:
		return []*builder{finish(b, func(*builder) {})}, true
	case pfconf.ActPass:
		return []*builder{finish(b, func(b *builder) {
			if r.KeepState != pfconf.StateNone {
				bits := CtMarkState
				if r.StateOpts.NoSync {
					bits |= CtMarkNoSync
				}
				nr := uint32(c.nr(r) + 1)
				if nr > CtMarkRuleMask || c.inAnchor() {
					nr = 0 // the mark numbers main ruleset rules only
				}
				if r.KeepState == pfconf.StateSynproxy {
					b.needs = "synproxy state (the nft_synproxy module)"
					b.add("synproxy", &expr.SynProxy{})
				}
				setMark(b, bits, nr)
			}
			b.add("accept", &expr.Verdict{Kind: expr.VerdictAccept})
		})}, true
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
