package compile

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/nft/nfttest"
)

// probe is a table of counting rules a test loads next to the ruleset
// under test (in any namespace of the bed), to see what packets look
// like: each rule is a match whose packets it counts.
type probe struct {
	conn  *nft.Conn
	names []string
}

type probeRule struct {
	name  string
	exprs []expr.Any
}

// newProbe loads rules into table "hkprobe" of ns, at hook num with
// priority prio.
func newProbe(t *testing.T, ns *nfttest.NS, num *nftables.ChainHook, prio int32, rules ...probeRule) *probe {
	t.Helper()
	p := &probe{conn: nft.Open(nft.WithNetNS(ns.FD()), nft.WithTable("hkprobe"))}
	ch := &nft.Chain{Name: "probe", Hook: &nft.Hook{Type: nftables.ChainTypeFilter, Num: *num, Priority: prio}}
	prog := &nft.Program{Chains: []*nft.Chain{ch}}
	for i, r := range rules {
		es := append([]expr.Any{&expr.Counter{}}, r.exprs...)
		es = append(es, &expr.Counter{})
		ref := nft.Ref{Kind: nft.KindFilter, Nr: i}
		ch.Rules = append(ch.Rules, &nft.Rule{Exprs: es, Text: r.name, Ref: ref})
		prog.Records = append(prog.Records, nft.Record{Kind: nft.KindFilter, Nr: i, Text: r.name})
		p.names = append(p.names, r.name)
	}
	if err := p.conn.Load(prog); err != nil {
		t.Fatalf("probe: %v", err)
	}
	t.Cleanup(func() { p.conn.Delete() })
	return p
}

// counts returns the packets each rule matched.
func (p *probe) counts(t *testing.T) []uint64 {
	t.Helper()
	rs, err := p.conn.Read()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]uint64, len(p.names))
	for i := range out {
		if st := rs.Stats[nft.Ref{Kind: nft.KindFilter, Nr: i}]; st != nil {
			out[i] = st.Matched.Packets
		}
	}
	return out
}

func (p *probe) String() string { return fmt.Sprint(p.names) }

// Probe matches.

func pByte(base expr.PayloadBase, off uint32, mask, val byte) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: base, Offset: off, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{mask}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{val}},
	}
}

func pPort(dst bool, port uint16) []expr.Any {
	off := uint32(0)
	if dst {
		off = 2
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{protoTCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, port)},
	}
}

func pCtDir(reply bool) []expr.Any {
	d := byte(0)
	if reply {
		d = 1
	}
	return []expr.Any{&expr.Ct{Register: 1, Key: expr.CtKeyDIRECTION}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{d}}}
}

func pPrio(p uint32) []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyPRIORITY, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: u32(p)}}
}

func pMark(mask, val uint32) []expr.Any {
	return []expr.Any{&expr.Ct{Register: 1, Key: expr.CtKeyMARK},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: u32(mask), Xor: u32(0)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: u32(val)}}
}

func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// set prio and a tag stay with the connection: the replies leave with
// the priority and the connection mark holds the tag.
func TestKernelPrioAndTagReplies(t *testing.T) {
	b := newBed(t)
	b.load(t, `
set skip on lo
pass in on eth0 proto tcp to 198.51.100.20 port 80 tag WEB
pass out on eth1 proto tcp tagged WEB set prio 6
`)
	p := newProbe(t, b.router, nftables.ChainHookPostrouting, 200,
		probeRule{"original, to port 80, priority 6", cat(pCtDir(false), pPort(true, 80), pPrio(6))},
		probeRule{"reply, from port 80", cat(pCtDir(true), pPort(false, 80))},
		probeRule{"reply, from port 80, priority 6", cat(pCtDir(true), pPort(false, 80), pPrio(6))},
		probeRule{"reply, from port 80, tag WEB", cat(pCtDir(true), pPort(false, 80), pMark(CtMarkTagMask, 1<<ctMarkTagShift))},
		probeRule{"reply, from port 80, priority 0", cat(pCtDir(true), pPort(false, 80), pPrio(0))},
	)
	if got, err := b.get(clientA, "198.51.100.20:80"); err != nil || got != "s1" {
		t.Fatalf("%q, %v", got, err)
	}
	n := p.counts(t)
	if n[0] < 2 || n[1] < 2 || n[2] != n[1] || n[3] != n[1] || n[4] != 0 {
		t.Fatalf("packets leaving the router: %v for %v; want the SYN and later packets with priority 6, every reply with priority 6 and the tag", n, p)
	}
}

// FreeBSD scrub out: the server sees TTL raised, DSCP set, DF cleared; an
// OpenBSD match rule's scrub options reach the replies too.
func TestKernelScrubPacketFields(t *testing.T) {
	b := newBed(t)
	atServer := newProbe(t, b.s1, nftables.ChainHookPrerouting, -300,
		probeRule{"to port 80", pPort(true, 80)},
		probeRule{"to port 80, ttl 100", cat(pPort(true, 80), pByte(expr.PayloadBaseNetworkHeader, 8, 0xff, 100))},
		probeRule{"to port 80, tos 0x10 (ECN kept)", cat(pPort(true, 80), pByte(expr.PayloadBaseNetworkHeader, 1, 0xfc, 0x10))},
		probeRule{"to port 80, no DF", cat(pPort(true, 80), pByte(expr.PayloadBaseNetworkHeader, 6, 0x40, 0))},
	)
	b.load(t, "set skip on lo\nscrub out on eth1 all min-ttl 100 no-df random-id set-tos 0x10\n")
	if got, err := b.get(clientA, "198.51.100.20:80"); err != nil || got != "s1" {
		t.Fatalf("%q, %v", got, err)
	}
	n := atServer.counts(t)
	if n[0] == 0 || n[1] != n[0] || n[2] != n[0] || n[3] != n[0] {
		t.Fatalf("packets at the server: %v for %v; want all of them scrubbed", n, atServer)
	}

	atClient := newProbe(t, b.client, nftables.ChainHookPrerouting, -300,
		probeRule{"from port 80", pPort(false, 80)},
		probeRule{"from port 80, ttl 90", cat(pPort(false, 80), pByte(expr.PayloadBaseNetworkHeader, 8, 0xff, 90))},
	)
	b.load(t, "set skip on lo\nmatch in on eth0 proto tcp to port 80 scrub (min-ttl 90)\n")
	if got, err := b.get(clientA, "198.51.100.20:80"); err != nil || got != "s1" {
		t.Fatalf("%q, %v", got, err)
	}
	n = atClient.counts(t)
	if n[0] == 0 || n[1] != n[0] {
		t.Fatalf("replies at the client: %v for %v; want every reply with ttl 90 (the connection's scrub profile)", n, atClient)
	}
}
