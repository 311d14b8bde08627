package compile

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/pfconf"
	"github.com/pfcarp/pfcarp/tc"
)

// Queue pairs: "queue (q, pq)" and "set queue (q, pq)".
//
// pf puts a packet into the rule's (or its state's) second queue when it
// is a TCP segment with ACK set and no data, or its TOS (IPv6: traffic
// class) has IPTOS_LOWDELAY, and into the first otherwise (FreeBSD
// sys/netpfil/pf/pf.c and OpenBSD sys/net/pf.c, pf_test: the pqid flag
// set for "th_flags & TH_ACK && p_len == 0", then qid = pqid when it or
// the lowdelay bit is set).
//
// Here each distinct second queue of a ruleset has a number k, 1 to 15,
// which rides in bits 12-15 of the class id the rule gives the packet
// (tc's minors stay below 0x1000): the priority is Major:(k<<12 | minor
// of q). That value goes wherever a queue's class id goes (the
// connection's label words, restored by hook_fwd and hook_out), and
// hook_pqueue, in postrouting before the qdisc sees the packet, resolves
// it by the packet's content: the class id of the k-th second queue for
// an empty ACK or a lowdelay packet, the first queue's class id (the
// priority without k) for the others. The exact "no data" test is the one
// set prio's pairs use (tcpACKWithData).

// ChainPQueue is the postrouting chain that resolves queue pairs.
const ChainPQueue = "hook_pqueue"

// pqueueShift and pqueueMask place the second queue's number in a class
// id.
const (
	pqueueShift = 12
	pqueueMask  = 0xf << pqueueShift
	maxPQueues  = 15
)

// PQueueChain is the regular chain of second queue number k.
func PQueueChain(k uint32) string { return fmt.Sprintf("pqueue_%d", k) }

// pqueueIndex returns the number of r's second queue (0: none, or the same
// as the first), numbering it on first use; false (refused) when the
// ruleset has more than maxPQueues second queues.
func (c *compiler) pqueueIndex(r *pfconf.Rule) (uint32, bool) {
	if r.PQueue == "" || r.PQueue == r.Queue {
		return 0, true
	}
	for i, q := range c.pqueues {
		if q == r.PQueue {
			return uint32(i + 1), true
		}
	}
	if len(c.pqueues) == maxPQueues {
		c.refuse(r, "queue (%s, %s): more than %d different second queues in one ruleset are not supported", r.Queue, r.PQueue, maxPQueues)
		return 0, false
	}
	c.pqueues = append(c.pqueues, r.PQueue)
	return uint32(len(c.pqueues)), true
}

// setPriorityID sets the packet's priority to class id id.
func setPriorityID(b *builder, id uint32, text string) {
	b.add(fmt.Sprintf("meta priority set %x:%x (%s)", id>>16, id&0xffff, text),
		&expr.Immediate{Register: 1, Data: u32(id)},
		&expr.Meta{Key: expr.MetaKeyPRIORITY, Register: 1, SourceRegister: true})
}

// clearPQueue sets the priority to itself without the second queue's
// number: the first queue's class id.
func clearPQueue(b *builder) {
	b.add(fmt.Sprintf("meta priority set meta priority & 0x%08x", uint32(^uint32(pqueueMask))),
		&expr.Meta{Key: expr.MetaKeyPRIORITY, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: u32(^uint32(pqueueMask)), Xor: u32(0)},
		&expr.Meta{Key: expr.MetaKeyPRIORITY, Register: 1, SourceRegister: true})
}

func ret(b *builder) { b.add("return", &expr.Verdict{Kind: expr.VerdictReturn}) }

// pqueueRules are the rules of the chain of second queue pq (class id
// id): a lowdelay packet goes to pq, then an ACK with data to the first
// queue, an ACK without data (every other ACK) to pq, the rest to the
// first queue.
func pqueueRules(pq string, id uint32) []*nft.Rule {
	var rules []*nft.Rule
	second := func(b *builder) {
		setPriorityID(b, id, "queue "+pq)
		ret(b)
		rules = append(rules, b.rule(nft.Ref{}))
	}
	for _, b := range lowdelay() {
		second(b)
	}
	for _, b := range tcpACKWithData() {
		clearPQueue(b)
		ret(b)
		rules = append(rules, b.rule(nft.Ref{}))
	}
	second(ackSet())
	b := &builder{}
	clearPQueue(b)
	return append(rules, b.rule(nft.Ref{}))
}

// pqueueChains returns hook_pqueue and one chain per second queue (none
// without). hook_pqueue runs in postrouting at priority 39: after the
// forward and output hooks (which restore a connection's queue), before
// hook_prio and the scrub profiles (pf tests the TOS the packet arrived
// with, before set-tos).
func (c *compiler) pqueueChains() []*nft.Chain {
	if len(c.pqueues) == 0 {
		return nil
	}
	hook := &nft.Chain{Name: ChainPQueue, Hook: &nft.Hook{Type: nftables.ChainTypeFilter, Num: *nftables.ChainHookPostrouting, Priority: 39}}
	var out []*nft.Chain
	for i, pq := range c.pqueues {
		k := uint32(i + 1)
		id, _ := c.plan.ClassID(pq) // 0 (the default queue) when no interface has it
		v := uint32(tc.Major)<<16 | k<<pqueueShift
		b := &builder{}
		b.add(fmt.Sprintf("meta priority & 0xffff%04x == 0x%08x", pqueueMask, v),
			&expr.Meta{Key: expr.MetaKeyPRIORITY, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: u32(0xffff0000 | pqueueMask), Xor: u32(0)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: u32(v)})
		b.add("jump "+PQueueChain(k), &expr.Verdict{Kind: expr.VerdictJump, Chain: PQueueChain(k)})
		hook.Rules = append(hook.Rules, b.rule(nft.Ref{}))
		out = append(out, &nft.Chain{Name: PQueueChain(k), Rules: pqueueRules(pq, id)})
	}
	return append(out, hook)
}
