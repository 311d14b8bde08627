package compile

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/pfconf"
)

// Scrub chain names.
const (
	ChainScrubIn     = "scrub_in"
	ChainScrubOut    = "scrub_out"
	ChainScrubPre    = "hook_scrub_pre"
	ChainScrubPost   = "hook_scrub_post"
	ChainScrubInput  = "hook_scrub_input"
	maxScrubProfiles = int(CtMarkScrubMask >> ctMarkScrubShift)
)

// scrubProfile is the options one profile applies.
type scrubProfile struct {
	maxMSS   uint16
	minTTL   uint8
	setTOS   uint8
	tosSet   bool
	noDF     bool
	randomID bool
}

func (p scrubProfile) empty() bool { return p == scrubProfile{} }

// ScrubProfileChain is the chain that applies profile n.
func ScrubProfileChain(n int) string { return fmt.Sprintf("scrub_p%d", n) }

// ruleProfile is the profile of r's scrub options (and set tos).
func ruleProfile(r *pfconf.Rule) scrubProfile {
	s := r.Scrub
	p := scrubProfile{maxMSS: s.MaxMSS, minTTL: s.MinTTL, setTOS: s.SetTOS, tosSet: s.SetTOSSet, noDF: s.NoDF, randomID: s.RandomID}
	if r.SetTOSSet {
		p.setTOS, p.tosSet = r.SetTOS, true
	}
	return p
}

// scrubWarnings warns about the options of r that load without pf's
// effect.
func (c *compiler) scrubWarnings(r *pfconf.Rule) {
	if r.Scrub.ReassembleTCP {
		c.warnf(r.Pos, "scrub reassemble tcp: loaded without pf's TCP normalisation (timestamp modulation, no TTL decrease within a connection): Linux has none; conntrack still drops segments outside the window")
	}
}

// profile returns the number (1..7) of r's scrub profile, 0 when r has
// none; ok is false when there are too many.
func (c *compiler) profile(r *pfconf.Rule) (int, bool) {
	p := ruleProfile(r)
	if p.empty() {
		return 0, true
	}
	for i, q := range c.profiles {
		if q == p {
			return i + 1, true
		}
	}
	if len(c.profiles) >= maxScrubProfiles {
		c.refuse(r, "scrub options: more than %d different sets of scrub options on match and pass rules are not supported", maxScrubProfiles)
		return 0, false
	}
	c.profiles = append(c.profiles, p)
	return len(c.profiles), true
}

// setProfile writes r's scrub profile into the connection mark.
func (c *compiler) setProfile(b *builder, r *pfconf.Rule) {
	n, ok := c.profile(r)
	if !ok || n == 0 {
		return
	}
	setMarkField(b, CtMarkScrubMask, uint32(n)<<ctMarkScrubShift, fmt.Sprintf("scrub profile %d", n))
}

// scrubOpts appends to chain the kernel rules that apply p to packets
// matching base(fam) (a builder holding the rule's match restricted to
// family fam unless famAny, or nil when the rule has no packets of that
// family), one rule per option and family, each completed by its
// condition.
func scrubOpts(p scrubProfile, base func(fam byte) *builder, ref nft.Ref, chain *[]*nft.Rule) int {
	n := 0
	emit := func(b *builder) {
		*chain = append(*chain, b.rule(ref))
		ref.Part++
		n++
	}
	if p.maxMSS != 0 {
		b := base(famAny)
		if b != nil {
			b.proto(protoTCP)
			b.add("tcp flags & syn == syn",
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x02}, Xor: []byte{0}},
				&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0}})
			b.add(fmt.Sprintf("tcp option maxseg size > %d", p.maxMSS),
				&expr.Exthdr{DestRegister: 1, Type: 2, Offset: 2, Len: 2, Op: expr.ExthdrOpTcpopt},
				&expr.Cmp{Op: expr.CmpOpGt, Register: 1, Data: be16(p.maxMSS)})
			b.add(fmt.Sprintf("tcp option maxseg size set %d", p.maxMSS),
				&expr.Immediate{Register: 1, Data: be16(p.maxMSS)},
				&expr.Exthdr{SourceRegister: 1, Type: 2, Offset: 2, Len: 2, Op: expr.ExthdrOpTcpopt})
			emit(b)
		}
	}
	if p.minTTL != 0 {
		if b := base(famV4); b != nil {
			b.add(fmt.Sprintf("ip ttl < %d", p.minTTL),
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 1},
				&expr.Cmp{Op: expr.CmpOpLt, Register: 1, Data: []byte{p.minTTL}})
			b.add(fmt.Sprintf("ip ttl set %d", p.minTTL),
				&expr.Immediate{Register: 1, Data: []byte{p.minTTL}},
				ipWrite(8, 1))
			emit(b)
		}
		if b := base(famV6); b != nil {
			b.add(fmt.Sprintf("ip6 hoplimit < %d", p.minTTL),
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 7, Len: 1},
				&expr.Cmp{Op: expr.CmpOpLt, Register: 1, Data: []byte{p.minTTL}})
			b.add(fmt.Sprintf("ip6 hoplimit set %d", p.minTTL),
				&expr.Immediate{Register: 1, Data: []byte{p.minTTL}},
				&expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 7, Len: 1})
			emit(b)
		}
	}
	if p.tosSet {
		if b := base(famV4); b != nil {
			b.add(fmt.Sprintf("ip dscp set 0x%02x", p.setTOS>>2),
				// two bytes from offset 0: the checksum update works on
				// 16-bit words (a one-byte write at an odd offset breaks it)
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 0, Len: 2},
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 2, Mask: []byte{0xff, 0x03}, Xor: []byte{0, p.setTOS &^ 0x03}},
				ipWrite(0, 2))
			emit(b)
		}
		if b := base(famV6); b != nil {
			b.add(fmt.Sprintf("ip6 dscp set 0x%02x", p.setTOS>>2),
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 0, Len: 2},
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 2, Mask: []byte{0xf0, 0x3f}, Xor: []byte{p.setTOS >> 4, (p.setTOS << 4) & 0xc0}},
				&expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 0, Len: 2})
			emit(b)
		}
	}
	if p.noDF {
		if b := base(famV4); b != nil {
			b.add("ip frag-off & 0x4000 != 0",
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 6, Len: 2},
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 2, Mask: be16(0x4000), Xor: be16(0)},
				&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: be16(0)})
			b.add("ip frag-off set ip frag-off & 0xbfff",
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 6, Len: 2},
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 2, Mask: be16(0xbfff), Xor: be16(0)},
				ipWrite(6, 2))
			emit(b)
		}
	}
	if p.randomID {
		if b := base(famV4); b != nil {
			b.add("ip frag-off & 0x3fff == 0",
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 6, Len: 2},
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 2, Mask: be16(0x3fff), Xor: be16(0)},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: be16(0)})
			b.add("ip id set numgen random mod 65536",
				&expr.Numgen{Register: 1, Modulus: 65536, Type: unix.NFT_NG_RANDOM},
				ipWrite(4, 2))
			emit(b)
		}
	}
	return n
}

// ipWrite writes n bytes of register 1 at offset off of the IPv4 header,
// updating the header checksum.
func ipWrite(off, n uint32) *expr.Payload {
	return &expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: 1, Base: expr.PayloadBaseNetworkHeader,
		Offset: off, Len: n, CsumType: expr.CsumTypeInet, CsumOffset: 10}
}

// scrub compiles a FreeBSD scrub or no scrub rule into scrub_in and/or
// scrub_out (see the package doc of scrub).
func (c *compiler) scrub(r *pfconf.Rule) {
	s := r.Scrub
	if s.NoReassemble {
		c.refuse(r, "fragment no reassemble is not possible: the kernel reassembles for connection tracking")
		return
	}
	for _, msg := range unsupported(r) {
		c.refuse(r, "%s", msg)
	}
	if len(unsupported(r)) > 0 {
		return
	}
	c.scrubWarnings(r)
	p := ruleProfile(r)
	if r.Action == pfconf.ActNoScrub {
		p = scrubProfile{}
	}
	in, out := r.Direction != pfconf.DirOut, r.Direction != pfconf.DirIn
	ok := true
	for _, dir := range []struct {
		on    bool
		out   bool
		chain *[]*nft.Rule
	}{{in, false, &c.scrubIn}, {out, true, &c.scrubOut}} {
		if !dir.on || !ok {
			continue
		}
		ref := nft.Ref{Kind: nft.KindScrub, Nr: c.nr(r)}
		for _, fam := range ruleFamilies(r) {
			base := func(f byte) *builder {
				if fam != famAny && f != famAny && f != fam {
					return nil
				}
				b := &builder{}
				b.counter()
				if !c.match(b, r, matchOpts{out: dir.out, fam: fam}) {
					ok = false
					return nil
				}
				if fam == famAny {
					b.family(f)
				}
				return b
			}
			ref.Part += scrubOpts(p, base, ref, dir.chain)
			// First match: the rule's packets meet no later scrub rule.
			if b := base(famAny); b != nil {
				b.counter()
				b.add("accept", &expr.Verdict{Kind: expr.VerdictAccept})
				*dir.chain = append(*dir.chain, b.rule(ref))
				ref.Part++
			}
			if !ok {
				return
			}
		}
	}
	if !p.empty() {
		c.scrubUsed = true
	}
}

// scrubChains returns the scrub chains, or none when nothing scrubs.
func (c *compiler) scrubChains() []*nft.Chain {
	if !c.scrubUsed && len(c.profiles) == 0 {
		return nil
	}
	var out []*nft.Chain
	dispatch := func() []*nft.Rule {
		var rs []*nft.Rule
		for i := range c.profiles {
			n := i + 1
			b := &builder{}
			v := uint32(n) << ctMarkScrubShift
			b.add(fmt.Sprintf("ct mark & 0x%08x == 0x%08x", CtMarkScrubMask, v),
				&expr.Ct{Register: 1, Key: expr.CtKeyMARK},
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: u32(CtMarkScrubMask), Xor: u32(0)},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: u32(v)})
			b.add("jump "+ScrubProfileChain(n), &expr.Verdict{Kind: expr.VerdictJump, Chain: ScrubProfileChain(n)})
			rs = append(rs, b.rule(nft.Ref{}))
		}
		return rs
	}
	for i, p := range c.profiles {
		ch := &nft.Chain{Name: ScrubProfileChain(i + 1)}
		scrubOpts(p, func(f byte) *builder {
			b := &builder{}
			b.family(f)
			return b
		}, nft.Ref{}, &ch.Rules)
		out = append(out, ch)
	}
	hook := func(num *nftables.ChainHook, prio int32) *nft.Hook {
		return &nft.Hook{Type: nftables.ChainTypeFilter, Num: *num, Priority: prio}
	}
	// set skip: pf does not scrub on skipped interfaces either.
	skip := func(out bool, rs ...*nft.Rule) []*nft.Rule {
		var all []*nft.Rule
		for _, ifn := range c.rs.Options.Skip {
			all = append(all, skipRule(ifn, out))
		}
		return append(all, rs...)
	}
	out = append(out, &nft.Chain{Name: ChainScrubIn, Rules: c.scrubIn}, &nft.Chain{Name: ChainScrubOut, Rules: c.scrubOut})
	out = append(out,
		&nft.Chain{Name: ChainScrubPre, Hook: hook(nftables.ChainHookPrerouting, -150), Rules: skip(false, jumpRule(ChainScrubIn))},
		&nft.Chain{Name: ChainScrubPost, Hook: hook(nftables.ChainHookPostrouting, 50), Rules: skip(true, append([]*nft.Rule{jumpRule(ChainScrubOut)}, dispatch()...)...)})
	if len(c.profiles) > 0 {
		out = append(out, &nft.Chain{Name: ChainScrubInput, Hook: hook(nftables.ChainHookInput, 300), Rules: skip(false, dispatch()...)})
	}
	return out
}
