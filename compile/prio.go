package compile

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/pfconf"
)

// set prio with two values: "set prio (a, b)".
//
// pf gives a packet of the state the second priority when it is a TCP
// segment with ACK set and no data, or its TOS (IPv6: traffic class) has
// the lowdelay bit, and the first otherwise (sys/net/pf.c, pf_test: pqid,
// set_prio[1]). Here each distinct pair of a ruleset is a value of
// CtMarkPrioMask above the single priorities (1-8 are set prio 0-7 + 1):
// 9 is the first pair, up to 15, so at most 7 pairs per ruleset. The rule
// gives its packet the first priority, and hook_prio (postrouting, before
// the scrub profiles: pf tests the TOS the packet arrived with) gives
// every packet of such a connection, both directions, its pair's priority
// by the packet's content.

// ChainPrio is the postrouting chain that applies two-value priorities.
const ChainPrio = "hook_prio"

// prioPairBase is the CtMarkPrioMask value of the first pair.
const prioPairBase = 9

// maxPrioPairs is how many pairs fit CtMarkPrioMask above the single
// priorities.
const maxPrioPairs = int(CtMarkPrioMask>>ctMarkPrioShift) - prioPairBase + 1

// PrioPairChain is the regular chain that applies the pair with mark
// value v.
func PrioPairChain(v uint32) string { return fmt.Sprintf("prio_pair_%d", v) }

// prioPair returns the CtMarkPrioMask value of r's two priorities,
// numbering the pair on first use; false (refused) when there are too
// many pairs or r keeps no state.
func (c *compiler) prioPair(r *pfconf.Rule) (uint32, bool) {
	if r.Action != pfconf.ActPass && r.Action != pfconf.ActMatch {
		c.refuse(r, "set prio (%d, %d): two priorities are only supported on pass and match rules", r.SetPrio[0], r.SetPrio[1])
		return 0, false
	}
	if r.KeepState == pfconf.StateNone && r.Action != pfconf.ActMatch {
		c.refuse(r, "set prio (%d, %d) on a rule without state is not supported: the second priority is applied to the packets of a state", r.SetPrio[0], r.SetPrio[1])
		return 0, false
	}
	for i, p := range c.prioPairs {
		if p == r.SetPrio {
			return uint32(prioPairBase + i), true
		}
	}
	if len(c.prioPairs) == maxPrioPairs {
		c.refuse(r, "set prio (%d, %d): more than %d different pairs of priorities in one ruleset are not supported", r.SetPrio[0], r.SetPrio[1], maxPrioPairs)
		return 0, false
	}
	c.prioPairs = append(c.prioPairs, r.SetPrio)
	return uint32(prioPairBase + len(c.prioPairs) - 1), true
}

func setPriority(b *builder, p uint8) {
	b.add(fmt.Sprintf("meta priority set 0:%d", p),
		&expr.Immediate{Register: 1, Data: u32(uint32(p))},
		&expr.Meta{Key: expr.MetaKeyPRIORITY, Register: 1, SourceRegister: true})
}

// tcpDataOffset matches TCP segments whose header is d 32-bit words.
func tcpDataOffset(b *builder, d uint8) {
	b.add(fmt.Sprintf("tcp doff %d", d),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 12, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0xf0}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{d << 4}})
}

// prioPairRules are the rules of one pair's chain: the first priority,
// the second for a TCP ACK, the first again when the segment has a byte
// after its header (one rule per header length) (loading it fails,
// and the rule does not match, when it has none: the kernel trims a
// packet to its IP length on receipt), the second for lowdelay.
func prioPairRules(p [2]uint8) []*nft.Rule {
	var rules []*nft.Rule
	b := &builder{}
	setPriority(b, p[0])
	rules = append(rules, b.rule(nft.Ref{}))
	b = ackSet()
	setPriority(b, p[1])
	rules = append(rules, b.rule(nft.Ref{}))
	for _, b := range tcpACKWithData() {
		setPriority(b, p[0])
		rules = append(rules, b.rule(nft.Ref{}))
	}
	for _, b := range lowdelay() {
		setPriority(b, p[1])
		rules = append(rules, b.rule(nft.Ref{}))
	}
	return rules
}

// ackSet matches TCP segments with ACK set.
func ackSet() *builder {
	b := &builder{}
	b.proto(protoTCP)
	tcpFlags(b, tcpACK, tcpACK)
	return b
}

// tcpACKWithData are one builder per TCP header length (data offset 5 to
// 15) matching the segments with ACK set, that header length and at least
// one byte after the header: the payload load fails, and the rule does
// not match, past the end of the packet. Together they match exactly the
// ACKs with data; ackSet minus these are pf's "ACK without data"
// (th_flags & TH_ACK and a payload length of 0).
func tcpACKWithData() []*builder {
	var out []*builder
	for d := uint8(5); d <= 15; d++ {
		b := ackSet()
		tcpDataOffset(b, d)
		b.add(fmt.Sprintf("@th,%d,8 exists", 32*int(d)),
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 4 * uint32(d), Len: 1})
		out = append(out, b)
	}
	return out
}

// lowdelay are the builders matching IPv4 packets with TOS bit
// IPTOS_LOWDELAY (0x10) and IPv6 packets with that bit of the traffic
// class (pf's pd->tos for both families).
func lowdelay() []*builder {
	b := &builder{}
	b.family(famV4)
	b.add("ip tos & 0x10 != 0",
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 1, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x10}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0}})
	b6 := &builder{}
	b6.family(famV6)
	// traffic class bit 0x10 is bit 0 of the first byte
	b6.add("ip6 traffic class & 0x10 != 0",
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 0, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x01}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0}})
	return []*builder{b, b6}
}

// prioChains returns hook_prio and the pairs' chains (none without
// pairs).
func (c *compiler) prioChains() []*nft.Chain {
	if len(c.prioPairs) == 0 {
		return nil
	}
	hook := &nft.Chain{Name: ChainPrio, Hook: &nft.Hook{Type: nftables.ChainTypeFilter, Num: *nftables.ChainHookPostrouting, Priority: 40}}
	var out []*nft.Chain
	for i, p := range c.prioPairs {
		v := uint32(prioPairBase + i)
		name := PrioPairChain(v)
		b := &builder{}
		b.add(fmt.Sprintf("ct mark & 0x%08x == 0x%08x", CtMarkPrioMask, v<<ctMarkPrioShift),
			&expr.Ct{Register: 1, Key: expr.CtKeyMARK},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: u32(CtMarkPrioMask), Xor: u32(0)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: u32(v << ctMarkPrioShift)})
		b.add("jump "+name, &expr.Verdict{Kind: expr.VerdictJump, Chain: name})
		hook.Rules = append(hook.Rules, b.rule(nft.Ref{}))
		out = append(out, &nft.Chain{Name: name, Rules: prioPairRules(p)})
	}
	return append(out, hook)
}
