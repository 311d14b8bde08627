package compile

import (
	"fmt"

	"github.com/google/nftables/expr"

	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/pfconf"
)

// maxTags is how many tag names fit CtMarkTagMask.
const maxTags = int(CtMarkTagMask >> ctMarkTagShift)

const (
	ctMarkTagShift   = 16
	ctMarkPrioShift  = 22
	ctMarkScrubShift = 26
)

// tagNames numbers a ruleset's tag names.
type tagNames struct {
	ids   map[string]uint32
	names []string
}

func (t *tagNames) id(name string) uint32 {
	if t.ids == nil {
		t.ids = map[string]uint32{}
	}
	if id, ok := t.ids[name]; ok {
		return id
	}
	t.names = append(t.names, name)
	id := uint32(len(t.names))
	t.ids[name] = id
	return id
}

// tagID returns name's number, refusing r when there are too many.
func (c *compiler) tagID(r *pfconf.Rule, name string) (uint32, bool) {
	id := c.tags.id(name)
	if int(id) > maxTags {
		c.refuse(r, "tag %s: more than %d tag names in one ruleset are not supported", name, maxTags)
		return 0, false
	}
	return id, true
}

// matchTagged adds r's tagged and prio matches.
func (c *compiler) matchTagged(b *builder, r *pfconf.Rule) bool {
	if r.Tagged != "" {
		id, ok := c.tagID(r, r.Tagged)
		if !ok {
			return false
		}
		op := "== "
		if r.TaggedNot {
			op = "!= "
		}
		b.add(fmt.Sprintf("ct mark & 0x%08x %s0x%08x (tagged %s)", CtMarkTagMask, op, id<<ctMarkTagShift, r.Tagged),
			&expr.Ct{Register: 1, Key: expr.CtKeyMARK},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: u32(CtMarkTagMask), Xor: u32(0)},
			&expr.Cmp{Op: cmpOp(r.TaggedNot), Register: 1, Data: u32(id << ctMarkTagShift)})
	}
	if r.Prio != 0 {
		p := uint32(r.Prio)
		if r.Prio == 255 { // pfconf's prio 0
			p = 0
		}
		b.add(fmt.Sprintf("meta priority 0:%d", p),
			&expr.Meta{Key: expr.MetaKeyPRIORITY, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: u32(p)})
	}
	return true
}

// setTag adds "tag" of r: the tag number into the connection mark.
func (c *compiler) setTag(b *builder, r *pfconf.Rule) {
	if r.Tag == "" {
		return
	}
	id, ok := c.tagID(r, r.Tag)
	if !ok {
		return
	}
	setMarkField(b, CtMarkTagMask, id<<ctMarkTagShift, "tag "+r.Tag)
}

// setPrio adds "set prio": the packet's priority and, when keep is true,
// the connection's.
func (c *compiler) setPrio(b *builder, r *pfconf.Rule, keep bool) {
	if !r.SetPrioSet {
		return
	}
	p := uint32(r.SetPrio[0])
	b.add(fmt.Sprintf("meta priority set 0:%d", p),
		&expr.Immediate{Register: 1, Data: u32(p)},
		&expr.Meta{Key: expr.MetaKeyPRIORITY, Register: 1, SourceRegister: true})
	if r.SetPrio[1] != r.SetPrio[0] {
		if v, ok := c.prioPair(r); ok && keep { // prio.go
			setMarkField(b, CtMarkPrioMask, v<<ctMarkPrioShift, fmt.Sprintf("prio (%d, %d)", r.SetPrio[0], r.SetPrio[1]))
		}
		return
	}
	if keep && p < 8 {
		c.prioUsed[p] = true
		setMarkField(b, CtMarkPrioMask, (p+1)<<ctMarkPrioShift, fmt.Sprintf("prio %d", p))
	}
}

// checkPrio refuses the set prio forms that cannot be enforced.
func (c *compiler) checkPrio(r *pfconf.Rule) bool {
	if r.SetPrioSet && r.SetPrio[1] != r.SetPrio[0] {
		_, ok := c.prioPair(r) // prio.go
		return ok
	}
	return true
}

// setMarkField stores val (within mask) in the connection mark.
func setMarkField(b *builder, mask, val uint32, what string) {
	b.add(fmt.Sprintf("ct mark set ct mark & 0x%08x | 0x%08x (%s)", ^mask, val, what),
		&expr.Ct{Register: 1, Key: expr.CtKeyMARK},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: u32(^mask), Xor: u32(val)},
		&expr.Ct{Register: 1, Key: expr.CtKeyMARK, SourceRegister: true})
}

// prioRules give the packets of a connection with a set prio its
// priority, in hook_fwd and hook_out before the state shortcut (the kernel
// sets a forwarded packet's priority from its TOS before the forward
// hook).
func (c *compiler) prioRules() []*nft.Rule {
	var out []*nft.Rule
	for p, used := range c.prioUsed {
		if !used {
			continue
		}
		b := &builder{}
		v := uint32(p+1) << ctMarkPrioShift
		b.add(fmt.Sprintf("ct mark & 0x%08x == 0x%08x", CtMarkPrioMask, v),
			&expr.Ct{Register: 1, Key: expr.CtKeyMARK},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: u32(CtMarkPrioMask), Xor: u32(0)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: u32(v)})
		b.add(fmt.Sprintf("meta priority set 0:%d", p),
			&expr.Immediate{Register: 1, Data: u32(uint32(p))},
			&expr.Meta{Key: expr.MetaKeyPRIORITY, Register: 1, SourceRegister: true})
		out = append(out, b.rule(nft.Ref{}))
	}
	return out
}
