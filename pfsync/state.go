package pfsync

import (
	"net/netip"
	"time"
)

// Tuple is one direction of a tracked connection, as conntrack keeps it.
// For ICMP and ICMPv6, SrcPort carries the echo identifier and DstPort
// type<<8 | code. The zero value is invalid (no addresses).
type Tuple struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
}

// Invert returns the tuple seen from the other direction.
func (t Tuple) Invert() Tuple {
	return Tuple{Src: t.Dst, Dst: t.Src, SrcPort: t.DstPort, DstPort: t.SrcPort}
}

// Conntrack status bits (enum ip_conntrack_status in the kernel's uapi).
const (
	StatusExpected   = 1 << 0
	StatusSeenReply  = 1 << 1
	StatusAssured    = 1 << 2
	StatusConfirmed  = 1 << 3
	StatusSrcNAT     = 1 << 4
	StatusDstNAT     = 1 << 5
	StatusSeqAdjust  = 1 << 6
	StatusSrcNATDone = 1 << 7
	StatusDstNATDone = 1 << 8
	StatusDying      = 1 << 9
	StatusTemplate   = 1 << 11
	StatusUntracked  = 1 << 12
	StatusOffload    = 1 << 14
	StatusHWOffload  = 1 << 15
)

// Conntrack TCP states (enum tcp_conntrack).
const (
	TCPNone        = 0
	TCPSynSent     = 1
	TCPSynRecv     = 2
	TCPEstablished = 3
	TCPFinWait     = 4
	TCPCloseWait   = 5
	TCPLastAck     = 6
	TCPTimeWait    = 7
	TCPClose       = 8
	TCPSynSent2    = 9
)

// Per-direction TCP tracking flags (IP_CT_TCP_FLAG_*).
const (
	TCPFlagWindowScale = 0x01
	TCPFlagSackPerm    = 0x02
	TCPFlagCloseInit   = 0x04
	TCPFlagBeLiberal   = 0x08
)

// TCPInfo is the TCP tracking data the conntrack netlink interface exposes:
// the state, and per direction (0 original, 1 reply) the window scale and
// the tracking flags. The sequence window itself (td_end, td_maxwin) is not
// exposed by the kernel; see the package documentation for how pfsync copes.
type TCPInfo struct {
	State  uint8
	WScale [2]uint8
	Flags  [2]uint8
}

// State is one replicated conntrack entry: everything the peer's kernel
// needs to carry the flow on (tuples and so the NAT mapping, status bits,
// TCP tracking data, mark, zone, timeout), plus counters for display.
//
// Orig is the tuple of the first packet; Reply is the tuple replies arrive
// with, after translation: for a redirected flow Reply.Src is the backend,
// for a source-NATed one Reply.Dst is the translated source.
type State struct {
	Proto   uint8
	Zone    uint16
	Orig    Tuple
	Reply   Tuple
	Status  uint32
	Mark    uint32
	Timeout uint32 // seconds until the entry expires
	TCP     TCPInfo
	// Labels are the entry's connection labels (ct label: 128 bits), in
	// which the compiled rules keep a connection's queue classes,
	// route-to/reply-to targets and if-bound interface (DESIGN.md section
	// 9); replicated (RecLabels) so that they survive a takeover.
	Labels [16]byte

	// Packets and Bytes per direction (0 original, 1 reply) are read from
	// the kernel for display; they are neither replicated nor injected.
	Packets, Bytes [2]uint64
	// ID is the kernel's id of the entry on this node (not replicated).
	ID uint32
	// Start is when the kernel created the entry, if it timestamps
	// entries (net.netfilter.nf_conntrack_timestamp=1); display only.
	Start time.Time
}

// Family reports 4 or 6 (0 if the tuple is invalid).
func (s *State) Family() int {
	switch {
	case s.Orig.Src.Is4():
		return 4
	case s.Orig.Src.Is6():
		return 6
	}
	return 0
}

// Key identifies a state across nodes: protocol, zone and original tuple.
// It is a fixed array so it can key maps without allocating.
type Key [40]byte

// Key returns s's key.
func (s *State) Key() Key {
	var k Key
	k[0] = s.Proto
	k[1] = byte(s.Zone >> 8)
	k[2] = byte(s.Zone)
	a := s.Orig.Src.As16()
	copy(k[3:19], a[:])
	a = s.Orig.Dst.As16()
	copy(k[19:35], a[:])
	k[35] = byte(s.Orig.SrcPort >> 8)
	k[36] = byte(s.Orig.SrcPort)
	k[37] = byte(s.Orig.DstPort >> 8)
	k[38] = byte(s.Orig.DstPort)
	k[39] = byte(s.Family())
	return k
}

// replicated reports whether two versions of a state differ in anything
// that is replicated (timeouts and counters aside): when a kernel event
// carries nothing new, it is not sent.
func sameReplicated(a, b *State) bool {
	return a.Proto == b.Proto && a.Zone == b.Zone && a.Orig == b.Orig && a.Reply == b.Reply &&
		a.Status&syncedStatus == b.Status&syncedStatus && a.Mark == b.Mark && a.Labels == b.Labels &&
		a.TCP.State == b.TCP.State && (a.TCP.WScale == b.TCP.WScale || !wscaleSet(a) || !wscaleSet(b)) &&
		a.TCP.Flags[0]&syncedTCPFlags == b.TCP.Flags[0]&syncedTCPFlags &&
		a.TCP.Flags[1]&syncedTCPFlags == b.TCP.Flags[1]&syncedTCPFlags
}

// syncedTCPFlags are the TCP tracking flags that matter to the peer. The
// others change with no event and cannot be copied: BE_LIBERAL is set on
// every injected entry, and the window-tracking ones (0x10 data
// unacknowledged, 0x20 max ack set) follow each segment, are only ever set
// by a ctnetlink write, and mean nothing to a liberal entry; compared,
// a periodic resync would take them for lost changes on both nodes.
const syncedTCPFlags = TCPFlagWindowScale | TCPFlagSackPerm | TCPFlagCloseInit

// wscaleSet reports whether s's window scales are in force: the kernel
// uses (and a ctnetlink write sets) them only once both directions carry
// the window-scale flag; before that they are not replicated state.
func wscaleSet(s *State) bool {
	return s.TCP.Flags[0]&TCPFlagWindowScale != 0 && s.TCP.Flags[1]&TCPFlagWindowScale != 0
}

// syncedStatus are the status bits that matter to the peer.
const syncedStatus = StatusSeenReply | StatusAssured | StatusSrcNAT | StatusDstNAT

// NAT reports the translations of s: dnat is the address and port the
// original destination was rewritten to (valid iff StatusDstNAT), snat
// the source's (valid iff StatusSrcNAT).
func (s *State) NAT() (dnat, snat netip.AddrPort) {
	if s.Status&StatusDstNAT != 0 {
		dnat = netip.AddrPortFrom(s.Reply.Src, s.Reply.SrcPort)
	}
	if s.Status&StatusSrcNAT != 0 {
		snat = netip.AddrPortFrom(s.Reply.Dst, s.Reply.DstPort)
	}
	return dnat, snat
}

// NoSyncMark is the conntrack mark bit that keeps an entry out of pfsync:
// the pf compiler sets it on connections created by rules with `no-sync`
// (compile.CtMarkNoSync, the contract between the two packages, pinned by
// a test), and the daemon replicates only entries with the bit clear.
const NoSyncMark uint32 = 1 << 31
