package compile

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/pfconf"
)

// synproxy state (see "SYN proxy" in the package doc).
//
// pf (sys/net/pf.c, pf_create_state) answers a SYN that a synproxy rule
// passes inbound with its own SYN+ACK, checks the client's ACK, and only
// then opens the connection to the server, replaying the handshake; the
// state is created with the SYN and later packets match it. pfctl warns
// that synproxy applies to inbound rules only (parse.y, rule_consistent).
// Here the kernel's synproxy (nft_synproxy, SYN cookies) does the
// handshakes; the chains around it make pf's rules decide which SYNs it
// gets and let its own packets through:
//
//   - hook_synproxy_raw (prerouting, raw priority) takes the SYNs that
//     match a synproxy rule's criteria out of connection tracking
//     (notrack), so a SYN flood creates no conntrack entries;
//   - the rule itself, in filter_in, marks the SYN it passes with
//     MetaMarkSynproxy (the packet mark, not the connection's);
//   - hook_in lets a bare ACK that matches a synproxy rule's criteria and
//     has no established connection through to the proxy (it is the
//     client's answer to the cookie, or is dropped there), marked too;
//   - hook_synproxy_in and hook_synproxy_fwd (input and forward, before
//     the filter chains: the kernel's synproxy works in these two hooks
//     only) give the marked packets to the synproxy statement;
//   - hook_out lets the proxy's SYN+ACK to the client (sent without a
//     conntrack entry, conntrack calls it invalid) and its SYN to the
//     server through; the SYN to the server opens the tracked
//     connection, which gets the rule's state bits (CtMarkState, rule
//     number) and CtMarkPass, so its packets pass as a state, as pf's do.

// MetaMarkSynproxy is the packet mark bit (meta mark) the compiled rules
// set on the packets they hand to the kernel's synproxy. Its own bit: it
// was 1 << 28, daemon.LiveMark's, which worked only because the guard
// clears that bit before these rules set it (see DESIGN.md, marks).
const MetaMarkSynproxy uint32 = 1 << 26

// Synproxy chain names.
const (
	ChainSynproxyRaw = "hook_synproxy_raw"
	ChainSynproxyIn  = "hook_synproxy_in"
	ChainSynproxyFwd = "hook_synproxy_fwd"
)

// TCP flag masks.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
)

// synproxyMSS is the MSS the proxy announces to clients per family: pf's
// pf_calc_mss gives the interface MTU minus the headers; this is the
// value for an MTU of 1500.
var synproxyMSS = map[byte]uint16{famV4: 1460, famV6: 1440}

// synproxyRule notes that filter rule r (in filter_in) keeps synproxy
// state, and reports whether its pass in filter_in marks SYNs for the
// proxy. Outbound rules only keep state, as in pf.
func (c *compiler) synproxyRule(r *pfconf.Rule) bool {
	if r.KeepState != pfconf.StateSynproxy || r.Action != pfconf.ActPass {
		return true
	}
	if r.Direction == pfconf.DirOut {
		c.warnf(r.Pos, "synproxy state: synproxy is for inbound rules only, this outbound rule keeps state")
		return true
	}
	if c.inAnchor() {
		c.refuse(r, "synproxy state in an anchor is not supported (the proxy's chains belong to the main ruleset)")
		return false
	}
	if !r.RDR.Empty() || !r.NAT.Empty() {
		c.refuse(r, "synproxy state with a translation on the same rule is not supported: the proxy answers the SYN before translation")
		return false
	}
	if r.Proto != 0 && r.Proto != protoTCP {
		return true // pf: synproxy state on other protocols is keep state
	}
	if hasLimits(&r.StateOpts) {
		c.warnf(r.Pos, "synproxy state with state limits: the limits are not applied: the SYNs the kernel's proxy answers are not tracked, and the connections it opens to the server are not counted")
	}
	for _, s := range c.synproxy {
		if s == r {
			return true
		}
	}
	c.synproxy = append(c.synproxy, r)
	return true
}

// synproxyMarks reports whether r's pass in filter_in (out false) hands
// the packet to the proxy.
func (c *compiler) synproxyMarks(r *pfconf.Rule, out bool) bool {
	if out {
		return false
	}
	for _, s := range c.synproxy {
		if s == r {
			return true
		}
	}
	return false
}

// synproxyUntracked returns, for a synproxy rule's pass in filter_in, the
// kernel rule that passes the untracked SYN (hook_synproxy_raw took it out
// of tracking) to the proxy: b's match, "ct state untracked", finish's log
// and counter, the packet mark and accept. The rule's tag, prio and state
// bits go to the connection the proxy opens (synproxyOut).
func (c *compiler) synproxyUntracked(b *builder, r *pfconf.Rule, out bool, finish func(*builder, func(*builder)) *builder) []*builder {
	if r.Action != pfconf.ActPass || !c.synproxyMarks(r, out) {
		return nil
	}
	u := b.clone()
	ctStateAny(u, "untracked", expr.CtStateBitUNTRACKED)
	return []*builder{finish(u, func(b *builder) {
		setMetaMark(b, MetaMarkSynproxy)
		b.add("accept", &expr.Verdict{Kind: expr.VerdictAccept})
	})}
}

// setMetaMark ORs bits into the packet mark.
func setMetaMark(b *builder, bits uint32) {
	b.add(fmt.Sprintf("meta mark set meta mark | 0x%08x", bits),
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: u32(^bits), Xor: u32(bits)},
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1, SourceRegister: true})
}

// metaMarkHas matches packets whose mark has bits.
func metaMarkHas(b *builder, bits uint32) {
	b.add(fmt.Sprintf("meta mark & 0x%08x != 0", bits),
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: u32(bits), Xor: u32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: u32(0)})
}

// tcpFlags matches tcp flags & mask == want.
func tcpFlags(b *builder, mask, want uint8) {
	b.add(fmt.Sprintf("tcp flags & 0x%02x == 0x%02x", mask, want),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{mask}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{want}})
}

// ctStateAny matches packets whose conntrack state is one of bits.
func ctStateAny(b *builder, text string, bits uint32) {
	b.add("ct state "+text,
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: u32(bits), Xor: u32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: u32(0)})
}

// synproxyCriteria is r's match for the proxy's rules: TCP, without r's
// flags (each proxy rule tests its own); swap exchanges source and
// destination (the proxy's answers), noIf drops the interfaces (packets
// the proxy sends have no inbound interface).
func synproxyCriteria(r *pfconf.Rule, swap, noIf bool) *pfconf.Rule {
	cp := *r
	cp.Proto = protoTCP
	cp.Flags, cp.FlagSet = 0, 0
	cp.Tagged = "" // no connection mark yet on a new connection
	if swap {
		cp.Src, cp.Dst = r.Dst, r.Src
	}
	if noIf {
		cp.Ifname, cp.IfNot, cp.RcvIfname, cp.RcvIfNot = "", false, "", false
	}
	return &cp
}

// synproxyRules builds one kernel rule per synproxy rule and family: the
// criteria (see synproxyCriteria), then tail. Rules whose criteria cannot
// be compiled here were refused in filter_in already and are left out.
func (c *compiler) synproxyRules(swap, noIf, out bool, part int, tail func(b *builder, r *pfconf.Rule, fam byte)) []*nft.Rule {
	var rules []*nft.Rule
	for _, r := range c.synproxy {
		crit := synproxyCriteria(r, swap, noIf)
		for _, fam := range ruleFamilies(crit) {
			b := &builder{needs: "synproxy (nft_synproxy)"}
			if !c.match(b, crit, matchOpts{out: out, fam: fam}) {
				continue // refused (once) with the rule itself
			}
			tail(b, r, fam)
			rules = append(rules, b.rule(nft.Ref{Kind: nft.KindFilter, Nr: c.nr(r), Part: part}))
		}
	}
	return rules
}

// synproxyNotrack is hook_synproxy_raw's rules: the SYNs of the synproxy
// rules' traffic leave connection tracking.
func (c *compiler) synproxyNotrack() []*nft.Rule {
	return c.synproxyRules(false, false, false, 1000, func(b *builder, _ *pfconf.Rule, _ byte) {
		tcpFlags(b, tcpFIN|tcpSYN|tcpRST|tcpACK, tcpSYN)
		b.add("notrack", &expr.Notrack{})
	})
}

// synproxyACKs is hook_in's rules (before the invalid drop and filter_in):
// the client's bare ACK, with no established connection, goes to the
// proxy.
func (c *compiler) synproxyACKs() []*nft.Rule {
	return c.synproxyRules(false, false, false, 1001, func(b *builder, _ *pfconf.Rule, _ byte) {
		tcpFlags(b, tcpFIN|tcpSYN|tcpRST|tcpPSH|tcpACK, tcpACK)
		ctStateAny(b, "new,invalid,untracked", expr.CtStateBitNEW|expr.CtStateBitINVALID|expr.CtStateBitUNTRACKED)
		setMetaMark(b, MetaMarkSynproxy)
		b.add("accept", &expr.Verdict{Kind: expr.VerdictAccept})
	})
}

// synproxyOut is hook_out's rules (after the state shortcut): the proxy's
// SYN+ACK to the client and its SYN to the server, which opens the
// connection with the rule's state.
func (c *compiler) synproxyOut() []*nft.Rule {
	synack := c.synproxyRules(true, true, true, 1002, func(b *builder, _ *pfconf.Rule, _ byte) {
		tcpFlags(b, tcpFIN|tcpSYN|tcpRST|tcpACK, tcpSYN|tcpACK)
		// the proxy sends it without the SYN's (untracked) entry, and
		// conntrack does not start a connection with a SYN+ACK
		ctStateAny(b, "invalid,untracked", expr.CtStateBitINVALID|expr.CtStateBitUNTRACKED)
		b.add("accept", &expr.Verdict{Kind: expr.VerdictAccept})
	})
	syn := c.synproxyRules(false, true, true, 1003, func(b *builder, r *pfconf.Rule, _ byte) {
		tcpFlags(b, tcpFIN|tcpSYN|tcpRST|tcpACK, tcpSYN)
		ctStateAny(b, "new", expr.CtStateBitNEW)
		// the proxy's SYN carries the client's address: not one of ours
		b.add("fib saddr type != local",
			&expr.Fib{Register: 1, FlagSADDR: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: u32(unix.RTN_LOCAL)})
		bits := CtMarkState | CtMarkPass
		if r.StateOpts.NoSync {
			bits |= CtMarkNoSync
		}
		nr := uint32(c.nr(r) + 1)
		if nr > CtMarkRuleMask {
			nr = 0
		}
		c.setTag(b, r)
		c.setPrio(b, r, true)
		c.setProfile(b, r)
		setMark(b, bits, nr)
		b.add("accept", &expr.Verdict{Kind: expr.VerdictAccept})
	})
	return append(synack, syn...)
}

// synproxyChains returns the raw chain and the two proxy chains (none
// without synproxy rules).
func (c *compiler) synproxyChains() []*nft.Chain {
	if len(c.synproxy) == 0 {
		return nil
	}
	proxy := func() []*nft.Rule {
		var rules []*nft.Rule
		for _, fam := range []byte{famV4, famV6} {
			b := &builder{needs: "synproxy (nft_synproxy)"}
			b.family(fam)
			metaMarkHas(b, MetaMarkSynproxy)
			mss := synproxyMSS[fam]
			b.add(fmt.Sprintf("synproxy mss %d", mss), &expr.SynProxy{Mss: mss})
			rules = append(rules, b.rule(nft.Ref{}))
		}
		return rules
	}
	return []*nft.Chain{
		{Name: ChainSynproxyRaw, Hook: &nft.Hook{Type: nftables.ChainTypeFilter, Num: *nftables.ChainHookPrerouting, Priority: -300}, Rules: c.synproxyNotrack()},
		{Name: ChainSynproxyIn, Hook: &nft.Hook{Type: nftables.ChainTypeFilter, Num: *nftables.ChainHookInput, Priority: -10}, Rules: proxy()},
		{Name: ChainSynproxyFwd, Hook: &nft.Hook{Type: nftables.ChainTypeFilter, Num: *nftables.ChainHookForward, Priority: -10}, Rules: proxy()},
	}
}

// insertBeforeLast inserts rules before ch's last rule (its jump).
func insertBeforeLast(ch *nft.Chain, rules []*nft.Rule) {
	insertAt(ch, len(ch.Rules)-1, rules)
}

// insertAt inserts rules before ch's rule i.
func insertAt(ch *nft.Chain, i int, rules []*nft.Rule) {
	if len(rules) == 0 {
		return
	}
	out := append([]*nft.Rule(nil), ch.Rules[:i]...)
	out = append(out, rules...)
	ch.Rules = append(out, ch.Rules[i:]...)
}
