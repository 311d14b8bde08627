package compile

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/pfconf"
)

// Address families of kernel rules: 0 means "both" (no family match).
const (
	famAny = 0
	famV4  = unix.NFPROTO_IPV4
	famV6  = unix.NFPROTO_IPV6
)

// IP protocol numbers used here.
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
	protoSCTP   = 132
)

// builder accumulates one kernel rule's expressions and its nft text, side
// by side, so the readable form cannot drift from what is loaded.
type builder struct {
	exprs []expr.Any
	text  []string
	needs string
}

func (b *builder) add(text string, es ...expr.Any) {
	if text != "" {
		b.text = append(b.text, text)
	}
	b.exprs = append(b.exprs, es...)
}

func (b *builder) rule(ref nft.Ref) *nft.Rule {
	return &nft.Rule{Exprs: b.exprs, Text: strings.Join(b.text, " "), Ref: ref, Needs: b.needs}
}

// clone returns an independent copy of b (expressions are shared: they are
// never modified after being added).
func (b *builder) clone() *builder {
	return &builder{exprs: append([]expr.Any(nil), b.exprs...), text: append([]string(nil), b.text...), needs: b.needs}
}

func u32(v uint32) []byte  { return binary.NativeEndian.AppendUint32(nil, v) }
func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// ifname is the 16-byte, NUL-padded interface name nftables compares.
func ifname(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

func cmpOp(neg bool) expr.CmpOp {
	if neg {
		return expr.CmpOpNeq
	}
	return expr.CmpOpEq
}

func negText(neg bool) string {
	if neg {
		return "!= "
	}
	return ""
}

// Structural rules of the base chains.

func stateRule() *nft.Rule {
	b := &builder{}
	b.add("ct state established,related",
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: u32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED), Xor: u32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: u32(0)})
	b.add(fmt.Sprintf("ct mark & 0x%08x != 0", CtMarkState),
		&expr.Ct{Register: 1, Key: expr.CtKeyMARK},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: u32(CtMarkState), Xor: u32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: u32(0)})
	b.add("accept", &expr.Verdict{Kind: expr.VerdictAccept})
	return b.rule(nft.Ref{})
}

// invalidDropRule drops what conntrack calls invalid: above all a TCP
// segment outside its connection's window, which pf drops as a bad state.
func invalidDropRule() *nft.Rule {
	b := &builder{}
	b.add("ct state invalid",
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: u32(expr.CtStateBitINVALID), Xor: u32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: u32(0)})
	b.add("drop", &expr.Verdict{Kind: expr.VerdictDrop})
	return b.rule(nft.Ref{})
}

func natPassRule() *nft.Rule {
	b := &builder{}
	b.add(fmt.Sprintf("ct mark & 0x%08x != 0", CtMarkPass),
		&expr.Ct{Register: 1, Key: expr.CtKeyMARK},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: u32(CtMarkPass), Xor: u32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: u32(0)})
	b.add("accept", &expr.Verdict{Kind: expr.VerdictAccept})
	return b.rule(nft.Ref{})
}

func skipRule(name string, out bool) *nft.Rule {
	b := &builder{}
	b.ifname(name, false, out)
	b.add("accept", &expr.Verdict{Kind: expr.VerdictAccept})
	return b.rule(nft.Ref{})
}

func jumpRule(chain string) *nft.Rule {
	b := &builder{}
	b.add("jump "+chain, &expr.Verdict{Kind: expr.VerdictJump, Chain: chain})
	return b.rule(nft.Ref{})
}

func (b *builder) counter() { b.add("counter", &expr.Counter{}) }

func (b *builder) ifname(name string, neg, out bool) {
	key, kw := expr.MetaKeyIIFNAME, "iifname"
	if out {
		key, kw = expr.MetaKeyOIFNAME, "oifname"
	}
	b.add(fmt.Sprintf("%s %s%q", kw, negText(neg), name),
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: cmpOp(neg), Register: 1, Data: ifname(name)})
}

func (b *builder) family(fam byte) {
	switch fam {
	case famV4:
		b.add("meta nfproto ipv4", &expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{famV4}})
	case famV6:
		b.add("meta nfproto ipv6", &expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{famV6}})
	}
}

func (b *builder) proto(p uint8) {
	b.add(fmt.Sprintf("meta l4proto %d", p), &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}})
}

// loadAddr loads the source (dst false) or destination address of family
// fam into register reg. orig loads the destination of the connection's
// original direction (the address before rdr) instead of the packet's.
func (b *builder) loadAddr(dst bool, fam byte, orig bool, reg uint32) string {
	name := "saddr"
	if dst {
		name = "daddr"
	}
	ip := "ip"
	if fam == famV6 {
		ip = "ip6"
	}
	if orig {
		key := expr.CtKeySRC
		if dst {
			key = expr.CtKeyDST
		}
		b.add("", &expr.Ct{Register: reg, Key: key, Direction: 0})
		return "ct original " + ip + " " + name
	}
	off, n := uint32(12), uint32(4)
	if fam == famV6 {
		off, n = 8, 16
	}
	if dst {
		off += n
	}
	b.add("", &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n})
	return ip + " " + name
}

// address adds the match of one rule side's address. It returns an error
// message for what it cannot compile.
func (c *compiler) address(b *builder, ra *pfconf.RuleAddr, dst bool, fam byte, orig, inChain, ovl bool) string {
	a := ra.Addr
	switch a.Type {
	case pfconf.AddrMask:
		if !a.Addr.IsValid() {
			if ra.Neg {
				return "\"! any\" never matches"
			}
			return ""
		}
		n := 4
		if a.Addr.Is6() {
			n = 16
		}
		name := b.loadAddr(dst, fam, orig, 1)
		p := netip.PrefixFrom(a.Addr, a.Bits).Masked()
		if a.Bits < a.Addr.BitLen() {
			mask := netmask(n, a.Bits)
			b.add("", &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: uint32(n), Mask: mask, Xor: make([]byte, n)})
			b.add(fmt.Sprintf("%s %s%s", name, negText(ra.Neg), p), &expr.Cmp{Op: cmpOp(ra.Neg), Register: 1, Data: p.Addr().AsSlice()})
		} else {
			b.add(fmt.Sprintf("%s %s%s", name, negText(ra.Neg), p.Addr()), &expr.Cmp{Op: cmpOp(ra.Neg), Register: 1, Data: p.Addr().AsSlice()})
		}
	case pfconf.AddrRange:
		name := b.loadAddr(dst, fam, orig, 1)
		op := expr.CmpOpEq
		if ra.Neg {
			op = expr.CmpOpNeq
		}
		b.add(fmt.Sprintf("%s %s%s-%s", name, negText(ra.Neg), a.Addr, a.To),
			&expr.Range{Op: op, Register: 1, FromData: a.Addr.AsSlice(), ToData: a.To.AsSlice()})
	case pfconf.AddrTable:
		ts := c.table(a.Name)
		set, oset := ts.v4, ts.ovl4
		if fam == famV6 {
			set, oset = ts.v6, ts.ovl6
		}
		if ovl && oset != nil && !ra.Neg {
			set = oset
		}
		name := b.loadAddr(dst, fam, orig, 1)
		b.add(fmt.Sprintf("%s %s@%s", name, negText(ra.Neg), set.Name),
			&expr.Lookup{SourceRegister: 1, SetName: set.Name, Invert: ra.Neg})
		if ra.Neg && oset != nil {
			// not in the table: in neither of its sets
			b.add(fmt.Sprintf("%s != @%s", name, oset.Name),
				&expr.Lookup{SourceRegister: 1, SetName: oset.Name, Invert: true})
		}
	case pfconf.AddrNoRoute:
		side, flag := "saddr", &expr.Fib{Register: 1, FlagSADDR: true, ResultOIF: true, FlagPRESENT: true}
		if dst {
			side, flag = "daddr", &expr.Fib{Register: 1, FlagDADDR: true, ResultOIF: true, FlagPRESENT: true}
		}
		// no-route: no route to the address; "! no-route": there is one.
		word := "missing"
		if ra.Neg {
			word = "exists"
		}
		b.add(fmt.Sprintf("fib %s oif %s", side, word), flag, &expr.Cmp{Op: cmpOp(ra.Neg), Register: 1, Data: []byte{0}})
	case pfconf.AddrURPF:
		if dst {
			return "urpf-failed is only valid as a source"
		}
		if !inChain {
			return "urpf-failed needs the inbound interface; use it on \"in\" rules"
		}
		word := "missing"
		if ra.Neg {
			word = "exists"
		}
		b.add("fib saddr . iif oif "+word,
			&expr.Fib{Register: 1, FlagSADDR: true, FlagIIF: true, ResultOIF: true, FlagPRESENT: true},
			&expr.Cmp{Op: cmpOp(ra.Neg), Register: 1, Data: []byte{0}})
	case pfconf.AddrDynIf:
		return c.dynIfAddress(b, ra, dst, fam, orig)
	default:
		return fmt.Sprintf("address kind %d is not supported", a.Type)
	}
	return ""
}

// netmask returns the n-byte netmask of bits leading ones.
func netmask(n, bits int) []byte {
	m := make([]byte, n)
	for i := 0; i < n; i++ {
		switch {
		case bits >= 8*(i+1):
			m[i] = 0xff
		case bits > 8*i:
			m[i] = 0xff << uint(8*(i+1)-bits)
		}
	}
	return m
}

// port adds a port comparison on the source (dst false) or destination
// port of the transport header (or of the original direction's conntrack
// tuple when orig).
func (b *builder) port(op pfconf.PortOp, p [2]uint16, dst, orig bool) string {
	if op == pfconf.OpNone {
		return ""
	}
	name := "th sport"
	if dst {
		name = "th dport"
	}
	if orig {
		key := expr.CtKeyPROTOSRC
		if dst {
			key = expr.CtKeyPROTODST
		}
		b.add("", &expr.Ct{Register: 1, Key: key, Direction: 0})
		if dst {
			name = "ct original proto-dst"
		} else {
			name = "ct original proto-src"
		}
	} else {
		off := uint32(0)
		if dst {
			off = 2
		}
		b.add("", &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2})
	}
	return cmpNumber(b, name, op, uint32(p[0]), uint32(p[1]), be16Any)
}

func be16Any(v uint32) []byte { return be16(uint16(v)) }
func be32Any(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// cmpNumber compares register 1 (big-endian, as enc encodes) with pf
// operator op.
func cmpNumber(b *builder, name string, op pfconf.PortOp, a, z uint32, enc func(uint32) []byte) string {
	cmp := func(o expr.CmpOp, sym string, v uint32) {
		b.add(fmt.Sprintf("%s %s%d", name, sym, v), &expr.Cmp{Op: o, Register: 1, Data: enc(v)})
	}
	switch op {
	case pfconf.OpEQ:
		cmp(expr.CmpOpEq, "", a)
	case pfconf.OpNE:
		cmp(expr.CmpOpNeq, "!= ", a)
	case pfconf.OpLT:
		cmp(expr.CmpOpLt, "< ", a)
	case pfconf.OpLE:
		cmp(expr.CmpOpLte, "<= ", a)
	case pfconf.OpGT:
		cmp(expr.CmpOpGt, "> ", a)
	case pfconf.OpGE:
		cmp(expr.CmpOpGte, ">= ", a)
	case pfconf.OpRRG:
		b.add(fmt.Sprintf("%s %d-%d", name, a, z), &expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: enc(a), ToData: enc(z)})
	case pfconf.OpXRG: // a <> b: outside [a, b]
		b.add(fmt.Sprintf("%s != %d-%d", name, a, z), &expr.Range{Op: expr.CmpOpNeq, Register: 1, FromData: enc(a), ToData: enc(z)})
	case pfconf.OpIRG: // a >< b: strictly between
		if z <= a+1 {
			return fmt.Sprintf("empty range %d >< %d never matches", a, z)
		}
		b.add(fmt.Sprintf("%s %d-%d", name, a+1, z-1), &expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: enc(a + 1), ToData: enc(z - 1)})
	default:
		return fmt.Sprintf("unknown comparison %d", op)
	}
	return ""
}

// ruleFamilies returns the address families r's kernel rules need: r's own
// family, the one its addresses or protocol imply, or both when a match is
// family-specific (tables, tos, ICMP return codes); famAny when one kernel
// rule can match both.
func ruleFamilies(r *pfconf.Rule) []byte {
	switch r.AF {
	case pfconf.AFInet:
		return []byte{famV4}
	case pfconf.AFInet6:
		return []byte{famV6}
	}
	for _, a := range []pfconf.Addr{r.Src.Addr, r.Dst.Addr} {
		if (a.Type == pfconf.AddrMask || a.Type == pfconf.AddrRange) && a.Addr.IsValid() {
			if a.Addr.Is4() {
				return []byte{famV4}
			}
			return []byte{famV6}
		}
	}
	switch r.Proto {
	case protoICMP:
		return []byte{famV4}
	case protoICMPv6:
		return []byte{famV6}
	}
	split := r.Src.Addr.Type == pfconf.AddrTable || r.Dst.Addr.Type == pfconf.AddrTable || r.TOS != 0 ||
		r.Src.Addr.Type == pfconf.AddrDynIf || r.Dst.Addr.Type == pfconf.AddrDynIf || hasSrcLimits(&r.StateOpts) ||
		(r.Action == pfconf.ActBlock && r.Return == pfconf.ReturnICMP)
	if split {
		return []byte{famV4, famV6}
	}
	return []byte{famAny}
}

// match adds r's criteria for one chain direction and family. It reports
// refusals through c and returns false when the rule cannot be compiled.
// matchOpts select how match compiles a rule's criteria.
type matchOpts struct {
	out bool // outbound chain: the rule's interface is oifname
	fam byte
	// orig matches the destination as the connection's original direction
	// has it: pass/match ... rdr-to rules are written on the destination
	// before translation, and filter_in runs after DNAT.
	orig bool
	// notTCP adds "meta l4proto != tcp" (the non-TCP half of a rule
	// without protocol whose flags only apply to TCP).
	notTCP bool
	// ovl selects, for a positive match of an overload table, the
	// table's overload set instead of its interval set: bit 0 for the
	// source, bit 1 for the destination (see overloadVariants).
	ovl uint8
}

func (c *compiler) match(b *builder, r *pfconf.Rule, o matchOpts) bool {
	out, fam, orig := o.out, o.fam, o.orig
	ok := true
	fail := func(msg string) {
		if msg != "" {
			c.refuse(r, "%s", msg)
			ok = false
		}
	}
	if r.Ifname != "" && r.Ifname != "any" {
		b.ifname(r.Ifname, r.IfNot, out)
	}
	if r.RcvIfname != "" {
		b.add(fmt.Sprintf("iifname %s%q", negText(r.RcvIfNot), r.RcvIfname),
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Cmp{Op: cmpOp(r.RcvIfNot), Register: 1, Data: ifname(r.RcvIfname)})
	}
	b.family(fam)
	if r.Proto != 0 {
		b.proto(r.Proto)
	}
	if o.notTCP {
		b.add("meta l4proto != 6", &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{protoTCP}})
	}
	if fam == famAny && (addrNeedsFamily(r.Src.Addr) || addrNeedsFamily(r.Dst.Addr)) {
		fail("address needs an address family")
		return false
	}
	fail(c.address(b, &r.Src, false, fam, false, !out, o.ovl&1 != 0))
	fail(c.address(b, &r.Dst, true, fam, orig, !out, o.ovl&2 != 0))
	if r.Src.PortOp != pfconf.OpNone || r.Dst.PortOp != pfconf.OpNone {
		if r.Proto != protoTCP && r.Proto != protoUDP && r.Proto != protoSCTP {
			fail("port matches need proto tcp, udp or sctp")
			return false
		}
		fail(b.port(r.Src.PortOp, r.Src.Port, false, false))
		fail(b.port(r.Dst.PortOp, r.Dst.Port, true, orig))
	}
	if r.UID.Set || r.GID.Set {
		for _, m := range []struct {
			id  pfconf.IDMatch
			key expr.MetaKey
			kw  string
		}{{r.UID, expr.MetaKeySKUID, "meta skuid"}, {r.GID, expr.MetaKeySKGID, "meta skgid"}} {
			if !m.id.Set {
				continue
			}
			b.add("", &expr.Meta{Key: m.key, Register: 1},
				&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 4, Size: 4})
			fail(cmpNumber(b, m.kw, m.id.Op, m.id.ID[0], m.id.ID[1], be32Any))
		}
	}
	if !c.matchTagged(b, r) {
		return false
	}
	// pf checks flags on TCP packets only; filterRule splits rules without
	// protocol.
	if r.FlagSet != 0 && r.Proto == protoTCP {
		b.add(fmt.Sprintf("tcp flags & 0x%02x == 0x%02x", r.FlagSet, r.Flags),
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{r.FlagSet}, Xor: []byte{0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{r.Flags}})
	}
	if r.ICMPType != 0 {
		if r.Proto != protoICMP && r.Proto != protoICMPv6 {
			fail("icmp-type needs proto icmp or icmp6")
			return false
		}
		b.add(fmt.Sprintf("icmp type %d", r.ICMPType-1),
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{r.ICMPType - 1}})
		if r.ICMPCode != 0 {
			b.add(fmt.Sprintf("icmp code %d", r.ICMPCode-1),
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 1, Len: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{r.ICMPCode - 1}})
		}
	}
	if r.TOS != 0 {
		if fam == famV4 {
			b.add(fmt.Sprintf("ip dscp/ecn (tos) 0x%02x", r.TOS),
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 1, Len: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{r.TOS}})
		} else {
			b.add(fmt.Sprintf("ip6 traffic class 0x%02x", r.TOS),
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 0, Len: 2},
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 2, Mask: []byte{0x0f, 0xf0}, Xor: []byte{0, 0}},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{r.TOS >> 4, r.TOS << 4}})
		}
	}
	return ok
}

func addrNeedsFamily(a pfconf.Addr) bool {
	switch a.Type {
	case pfconf.AddrMask:
		return a.Addr.IsValid()
	case pfconf.AddrRange, pfconf.AddrTable, pfconf.AddrDynIf:
		return true
	}
	return false
}
