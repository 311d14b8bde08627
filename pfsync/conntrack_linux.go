package pfsync

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// Conntrack is the kernel's connection tracking table of the network
// namespace it was opened in, over ctnetlink: dump, events, inject, delete.
// It is safe for concurrent use (queries are serialised).
type Conntrack struct {
	mu sync.Mutex // serialises queries on ct, nf and batch
	ct *conntrack.Conn
	nf *netfilter.Conn // raw ctnetlink, for creates with NAT bindings
	// batch is a plain NETLINK_NETFILTER socket for InjectBatch: several
	// requests in one sendmsg, their acks read together.
	batch *batchConn
}

// DialConntrack opens the table of the calling thread's network namespace.
func DialConntrack() (*Conntrack, error) {
	ct, err := conntrack.Dial(nil)
	if err != nil {
		return nil, fmt.Errorf("conntrack: netlink: %w", err)
	}
	nf, err := netfilter.Dial(nil)
	if err != nil {
		ct.Close()
		return nil, fmt.Errorf("conntrack: netlink: %w", err)
	}
	bc, err := dialBatch()
	if err != nil {
		ct.Close()
		nf.Close()
		return nil, fmt.Errorf("conntrack: netlink: %w", err)
	}
	return &Conntrack{ct: ct, nf: nf, batch: bc}, nil
}

// Close closes the netlink sockets.
func (c *Conntrack) Close() error {
	return errors.Join(c.ct.Close(), c.nf.Close(), c.batch.close())
}

// InjectBatch injects states as Inject does, with one netlink write for
// all of them: an update for those exists marks (the caller holds them
// already), a create for the others; a request that fails because the
// guess was wrong (an entry that exists, or one that has gone) is then
// redone alone through Inject. It returns one error per state.
func (c *Conntrack) InjectBatch(states []State, exists []bool) []error {
	errs := make([]error, len(states))
	msgs := make([]netlink.Message, len(states))
	for i := range states {
		s := &states[i]
		if !s.Orig.Src.IsValid() || !s.Orig.Dst.IsValid() || s.Orig.Src.Is4() != s.Orig.Dst.Is4() {
			errs[i] = errors.New("conntrack: inject: invalid original tuple")
			continue
		}
		m, err := injectMessage(s, !exists[i])
		if err != nil {
			errs[i] = err
			continue
		}
		msgs[i] = m
	}
	c.mu.Lock()
	codes, err := c.batch.execute(msgs)
	c.mu.Unlock()
	for i := range states {
		if errs[i] != nil {
			continue
		}
		if err != nil { // the batch as a whole failed: one by one
			errs[i] = c.Inject(&states[i])
			continue
		}
		switch codes[i] {
		case 0:
		case unix.EEXIST, unix.ENOENT, unix.EBUSY:
			errs[i] = c.Inject(&states[i])
		default:
			errs[i] = fmt.Errorf("conntrack: inject %s %v: %w", protoName(states[i].Proto), states[i].Orig, codes[i])
		}
	}
	return errs
}

// DumpFilter selects entries in Dump.
type DumpFilter struct {
	// MarkMask, when non-zero, keeps entries whose mark&MarkMask equals Mark.
	Mark, MarkMask uint32
}

// Dump returns the table's entries (IPv4 and IPv6), filtered by f in the
// kernel when f is non-nil.
func (c *Conntrack) Dump(f *DumpFilter) ([]State, error) {
	c.mu.Lock()
	var flows []conntrack.Flow
	var err error
	if f != nil && f.MarkMask != 0 {
		flows, err = c.ct.DumpFilter(conntrack.NewFilter().Mark(f.Mark).MarkMask(f.MarkMask), nil)
	} else {
		flows, err = c.ct.Dump(nil)
	}
	c.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("conntrack: dump: %w", err)
	}
	out := make([]State, 0, len(flows))
	for i := range flows {
		if s, ok := fromFlow(&flows[i]); ok {
			out = append(out, s)
		}
	}
	return out, nil
}

// Delete removes the entry with s's original tuple and zone; a missing
// entry is reported as an error satisfying errors.Is(err, ErrNotFound).
func (c *Conntrack) Delete(s *State) error {
	f := conntrack.Flow{Zone: s.Zone, TupleOrig: toTuple(s.Proto, s.Orig)}
	c.mu.Lock()
	err := c.ct.Delete(f)
	c.mu.Unlock()
	if err != nil {
		if isErrno(err, unix.ENOENT) {
			return fmt.Errorf("conntrack: delete %v: %w", s.Orig, ErrNotFound)
		}
		return fmt.Errorf("conntrack: delete: %w", err)
	}
	return nil
}

// ErrNotFound reports a missing conntrack entry.
var ErrNotFound = errors.New("no such conntrack entry")

// Inject creates s in the kernel's table, or updates the entry that
// already has its original tuple. A created entry gets the NAT bindings
// s's status and reply tuple describe, set up through the kernel's NAT
// core (CTA_NAT_DST / CTA_NAT_SRC) so that the kernel translates the
// flow's packets exactly as on the node it came from; a TCP entry is
// marked liberal in both directions (see the package documentation).
// Updates change status bits that can only be set (SEEN_REPLY, ASSURED),
// the timeout, mark and TCP state; tuples and NAT are fixed at creation.
func (c *Conntrack) Inject(s *State) error {
	if !s.Orig.Src.IsValid() || !s.Orig.Dst.IsValid() || s.Orig.Src.Is4() != s.Orig.Dst.Is4() {
		return errors.New("conntrack: inject: invalid original tuple")
	}
	msg, err := injectMessage(s, true)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err = c.nf.Query(msg)
	if err == nil {
		return nil
	}
	if !isErrno(err, unix.EEXIST) {
		return fmt.Errorf("conntrack: create %s %v: %w", protoName(s.Proto), s.Orig, err)
	}
	msg, err = injectMessage(s, false)
	if err != nil {
		return err
	}
	if _, err = c.nf.Query(msg); err != nil && isErrno(err, unix.EBUSY) {
		// The entry has a status bit we would clear (only the kernel
		// may): keep its status, update the rest.
		s2 := *s
		s2.Status = 0
		msg, _ = injectMessage(&s2, false)
		_, err = c.nf.Query(msg)
	}
	if err != nil {
		return fmt.Errorf("conntrack: update %s %v: %w", protoName(s.Proto), s.Orig, err)
	}
	return nil
}

func isErrno(err error, e unix.Errno) bool {
	var oe *netlink.OpError
	if errors.As(err, &oe) {
		return errors.Is(oe.Err, e)
	}
	return errors.Is(err, e)
}

// ctnetlink attribute numbers (enum ctattr_type and friends).
const (
	ctaTupleOrig  = 1
	ctaTupleReply = 2
	ctaStatus     = 3
	ctaProtoinfo  = 4
	ctaNATSrc     = 6
	ctaTimeout    = 7
	ctaMark       = 8
	ctaNATDst     = 13
	ctaZone       = 18
	ctaLabels     = 22
	ctaLabelsMask = 23

	ctaTupleIP    = 1
	ctaTupleProto = 2
	ctaIPv4Src    = 1
	ctaIPv4Dst    = 2
	ctaIPv6Src    = 3
	ctaIPv6Dst    = 4
	ctaProtoNum   = 1
	ctaProtoSrc   = 2
	ctaProtoDst   = 3
	ctaICMPID     = 4
	ctaICMPType   = 5
	ctaICMPCode   = 6
	ctaICMPv6ID   = 7
	ctaICMPv6Type = 8
	ctaICMPv6Code = 9

	ctaProtoinfoTCP  = 1
	ctaTCPState      = 1
	ctaTCPWScaleOrig = 2
	ctaTCPWScaleRepl = 3
	ctaTCPFlagsOrig  = 4
	ctaTCPFlagsRepl  = 5

	ctaNATV4Min  = 1
	ctaNATV4Max  = 2
	ctaNATProto  = 3
	ctaNATV6Min  = 4
	ctaNATV6Max  = 5
	ctaNATPMin   = 1
	ctaNATPMax   = 2
	ipctnlMsgNew = 0
)

// hasPorts reports whether the protocol's tuples carry ports.
func hasPorts(proto uint8) bool {
	switch proto {
	case unix.IPPROTO_TCP, unix.IPPROTO_UDP, unix.IPPROTO_UDPLITE, unix.IPPROTO_SCTP, unix.IPPROTO_DCCP:
		return true
	}
	return false
}

func tupleAttr(typ uint16, proto uint8, t Tuple) netfilter.Attribute {
	ip := netfilter.Attribute{Type: ctaTupleIP, Nested: true}
	if t.Src.Is4() {
		ip.Children = []netfilter.Attribute{{Type: ctaIPv4Src, Data: t.Src.AsSlice()}, {Type: ctaIPv4Dst, Data: t.Dst.AsSlice()}}
	} else {
		ip.Children = []netfilter.Attribute{{Type: ctaIPv6Src, Data: t.Src.AsSlice()}, {Type: ctaIPv6Dst, Data: t.Dst.AsSlice()}}
	}
	pr := netfilter.Attribute{Type: ctaTupleProto, Nested: true, Children: []netfilter.Attribute{{Type: ctaProtoNum, Data: []byte{proto}}}}
	switch {
	case proto == unix.IPPROTO_ICMP:
		pr.Children = append(pr.Children,
			netfilter.Attribute{Type: ctaICMPID, Data: be16(t.SrcPort)},
			netfilter.Attribute{Type: ctaICMPType, Data: []byte{byte(t.DstPort >> 8)}},
			netfilter.Attribute{Type: ctaICMPCode, Data: []byte{byte(t.DstPort)}})
	case proto == unix.IPPROTO_ICMPV6:
		pr.Children = append(pr.Children,
			netfilter.Attribute{Type: ctaICMPv6ID, Data: be16(t.SrcPort)},
			netfilter.Attribute{Type: ctaICMPv6Type, Data: []byte{byte(t.DstPort >> 8)}},
			netfilter.Attribute{Type: ctaICMPv6Code, Data: []byte{byte(t.DstPort)}})
	case hasPorts(proto):
		pr.Children = append(pr.Children,
			netfilter.Attribute{Type: ctaProtoSrc, Data: be16(t.SrcPort)},
			netfilter.Attribute{Type: ctaProtoDst, Data: be16(t.DstPort)})
	}
	return netfilter.Attribute{Type: typ, Nested: true, Children: []netfilter.Attribute{ip, pr}}
}

func natAttr(typ uint16, proto uint8, ap netip.AddrPort) netfilter.Attribute {
	a := netfilter.Attribute{Type: typ, Nested: true}
	if ap.Addr().Is4() {
		a.Children = []netfilter.Attribute{{Type: ctaNATV4Min, Data: ap.Addr().AsSlice()}, {Type: ctaNATV4Max, Data: ap.Addr().AsSlice()}}
	} else {
		a.Children = []netfilter.Attribute{{Type: ctaNATV6Min, Data: ap.Addr().AsSlice()}, {Type: ctaNATV6Max, Data: ap.Addr().AsSlice()}}
	}
	if hasPorts(proto) {
		a.Children = append(a.Children, netfilter.Attribute{Type: ctaNATProto, Nested: true, Children: []netfilter.Attribute{
			{Type: ctaNATPMin, Data: be16(ap.Port())}, {Type: ctaNATPMax, Data: be16(ap.Port())},
		}})
	}
	return a
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// injectMessage builds the IPCTNL_MSG_CT_NEW request for s: a create
// (NLM_F_CREATE|NLM_F_EXCL, with NAT setup) or an update of an existing
// entry.
func injectMessage(s *State, create bool) (netlink.Message, error) {
	attrs := []netfilter.Attribute{tupleAttr(ctaTupleOrig, s.Proto, s.Orig)}
	fam := netfilter.ProtoIPv4
	if s.Orig.Src.Is6() {
		fam = netfilter.ProtoIPv6
	}
	flags := netlink.Request | netlink.Acknowledge
	dnat, snat := s.NAT()
	if create {
		flags |= netlink.Create | netlink.Excl
		// The reply tuple is sent untranslated; the NAT core derives the
		// translated one from the bindings, as for a packet.
		reply := s.Reply
		if dnat.IsValid() || snat.IsValid() {
			reply = s.Orig.Invert()
		}
		if !reply.Src.IsValid() {
			reply = s.Orig.Invert()
		}
		if s.Proto == unix.IPPROTO_ICMP || s.Proto == unix.IPPROTO_ICMPV6 {
			reply = s.Reply // the kernel inverts ICMP types itself; keep the dumped one
			if dnat.IsValid() || snat.IsValid() {
				reply.Src, reply.Dst = s.Orig.Dst, s.Orig.Src
			}
		}
		attrs = append(attrs, tupleAttr(ctaTupleReply, s.Proto, reply))
		if dnat.IsValid() {
			attrs = append(attrs, natAttr(ctaNATDst, s.Proto, dnat))
		}
		if snat.IsValid() {
			attrs = append(attrs, natAttr(ctaNATSrc, s.Proto, snat))
		}
	}
	// Only SEEN_REPLY and ASSURED may be set from user space; CONFIRMED
	// must be present on create (the kernel confirms the entry itself).
	if st := s.Status & (StatusSeenReply | StatusAssured); st != 0 || create {
		attrs = append(attrs, netfilter.Attribute{Type: ctaStatus, Data: be32(st | StatusConfirmed)})
	}
	to := s.Timeout
	if to == 0 {
		to = 1
	}
	attrs = append(attrs, netfilter.Attribute{Type: ctaTimeout, Data: be32(to)})
	if s.Mark != 0 || !create {
		attrs = append(attrs, netfilter.Attribute{Type: ctaMark, Data: be32(s.Mark)})
	}
	if s.Zone != 0 && create {
		attrs = append(attrs, netfilter.Attribute{Type: ctaZone, Data: be16(s.Zone)})
	}
	if s.Labels != ([16]byte{}) {
		// All 128 bits are the peer's (a mask of ones replaces them). The
		// kernel attaches labels only in a namespace whose rules use them
		// (ctnetlink_attach_labels), as the peer's same ruleset does.
		mask := bytes.Repeat([]byte{0xff}, len(s.Labels))
		attrs = append(attrs, netfilter.Attribute{Type: ctaLabels, Data: bytes.Clone(s.Labels[:])},
			netfilter.Attribute{Type: ctaLabelsMask, Data: mask})
	}
	if s.Proto == unix.IPPROTO_TCP && s.TCP.State != TCPNone {
		// nf_ct_tcp_flags is {flags, mask}: set the sender's flags plus
		// BE_LIBERAL, clear nothing else.
		fl := func(f uint8) []byte { return []byte{f | TCPFlagBeLiberal, f | TCPFlagBeLiberal} }
		attrs = append(attrs, netfilter.Attribute{Type: ctaProtoinfo, Nested: true, Children: []netfilter.Attribute{{
			Type: ctaProtoinfoTCP, Nested: true, Children: []netfilter.Attribute{
				{Type: ctaTCPState, Data: []byte{s.TCP.State}},
				{Type: ctaTCPWScaleOrig, Data: []byte{s.TCP.WScale[0]}},
				{Type: ctaTCPWScaleRepl, Data: []byte{s.TCP.WScale[1]}},
				{Type: ctaTCPFlagsOrig, Data: fl(s.TCP.Flags[0])},
				{Type: ctaTCPFlagsRepl, Data: fl(s.TCP.Flags[1])},
			},
		}}})
	}
	return netfilter.MarshalNetlink(netfilter.Header{
		SubsystemID: netfilter.NFSubsysCTNetlink,
		MessageType: netfilter.MessageType(ipctnlMsgNew),
		Family:      fam,
		Flags:       flags,
	}, attrs)
}

func toTuple(proto uint8, t Tuple) conntrack.Tuple {
	var ct conntrack.Tuple
	ct.IP.SourceAddress, ct.IP.DestinationAddress = t.Src, t.Dst
	ct.Proto.Protocol = proto
	switch proto {
	case unix.IPPROTO_ICMP, unix.IPPROTO_ICMPV6:
		ct.Proto.ICMPv4 = proto == unix.IPPROTO_ICMP
		ct.Proto.ICMPv6 = proto == unix.IPPROTO_ICMPV6
		ct.Proto.ICMPID = t.SrcPort
		ct.Proto.ICMPType, ct.Proto.ICMPCode = uint8(t.DstPort>>8), uint8(t.DstPort)
	default:
		ct.Proto.SourcePort, ct.Proto.DestinationPort = t.SrcPort, t.DstPort
	}
	return ct
}

func fromTuple(t conntrack.Tuple) Tuple {
	out := Tuple{Src: t.IP.SourceAddress, Dst: t.IP.DestinationAddress,
		SrcPort: t.Proto.SourcePort, DstPort: t.Proto.DestinationPort}
	if t.Proto.ICMPv4 || t.Proto.ICMPv6 {
		out.SrcPort = t.Proto.ICMPID
		out.DstPort = uint16(t.Proto.ICMPType)<<8 | uint16(t.Proto.ICMPCode)
	}
	return out
}

// fromFlow converts a dumped or event flow; ok is false for entries
// without a usable original tuple.
func fromFlow(f *conntrack.Flow) (State, bool) {
	s := State{
		Proto: f.TupleOrig.Proto.Protocol, Zone: f.Zone,
		Orig: fromTuple(f.TupleOrig), Reply: fromTuple(f.TupleReply),
		Status: uint32(f.Status), Mark: f.Mark, Timeout: f.Timeout, ID: f.ID,
		Packets: [2]uint64{f.CountersOrig.Packets, f.CountersReply.Packets},
		Bytes:   [2]uint64{f.CountersOrig.Bytes, f.CountersReply.Bytes},
		Start:   f.Timestamp.Start,
	}
	copy(s.Labels[:], f.Labels) // the kernel's 128 bits (NF_CT_LABELS_MAX_SIZE)
	if t := f.ProtoInfo.TCP; t != nil {
		s.TCP = TCPInfo{State: t.State, WScale: [2]uint8{t.OriginalWindowScale, t.ReplyWindowScale},
			Flags: [2]uint8{uint8(t.OriginalFlags >> 8), uint8(t.ReplyFlags >> 8)}}
	}
	if !s.Orig.Src.IsValid() || !s.Orig.Dst.IsValid() {
		return s, false
	}
	return s, true
}

func protoName(p uint8) string {
	switch p {
	case unix.IPPROTO_TCP:
		return "tcp"
	case unix.IPPROTO_UDP:
		return "udp"
	case unix.IPPROTO_ICMP:
		return "icmp"
	case unix.IPPROTO_ICMPV6:
		return "ipv6-icmp"
	}
	return fmt.Sprintf("proto %d", p)
}

// Liberalize marks every TCP entry of the table that is not liberal yet as
// liberal in both directions (IP_CT_TCP_FLAG_BE_LIBERAL: the kernel stops
// checking its packets against the tracked windows), and returns how many
// it changed. A node calls it when it takes over: its own entries carry
// the windows it saw last, and the peer may have carried those connections
// on meanwhile (a split brain, a failback after the peer served them).
// pfsync cannot send windows (ctnetlink cannot set them), and an entry
// whose windows lag takes every later packet for out of window and
// invalid, which pf's rules drop: the connection hangs. Entries the peer
// wrote are liberal already (Inject).
func (c *Conntrack) Liberalize() (int, error) {
	states, err := c.Dump(nil)
	if err != nil {
		return 0, err
	}
	var msgs []netlink.Message
	for i := range states {
		s := &states[i]
		if s.Proto != unix.IPPROTO_TCP || s.TCP.State == TCPNone ||
			s.TCP.Flags[0]&s.TCP.Flags[1]&TCPFlagBeLiberal != 0 {
			continue
		}
		m, err := liberalMessage(s)
		if err != nil {
			return 0, err
		}
		msgs = append(msgs, m)
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	c.mu.Lock()
	codes, err := c.batch.execute(msgs)
	c.mu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("conntrack: liberalize: %w", err)
	}
	n := 0
	for _, code := range codes {
		switch code {
		case 0:
			n++
		case unix.ENOENT: // gone meanwhile
		default:
			return n, fmt.Errorf("conntrack: liberalize: %w", code)
		}
	}
	return n, nil
}

// liberalMessage is an update of s's entry that sets BE_LIBERAL in both
// directions and changes nothing else.
func liberalMessage(s *State) (netlink.Message, error) {
	fam := netfilter.ProtoIPv4
	if s.Orig.Src.Is6() {
		fam = netfilter.ProtoIPv6
	}
	lib := []byte{TCPFlagBeLiberal, TCPFlagBeLiberal} // {flags, mask}
	attrs := []netfilter.Attribute{
		tupleAttr(ctaTupleOrig, s.Proto, s.Orig),
		{Type: ctaProtoinfo, Nested: true, Children: []netfilter.Attribute{{
			Type: ctaProtoinfoTCP, Nested: true, Children: []netfilter.Attribute{
				{Type: ctaTCPFlagsOrig, Data: lib},
				{Type: ctaTCPFlagsRepl, Data: lib},
			},
		}}},
	}
	if s.Zone != 0 {
		attrs = append(attrs, netfilter.Attribute{Type: ctaZone, Data: be16(s.Zone)})
	}
	return netfilter.MarshalNetlink(netfilter.Header{
		SubsystemID: netfilter.NFSubsysCTNetlink,
		MessageType: netfilter.MessageType(ipctnlMsgNew),
		Family:      fam,
		Flags:       netlink.Request | netlink.Acknowledge,
	}, attrs)
}
