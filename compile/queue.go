package compile

import (
	"fmt"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/pfconf"
	"github.com/pfcarp/pfcarp/tc"
)

// Queue state in the conntrack labels (the connection mark has no free
// bits): the kernel's 128 label bits are four 32-bit words, of which
// word CtLabelOrigWord holds the class id (tc.Major:minor) for the
// connection's original-direction packets and CtLabelReplyWord the one
// for its replies. nftables can only add label bits, never clear them, so
// each word is written once, by the rule that keeps the state.
const (
	CtLabelOrigWord  = 0
	CtLabelReplyWord = 1
)

// queueDecls plans the ruleset's queues (package tc) for the kernel's
// qdiscs and refuses what it cannot have.
func (c *compiler) queueDecls() {
	plan, errs := tc.Build(c.rs, c.opts.Queues)
	for _, e := range errs {
		c.errorf(e.Pos, "%s", e.Msg)
	}
	for _, w := range plan.Warnings {
		if !c.warnSeen[w] {
			c.warnSeen[w] = true
			c.warns = append(c.warns, w)
		}
	}
	c.plan = plan
	if !plan.Empty() {
		c.prog.Queues = plan
	}
}

// checkQueue refuses the queue assignments of r that cannot be had.
func (c *compiler) checkQueue(r *pfconf.Rule) bool {
	if r.Queue == "" && r.PQueue == "" {
		return true
	}
	if c.plan == nil { // an anchor: queues belong to the main ruleset
		c.refuse(r, "queue %s in an anchor is not supported: the anchor does not know the main ruleset's queues", r.Queue)
		return false
	}
	for _, q := range []string{r.Queue, r.PQueue} {
		if q == "" {
			continue
		}
		if _, ok := c.plan.ClassID(q); !ok {
			if c.plan.Declared[q] { // its declaration is refused
				return false
			}
			// pfctl accepts a queue no interface has: the kernel
			// gives the name a queue id (pf_ioctl.c, DIOCADDRULE:
			// pf_qname2qid), and ALTQ's enqueue puts a packet whose
			// id has no class in the default class.
			c.warnf(r.Pos, "queue %s is not defined on any interface: its packets go to the interface's default queue, as in pf", q)
		}
	}
	if _, ok := c.pqueueIndex(r); !ok {
		return false
	}
	if r.Action == pfconf.ActBlock {
		c.warnf(r.Pos, "queue %s on a block rule: the packets the block returns are not queued", r.Queue)
	}
	return true
}

// setQueue adds r's queue: the packet's priority is the queue's class id,
// which the interface's HTB or HFSC qdisc takes for its class.
func (c *compiler) setQueue(b *builder, r *pfconf.Rule) {
	id, ok := c.plan.ClassID(r.Queue)
	if !ok || r.Action == pfconf.ActBlock {
		return
	}
	k, _ := c.pqueueIndex(r)
	text := fmt.Sprintf("meta priority set %x:%x (queue %s)", id>>16, id&0xffff, r.Queue)
	if k != 0 {
		id |= k << pqueueShift
		text = fmt.Sprintf("meta priority set %x:%x (queue %s, second queue %d: %s)", id>>16, id&0xffff, r.Queue, k, r.PQueue)
	}
	b.add(text,
		&expr.Immediate{Register: 1, Data: u32(id)},
		&expr.Meta{Key: expr.MetaKeyPRIORITY, Register: 1, SourceRegister: true})
}

// keepQueue stores the packet's priority, the class id its rules gave
// it, in the connection's label word for its direction: the replies' word
// for an inbound rule, the original direction's for an outbound one (the
// state's first packet is in the original direction).
func (c *compiler) keepQueue(b *builder, out bool) {
	if c.plan.Empty() {
		return
	}
	word := CtLabelReplyWord
	if out {
		word = CtLabelOrigWord
	}
	b.add(fmt.Sprintf("ct label word %d set meta priority", word),
		&expr.Immediate{Register: 1, Data: make([]byte, 16)},
		&expr.Meta{Key: expr.MetaKeyPRIORITY, Register: uint32(unix.NFT_REG32_00 + word)},
		&expr.Ct{Key: expr.CtKeyLABELS, Register: 1, SourceRegister: true})
}

// queueRules give the packets of a connection with a queue their class,
// in hook_fwd and hook_out before the state shortcut, on the interfaces
// that have queues (elsewhere the set prio or the kernel's priority stays).
func (c *compiler) queueRules() []*nft.Rule {
	if c.plan.Empty() {
		return nil
	}
	var out []*nft.Rule
	for _, ifc := range c.plan.Ifaces {
		for _, d := range []struct {
			dir  byte
			word int
			name string
		}{{0, CtLabelOrigWord, "original"}, {1, CtLabelReplyWord, "reply"}} {
			b := &builder{}
			b.ifname(ifc.Name, false, true)
			reg := uint32(unix.NFT_REG32_00 + d.word)
			b.add("ct direction "+d.name,
				&expr.Ct{Key: expr.CtKeyDIRECTION, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{d.dir}})
			b.add(fmt.Sprintf("ct label word %d & 0xffff0000 == 0x%04x0000", d.word, tc.Major),
				&expr.Ct{Key: expr.CtKeyLABELS, Register: 1},
				&expr.Bitwise{SourceRegister: reg, DestRegister: unix.NFT_REG32_04, Len: 4, Mask: u32(0xffff0000), Xor: u32(0)},
				&expr.Cmp{Op: expr.CmpOpEq, Register: unix.NFT_REG32_04, Data: u32(uint32(tc.Major) << 16)})
			b.add(fmt.Sprintf("meta priority set ct label word %d", d.word),
				&expr.Meta{Key: expr.MetaKeyPRIORITY, Register: reg, SourceRegister: true})
			out = append(out, b.rule(nft.Ref{}))
		}
	}
	return out
}
