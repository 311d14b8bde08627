package daemon

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/pfcarp/pfcarp/nft"
)

// The liveness guard: the kernel's half of "a dead daemon never leaves a
// live master".
//
// A MASTER's virtual addresses are ordinary kernel addresses: when the
// daemon dies (SIGKILL, a panic, the OOM killer) the kernel goes on
// answering ARP and neighbour solicitations for them and forwarding new
// connections that nothing syncs, until the peer takes over and those
// connections arrive at a node with no state for them. So two tables work
// together:
//
//   - the guard, in the daemon's persistent table pfcarp_ha (and arp
//     pfcarp_ha), drops every packet addressed to a configured VIP, and every
//     ARP request for one and ARP packet sent from one, unless the packet
//     carries LiveMark; it then clears the mark, which nothing else sees;
//   - the live table pfcarp_live (inet and arp), created through an owning
//     netlink socket (nft.Owner), sets LiveMark on packets for the VIPs this
//     daemon holds as MASTER, listed in sets whose elements time out after
//     the lease (one advertisement interval) unless the daemon renews them.
//
// When the process dies, however it dies, the kernel closes its sockets and
// deletes the tables the owning socket created: from that moment the VIPs
// stop answering, with no timer involved. A daemon that hangs without dying
// stops renewing its lease, and the VIPs stop answering within one
// advertisement interval. A graceful stop releases the VIPs and removes
// both tables. After a crash the guard and the stale addresses stay until
// the next start, which removes the addresses before CARP runs.
const (
	liveTable = "pfcarp_live"
	// LiveMark is the packet mark bit the live table sets and the guard
	// clears. Policy routing rules should not use it.
	LiveMark uint32 = 0x10000000
	// Hook priorities: the live table marks before the guard checks, and
	// both run before conntrack (-200) and rdr's DNAT (-100).
	livePriority  = -400
	guardPriority = -350
)

// Offsets used by the guard's matches.
const (
	arpOpOffset  = 6  // ARP header: operation
	arpSPAOffset = 14 // sender protocol address (Ethernet, IPv4)
	arpTPAOffset = 24 // target protocol address
	ndTypeNS     = 135
	// the arp family's hooks (linux/netfilter_arp.h)
	nfARPIn  = 0
	nfARPOut = 1
	ndTarget = 8 // ICMPv6 neighbour solicitation: target address
)

// addGuard adds the guard's sets and chains for vips to inet (an inet
// table) and arp (an arp table), both in c's batch.
func addGuard(c *nftables.Conn, inet, arp *nftables.Table, vips []netip.Addr) error {
	v4, v6 := splitFamilies(vips)
	s4 := &nftables.Set{Table: inet, Name: "vip4", KeyType: nftables.TypeIPAddr}
	s6 := &nftables.Set{Table: inet, Name: "vip6", KeyType: nftables.TypeIP6Addr}
	a4 := &nftables.Set{Table: arp, Name: "vip4", KeyType: nftables.TypeIPAddr}
	for _, s := range []struct {
		set   *nftables.Set
		addrs []netip.Addr
	}{{s4, v4}, {s6, v6}, {a4, v4}} {
		if err := c.AddSet(s.set, elements(s.addrs, 0)); err != nil {
			return err
		}
	}
	pri := nftables.ChainPriorityRef(guardPriority)
	in := c.AddChain(&nftables.Chain{Name: "guard", Table: inet, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: pri})
	for _, m := range ipMatches(s4, s6) {
		c.AddRule(&nftables.Rule{Table: inet, Chain: in, Exprs: slices.Concat(unmarked(), m, counterDrop())})
	}
	c.AddRule(&nftables.Rule{Table: inet, Chain: in, Exprs: clearMark()})
	arpIn := c.AddChain(&nftables.Chain{Name: "guard_in", Table: arp, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookRef(nfARPIn), Priority: pri})
	c.AddRule(&nftables.Rule{Table: arp, Chain: arpIn, Exprs: slices.Concat(unmarked(), arpRequest(), arpAddr(arpTPAOffset, a4), counterDrop())})
	c.AddRule(&nftables.Rule{Table: arp, Chain: arpIn, Exprs: clearMark()})
	arpOut := c.AddChain(&nftables.Chain{Name: "guard_out", Table: arp, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookRef(nfARPOut), Priority: pri})
	c.AddRule(&nftables.Rule{Table: arp, Chain: arpOut, Exprs: slices.Concat(unmarked(), arpAddr(arpSPAOffset, a4), counterDrop())})
	c.AddRule(&nftables.Rule{Table: arp, Chain: arpOut, Exprs: clearMark()})
	return nil
}

// ipMatches returns the matches of packets for the VIPs in s4 and s6:
// IPv4 and IPv6 destinations, and neighbour solicitations for an IPv6 VIP.
func ipMatches(s4, s6 *nftables.Set) [][]expr.Any {
	return [][]expr.Any{
		slices.Concat(nfproto(unix.NFPROTO_IPV4),
			[]expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4}}, lookup(s4)),
		slices.Concat(nfproto(unix.NFPROTO_IPV6),
			[]expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 24, Len: 16}}, lookup(s6)),
		slices.Concat(nfproto(unix.NFPROTO_IPV6), []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMPV6}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{ndTypeNS}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: ndTarget, Len: 16},
		}, lookup(s6)),
	}
}

func nfproto(p byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
	}
}

func lookup(s *nftables.Set) []expr.Any {
	return []expr.Any{&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID}}
}

func arpRequest() []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: arpOpOffset, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(1)},
	}
}

func arpAddr(offset uint32, s *nftables.Set) []expr.Any {
	return append([]expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4}}, lookup(s)...)
}

// markBytes is LiveMark as the kernel holds a mark in a register.
func markBytes(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

func unmarked() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: markBytes(LiveMark), Xor: markBytes(0)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: markBytes(0)},
	}
}

// setMark returns "meta mark set meta mark & mask ^ xor".
func setMark(mask, xor uint32) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: markBytes(mask), Xor: markBytes(xor)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
	}
}

func clearMark() []expr.Any { return setMark(^LiveMark, 0) }

func counterDrop() []expr.Any {
	return []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}}
}

func splitFamilies(addrs []netip.Addr) (v4, v6 []netip.Addr) {
	for _, a := range addrs {
		if a.Is4() {
			v4 = append(v4, a)
		} else {
			v6 = append(v6, a)
		}
	}
	return v4, v6
}

func elements(addrs []netip.Addr, timeout time.Duration) []nftables.SetElement {
	es := make([]nftables.SetElement, 0, len(addrs))
	for _, a := range addrs {
		es = append(es, nftables.SetElement{Key: a.AsSlice(), Timeout: timeout})
	}
	return es
}

// lease is the live table: the VIPs this daemon holds as MASTER, each
// answering only while its element lasts. Safe for concurrent use.
type lease struct {
	owner *nft.Owner
	ttl   time.Duration

	mu   sync.Mutex
	held map[netip.Addr]bool
	// the owned tables' sets
	in4, in6, arp4 *nftables.Set
}

// openLease creates the live tables through a new owning socket (opts
// choose the namespace, for tests). ttl is how long a held VIP answers
// without a renewal.
func openLease(ttl time.Duration, opts ...nft.Option) (*lease, error) {
	o, err := nft.DialOwner(opts...)
	if err != nil {
		return nil, err
	}
	l := &lease{owner: o, ttl: ttl, held: map[netip.Addr]bool{}}
	inet := &nftables.Table{Name: liveTable, Family: nftables.TableFamilyINet}
	arp := &nftables.Table{Name: liveTable, Family: nftables.TableFamilyARP}
	l.in4 = &nftables.Set{Table: inet, Name: "lease4", KeyType: nftables.TypeIPAddr, HasTimeout: true}
	l.in6 = &nftables.Set{Table: inet, Name: "lease6", KeyType: nftables.TypeIP6Addr, HasTimeout: true}
	l.arp4 = &nftables.Set{Table: arp, Name: "lease4", KeyType: nftables.TypeIPAddr, HasTimeout: true}
	err = o.Apply(func(c *nftables.Conn) error {
		// A table of this name left by an earlier owner was deleted with
		// its socket; one that is still there belongs to a live daemon,
		// and creating ours fails (EEXIST or EPERM): the error says so.
		c.CreateTable(inet)
		c.CreateTable(arp)
		for _, s := range []*nftables.Set{l.in4, l.in6, l.arp4} {
			if err := c.AddSet(s, nil); err != nil {
				return err
			}
		}
		pri := nftables.ChainPriorityRef(livePriority)
		ch := c.AddChain(&nftables.Chain{Name: "mark", Table: inet, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookPrerouting, Priority: pri})
		for _, m := range ipMatches(l.in4, l.in6) {
			c.AddRule(&nftables.Rule{Table: inet, Chain: ch, Exprs: append(m, setMark(^LiveMark, LiveMark)...)})
		}
		for _, h := range []struct {
			name   string
			hook   *nftables.ChainHook
			offset uint32
		}{{"mark_in", nftables.ChainHookRef(nfARPIn), arpTPAOffset}, {"mark_out", nftables.ChainHookRef(nfARPOut), arpSPAOffset}} {
			ch := c.AddChain(&nftables.Chain{Name: h.name, Table: arp, Type: nftables.ChainTypeFilter, Hooknum: h.hook, Priority: pri})
			c.AddRule(&nftables.Rule{Table: arp, Chain: ch, Exprs: append(arpAddr(h.offset, l.arp4), setMark(^LiveMark, LiveMark)...)})
		}
		return nil
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("nftables: creating the liveness table %s (needs owned tables, Linux 5.12): %w", liveTable, err), o.Close())
	}
	return l, nil
}

// Hold makes addrs answer for one lease, renewing those already held.
func (l *lease) Hold(addrs []netip.Addr) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, a := range addrs {
		l.held[a] = true
	}
	return l.renew(addrs)
}

// Release stops addrs answering at once.
func (l *lease) Release(addrs []netip.Addr) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var gone []netip.Addr
	for _, a := range addrs {
		if l.held[a] {
			gone = append(gone, a)
			delete(l.held, a)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	// Deleting an element that has lapsed fails the whole batch: renew
	// first, in the same transaction, so every element exists.
	return l.owner.Apply(func(c *nftables.Conn) error {
		if err := l.add(c, gone); err != nil {
			return err
		}
		return l.del(c, gone)
	})
}

// Renew extends every held VIP's lease.
func (l *lease) Renew() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	addrs := make([]netip.Addr, 0, len(l.held))
	for a := range l.held {
		addrs = append(addrs, a)
	}
	return l.renew(addrs)
}

// SetTTL changes the lease's length from the next Hold or Renew on.
func (l *lease) SetTTL(ttl time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ttl = ttl
}

// Held returns the held VIPs.
func (l *lease) Held() []netip.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	var addrs []netip.Addr
	for a := range l.held {
		addrs = append(addrs, a)
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	return addrs
}

// renew re-arms addrs' elements for a whole lease, in one transaction:
// add (a no-op for an element that exists, a new one for one that has
// lapsed), delete, add again. Re-adding an element that exists does not
// re-arm its timeout (not even on 6.18: the kernel updates an element's
// expiry only when the add carries NFTA_SET_ELEM_EXPIRATION or another
// timeout, 6.10 on, and the library sends neither), so a plain re-add left
// the element to expire one lease after it was first added, and the VIP
// dropped every packet until the next renewal: a few milliseconds every
// advertisement interval, seen as lost SYNs in the fault matrix. The
// delete and the second add take effect together when the transaction
// commits, so the packet path never sees the element missing.
func (l *lease) renew(addrs []netip.Addr) error {
	if len(addrs) == 0 {
		return nil
	}
	return l.owner.Apply(func(c *nftables.Conn) error {
		if err := l.add(c, addrs); err != nil {
			return err
		}
		if err := l.del(c, addrs); err != nil {
			return err
		}
		return l.add(c, addrs)
	})
}

// del deletes addrs' elements (each must exist in the batch: see renew).
func (l *lease) del(c *nftables.Conn, addrs []netip.Addr) error {
	return l.eachSet(addrs, func(s *nftables.Set, addrs []netip.Addr) error {
		return c.SetDeleteElements(s, elements(addrs, 0))
	})
}

// add adds addrs with the lease's timeout (an element that exists keeps
// its expiry: see renew).
func (l *lease) add(c *nftables.Conn, addrs []netip.Addr) error {
	return l.eachSet(addrs, func(s *nftables.Set, addrs []netip.Addr) error {
		return c.SetAddElements(s, elements(addrs, l.ttl))
	})
}

// eachSet calls fn for each live set with the addresses of addrs it holds
// (IPv4 in the inet and arp sets, IPv6 in the inet one).
func (l *lease) eachSet(addrs []netip.Addr, fn func(*nftables.Set, []netip.Addr) error) error {
	v4, v6 := splitFamilies(addrs)
	for _, s := range []struct {
		set   *nftables.Set
		addrs []netip.Addr
	}{{l.in4, v4}, {l.in6, v6}, {l.arp4, v4}} {
		if len(s.addrs) > 0 {
			if err := fn(s.set, s.addrs); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close deletes the live tables (the kernel does when the socket closes):
// every VIP stops answering.
func (l *lease) Close() error { return l.owner.Close() }
