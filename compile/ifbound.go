package compile

import (
	"fmt"

	"github.com/google/nftables/expr"

	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/pfconf"
)

// if-bound states (see "Refusals and warnings" in the package doc).
//
// pf binds an if-bound state to the interface of the rule that created it
// (pf.c, BOUND_IFACE): only packets on that interface match it; others
// are evaluated against the rules. Here a keep-state rule with if-bound
// and one named interface writes the interface's number (1-255, in order
// of use) into the connection's labels, byte 10 for an inbound rule and
// byte 11 for an outbound one (label word 2, shared with route-to); the base chains, before the state shortcut,
// send a packet of such a connection that should be on the interface and
// is not (inbound rule: the original direction entering, the replies
// leaving; outbound rule: the reverse) to the filter rules, as pf does.
// The connection's packets on other interfaces in the other sense
// (leaving for a forward, replies entering) pass by the state as for
// floating states: conntrack keeps one entry per connection where pf has
// one state per interface. A rule without an interface, with a negated
// one, or in an anchor has nothing to bind to here and loads floating,
// with a warning.

const (
	ctLabelIfBoundIn  = 10
	ctLabelIfBoundOut = 11
)

// ifBoundRule reports whether r's state is bound here, numbering its
// interface; it warns for an if-bound rule it cannot bind.
func (c *compiler) ifBoundRule(r *pfconf.Rule) bool {
	if !r.StateOpts.IfBound || r.Action != pfconf.ActPass || r.KeepState == pfconf.StateNone {
		return false
	}
	if r.Ifname == "" || r.Ifname == "any" || r.IfNot || c.inAnchor() || r.Direction == pfconf.DirAny {
		c.warnf(r.Pos, "if-bound: loaded as a floating state: the rule has no single direction and interface to bind it to (Linux conntrack does not bind connections to interfaces), so its packets on other interfaces match the state too (pf evaluates the rules for them)")
		return false
	}
	for i, n := range c.boundIfs {
		if n == r.Ifname {
			return i+1 <= 255
		}
	}
	if len(c.boundIfs) == 255 {
		c.warnf(r.Pos, "if-bound: loaded as a floating state: more than 255 interfaces with if-bound states")
		return false
	}
	c.boundIfs = append(c.boundIfs, r.Ifname)
	return true
}

func (c *compiler) boundIfNumber(name string) uint32 {
	for i, n := range c.boundIfs {
		if n == name {
			return uint32(i + 1)
		}
	}
	return 0
}

// setIfBound adds to the pass of r (keep state) the binding of its state.
func (c *compiler) setIfBound(b *builder, r *pfconf.Rule, out bool) {
	if !c.ifBoundRule(r) {
		return
	}
	if out != (r.Direction == pfconf.DirOut) {
		return
	}
	k := ctLabelIfBoundIn
	if out {
		k = ctLabelIfBoundOut
	}
	n := c.boundIfNumber(r.Ifname)
	if c.boundUsed == nil {
		c.boundUsed = map[[2]uint32]bool{}
	}
	c.boundUsed[[2]uint32{uint32(k), n}] = true
	setRouteLabel(b, k, n)
}

// ifBoundRules are the first rules of a base filter chain (inbound: hook_in,
// else hook_fwd and hook_out): a packet of a bound connection that is not
// on its interface goes to the filter rules (goto: the state shortcut is
// not for it).
func (c *compiler) ifBoundRules(inbound bool) []*nft.Rule {
	var out []*nft.Rule
	target := ChainFilterOut
	if inbound {
		target = ChainFilterIn
	}
	for i, name := range c.boundIfs {
		n := uint32(i + 1)
		for _, k := range []int{ctLabelIfBoundIn, ctLabelIfBoundOut} {
			if !c.boundUsed[[2]uint32{uint32(k), n}] {
				continue
			}
			// the direction whose packets cross this hook on the interface
			dir := byte(0) // original
			if (k == ctLabelIfBoundIn) != inbound {
				dir = 1 // reply
			}
			b := &builder{}
			b.add(fmt.Sprintf("ct direction %d", dir),
				&expr.Ct{Register: 1, Key: expr.CtKeyDIRECTION},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{dir}})
			routeLabelIs(b, k, n)
			b.ifname(name, true, !inbound)
			b.add("goto "+target, &expr.Verdict{Kind: expr.VerdictGoto, Chain: target})
			out = append(out, b.rule(nft.Ref{}))
		}
	}
	return out
}
