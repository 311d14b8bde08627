package compile

import (
	"fmt"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/pfconf"
)

// divert-to and divert-reply (see "Divert" in the package doc).
//
// OpenBSD's divert-to ADDR port PORT on an inbound rule delivers the
// matching packets, and those of their state, to the local socket bound
// to ADDR:PORT without changing their addresses (the socket sees the
// original destination); divert-reply on an outbound rule delivers the
// replies of a connection a local socket made from a foreign address to
// that socket (pf.conf(5)). Linux does this with tproxy (prerouting:
// assign the socket) and a policy route: packets with MetaMarkDivert are
// routed by a table whose default route is local (nft.PolicyRoute), so
// they are delivered instead of forwarded. The socket must be transparent
// (IP_TRANSPARENT), which Linux requires of tproxy's listeners and of
// sockets bound to foreign addresses.

// MetaMarkDivert is the packet mark bit of packets diverted to a local
// socket.
const MetaMarkDivert uint32 = 1 << 27

// divertTable is the routing table of diverted packets.
const divertTable = nft.PolicyTableBase

// checkDivert refuses the divert-to and divert-reply rules that cannot be
// compiled and notes the others.
func (c *compiler) checkDivert(r *pfconf.Rule) bool {
	if !r.DivertAddr.IsValid() && !r.DivertReply {
		return true
	}
	if c.inAnchor() {
		c.refuse(r, "divert-to and divert-reply in an anchor are not supported (they use the main ruleset's policy routing)")
		return false
	}
	if r.Action != pfconf.ActPass {
		c.refuse(r, "divert-to and divert-reply are only supported on pass rules")
		return false
	}
	if r.DivertAddr.IsValid() && r.Proto != protoTCP && r.Proto != protoUDP {
		c.refuse(r, "divert-to needs proto tcp or udp here (the kernel's tproxy diverts TCP and UDP only)")
		return false
	}
	if (r.DivertAddr.IsValid() || r.KeepState != pfconf.StateNone) && c.nr(r)+1 > int(CtMarkRuleMask) {
		c.refuse(r, "divert-to and divert-reply are not supported beyond rule %d", CtMarkRuleMask-1)
		return false
	}
	for _, d := range c.diverts {
		if d == r {
			return true
		}
	}
	c.diverts = append(c.diverts, r)
	return true
}

// loadTProxyTarget puts r's divert address and port into registers 1
// and 2 and adds the tproxy statement.
func tproxy(b *builder, r *pfconf.Rule) {
	fam, ip := byte(unix.NFPROTO_IPV4), "ip"
	if r.DivertAddr.Is6() {
		fam, ip = unix.NFPROTO_IPV6, "ip6"
	}
	b.needs = "tproxy (nft_tproxy)"
	b.add(fmt.Sprintf("tproxy %s to %s", ip, netipAddrPort(r)),
		&expr.Immediate{Register: 1, Data: r.DivertAddr.AsSlice()},
		&expr.Immediate{Register: 2, Data: be16(r.DivertPort)},
		&expr.TProxy{Family: fam, TableFamily: unix.NFPROTO_INET, RegAddr: 1, RegPort: 2})
}

func netipAddrPort(r *pfconf.Rule) string {
	if r.DivertAddr.Is6() {
		return fmt.Sprintf("[%s]:%d", r.DivertAddr, r.DivertPort)
	}
	return fmt.Sprintf("%s:%d", r.DivertAddr, r.DivertPort)
}

// divertPass adds to the pass of r in filter_in (out false) the tproxy of
// divert-to and the packet mark; it reports whether it did.
func (c *compiler) divertPass(b *builder, r *pfconf.Rule, out bool) bool {
	if out || !r.DivertAddr.IsValid() || !c.diverting(r) {
		return false
	}
	tproxy(b, r)
	setMetaMark(b, MetaMarkDivert)
	return true
}

func (c *compiler) diverting(r *pfconf.Rule) bool {
	for _, d := range c.diverts {
		if d == r {
			return true
		}
	}
	return false
}

// divertStateRules are hook_in's first rules: the later packets of a
// connection a divert-to rule passed (original direction) are diverted
// like its first, and the replies to a divert-reply rule's connection
// that belong to a transparent local socket are marked for local
// delivery.
func (c *compiler) divertStateRules() []*nft.Rule {
	var out []*nft.Rule
	for _, r := range c.diverts {
		if r.KeepState == pfconf.StateNone {
			continue // each packet meets the rule
		}
		b := &builder{}
		dir := byte(0) // IP_CT_DIR_ORIGINAL
		if r.DivertReply {
			dir = 1
		}
		b.add(fmt.Sprintf("ct direction %d", dir),
			&expr.Ct{Register: 1, Key: expr.CtKeyDIRECTION},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{dir}})
		nr := uint32(c.nr(r) + 1)
		b.add(fmt.Sprintf("ct mark & 0x%08x == 0x%08x", CtMarkRuleMask, nr),
			&expr.Ct{Register: 1, Key: expr.CtKeyMARK},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: u32(CtMarkRuleMask), Xor: u32(0)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: u32(nr)})
		if r.DivertReply {
			b.needs = "socket matching (nft_socket)"
			b.add("socket transparent 1",
				&expr.Socket{Key: expr.SocketKeyTransparent, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{1}})
		} else {
			b.proto(r.Proto)
			tproxy(b, r)
		}
		setMetaMark(b, MetaMarkDivert)
		out = append(out, b.rule(nft.Ref{Kind: nft.KindFilter, Nr: c.nr(r), Part: 1100}))
	}
	return out
}

// divertRoutes are the policy routes of diverted packets (none without
// divert rules).
func (c *compiler) divertRoutes() []nft.PolicyRoute {
	if len(c.diverts) == 0 {
		return nil
	}
	var out []nft.PolicyRoute
	for _, v6 := range []bool{false, true} {
		out = append(out, nft.PolicyRoute{Mark: MetaMarkDivert, Mask: MetaMarkDivert, V6: v6, Table: divertTable, Local: true})
	}
	return out
}
