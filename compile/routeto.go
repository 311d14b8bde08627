package compile

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/pfconf"
)

// route-to and reply-to (see "Routing" in the package doc).
//
// pf.conf(5): route-to routes the packets a rule passes, and those of its
// state in the same direction, to the interface (and next hop) given;
// reply-to does so for the state's packets in the opposite direction.
// Here each distinct target (interface, gateway) is a value of the
// packet mark field MetaMarkRouteMask and a routing table of pfcarp's
// whose default route is the target (nft.PolicyRoute, applied by
// nft.Conn.Load). The mark must be set before the routing decision:
// in prerouting (filter_in, and hook_in's first rules for a state's
// later packets) and, for the replies a reply-to rule's state sends from
// this host, in hook_route_out (a route chain in output: the kernel
// routes a packet again when such a chain changes its mark).

// MetaMarkRouteMask is the packet mark field that selects a route-to or
// reply-to target (1-255; 0: none).
const MetaMarkRouteMask uint32 = 0x00ff0000

const metaMarkRouteShift = 16

// ChainRouteOut is the output route chain of reply-to.
const ChainRouteOut = "hook_route_out"

// routeTarget is one route-to/reply-to destination.
type routeTarget struct {
	ifname string
	gw     pfconf.Addr // AddrMask host or unset
}

// routeIndex returns r's target number (1-255), numbering it on first
// use, or refuses r.
func (c *compiler) routeIndex(r *pfconf.Rule) (uint32, bool) {
	if len(r.Route.Addrs) != 1 {
		c.refuse(r, "%s with several targets (a pool) is not supported", routeWord(r))
		return 0, false
	}
	a := r.Route.Addrs[0]
	t := routeTarget{ifname: a.Ifname, gw: a.Addr}
	if t.gw.Type != pfconf.AddrMask || (t.gw.Addr.IsValid() && t.gw.Bits != t.gw.Addr.BitLen()) {
		c.refuse(r, "%s to %s: the next hop must be an address", routeWord(r), addrString(t.gw))
		return 0, false
	}
	if t.ifname == "" && !t.gw.Addr.IsValid() {
		c.refuse(r, "%s needs an interface or a next hop", routeWord(r))
		return 0, false
	}
	for i, o := range c.routes {
		if o == t {
			return uint32(i + 1), true
		}
	}
	if len(c.routes) == int(MetaMarkRouteMask>>metaMarkRouteShift) || len(c.routes)+1 >= nft.PolicyTables {
		c.refuse(r, "%s: more than %d targets in one ruleset are not supported", routeWord(r), len(c.routes))
		return 0, false
	}
	c.routes = append(c.routes, t)
	return uint32(len(c.routes)), true
}

func routeWord(r *pfconf.Rule) string {
	switch r.RouteType {
	case pfconf.RouteReplyTo:
		return "reply-to"
	case pfconf.RouteDupTo:
		return "dup-to"
	case pfconf.RouteFastRoute:
		return "fastroute"
	}
	return "route-to"
}

// checkRoute refuses the routing options that cannot be compiled and
// notes the others.
func (c *compiler) checkRoute(r *pfconf.Rule) bool {
	switch r.RouteType {
	case pfconf.RouteNone:
		return true
	case pfconf.RouteFastRoute:
		c.refuse(r, "fastroute is not supported")
		return false
	case pfconf.RouteDupTo:
		c.refuse(r, "dup-to is not supported: the kernel's dup statement exists in nftables' ip and ip6 families, not in pfcarp's inet table")
		return false
	}
	if c.inAnchor() {
		c.refuse(r, "%s in an anchor is not supported (it uses the main ruleset's policy routing)", routeWord(r))
		return false
	}
	if r.Action != pfconf.ActPass {
		c.refuse(r, "%s is only supported on pass rules", routeWord(r))
		return false
	}
	if r.RouteType == pfconf.RouteTo && r.Direction != pfconf.DirIn {
		c.refuse(r, "route-to on a rule that is not \"in\" is not supported: Linux routes a forwarded packet once, before the outbound rules see it; write route-to on the rule that passes the packet in")
		return false
	}
	if r.RouteType == pfconf.RouteReplyTo && r.KeepState == pfconf.StateNone {
		c.refuse(r, "reply-to needs state: the replies are those of the rule's state")
		return false
	}
	if c.nr(r)+1 > int(CtMarkRuleMask) {
		c.refuse(r, "%s is not supported beyond rule %d", routeWord(r), CtMarkRuleMask-1)
		return false
	}
	_, ok := c.routeIndex(r)
	return ok
}

// setRouteMark stores target i in the packet mark's route field.
func setRouteMark(b *builder, i uint32) {
	v := i << metaMarkRouteShift
	b.add(fmt.Sprintf("meta mark set meta mark & 0x%08x | 0x%08x", ^MetaMarkRouteMask, v),
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: u32(^MetaMarkRouteMask), Xor: u32(v)},
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1, SourceRegister: true})
}

// Connection label bytes of route-to and reply-to: the target number of
// the connection's packets in its original direction (route-to) and in
// the reply direction (reply-to). The connection mark has no room; its
// rule number is the last rule that kept state, which an outbound rule
// overwrites. Labels can only be added to, which suits a target given
// once, by the rule that passes the connection's first packet.
//
// Bytes 8-11 (label word 2) are route-to's and if-bound's; words 0 and 1
// are the queues' (queue.go).
const (
	ctLabelRouteTo = 8
	ctLabelReplyTo = 9
)

const ctLabelNeeds = "connection labels (nf_conntrack_labels)"

// setRouteLabel adds target i to byte k of the connection's labels.
func setRouteLabel(b *builder, k int, i uint32) {
	v := make([]byte, 16)
	v[k] = byte(i)
	b.needs = ctLabelNeeds
	b.add(fmt.Sprintf("ct label set ct label | byte %d = %d", k, i),
		&expr.Immediate{Register: 1, Data: v},
		&expr.Ct{Register: 1, Key: expr.CtKeyLABELS, SourceRegister: true})
}

// routeLabelIs matches connections whose label byte k is target i.
func routeLabelIs(b *builder, k int, i uint32) {
	mask, v := make([]byte, 16), make([]byte, 16)
	mask[k], v[k] = 0xff, byte(i)
	b.needs = ctLabelNeeds
	b.add(fmt.Sprintf("ct label byte %d == %d", k, i),
		&expr.Ct{Register: 1, Key: expr.CtKeyLABELS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 16, Mask: mask, Xor: make([]byte, 16)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: v})
}

// routePass adds to the pass of r: for route-to (filter_in) the packet
// mark and the connection's route-to label, for reply-to its label.
func (c *compiler) routePass(b *builder, r *pfconf.Rule, out bool) {
	if r.Action != pfconf.ActPass {
		return
	}
	switch {
	case r.RouteType == pfconf.RouteTo && !out:
		if i, ok := c.routeIndex(r); ok {
			if r.KeepState != pfconf.StateNone {
				setRouteLabel(b, ctLabelRouteTo, i)
			}
			setRouteMark(b, i)
		}
	case r.RouteType == pfconf.RouteReplyTo:
		if i, ok := c.routeIndex(r); ok {
			setRouteLabel(b, ctLabelReplyTo, i)
		}
	}
}

// routeStateRules are the rules that mark a state's later packets by
// its labels: the original direction for route-to, the reply direction
// for reply-to. prerouting is for hook_in, else for hook_route_out
// (reply-to only: replies this host sends).
func (c *compiler) routeStateRules(prerouting bool) []*nft.Rule {
	used := map[[2]uint32]bool{}
	for _, r := range c.routeRules {
		if r.KeepState == pfconf.StateNone {
			continue
		}
		if i, ok := c.routeIndex(r); ok {
			k := uint32(ctLabelRouteTo)
			if r.RouteType == pfconf.RouteReplyTo {
				k = ctLabelReplyTo
			}
			used[[2]uint32{k, i}] = true
		}
	}
	var out []*nft.Rule
	for i := uint32(1); i <= uint32(len(c.routes)); i++ {
		for _, k := range []int{ctLabelRouteTo, ctLabelReplyTo} {
			if !used[[2]uint32{uint32(k), i}] || (!prerouting && k != ctLabelReplyTo) {
				continue
			}
			dir := byte(0) // IP_CT_DIR_ORIGINAL for route-to, REPLY for reply-to
			if k == ctLabelReplyTo {
				dir = 1
			}
			b := &builder{}
			b.add(fmt.Sprintf("ct direction %d", dir),
				&expr.Ct{Register: 1, Key: expr.CtKeyDIRECTION},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{dir}})
			routeLabelIs(b, k, i)
			setRouteMark(b, i)
			out = append(out, b.rule(nft.Ref{}))
		}
	}
	return out
}

// noteRouteRule remembers r for routeStateRules (once).
func (c *compiler) noteRouteRule(r *pfconf.Rule) {
	for _, o := range c.routeRules {
		if o == r {
			return
		}
	}
	c.routeRules = append(c.routeRules, r)
}

// routeChains returns hook_route_out when a reply-to rule needs it.
func (c *compiler) routeChains() []*nft.Chain {
	rules := c.routeStateRules(false)
	if len(rules) == 0 {
		return nil
	}
	return []*nft.Chain{{Name: ChainRouteOut, Hook: &nft.Hook{Type: nftables.ChainTypeRoute, Num: *nftables.ChainHookOutput, Priority: -150}, Rules: rules}}
}

// routePolicies are the policy routes of the targets: table
// PolicyTableBase+i, the default route via the target, for the
// gateway's family (both without one).
func (c *compiler) routePolicies() []nft.PolicyRoute {
	var out []nft.PolicyRoute
	for n, t := range c.routes {
		i := uint32(n + 1)
		for _, v6 := range []bool{false, true} {
			if t.gw.Addr.IsValid() && t.gw.Addr.Is6() != v6 {
				continue
			}
			out = append(out, nft.PolicyRoute{Mark: i << metaMarkRouteShift, Mask: MetaMarkRouteMask, V6: v6,
				Table: nft.PolicyTableBase + int(i), Gateway: t.gw.Addr, Dev: t.ifname})
		}
	}
	return out
}
