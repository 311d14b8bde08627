package pflog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/mdlayher/netlink"

	"github.com/pfcarp/pfcarp/internal/clock"
)

// nfnetlink_log facts (linux/netfilter/nfnetlink_log.h, nfnetlink.h).
const (
	nfnlSubsysULOG  = 4
	nfulnlMsgPacket = 0
	nfulnlMsgConfig = 1
	// nfulnlPacketType is the netlink message type of a logged packet.
	nfulnlPacketType = nfnlSubsysULOG<<8 | nfulnlMsgPacket
	nfulnlConfigType = nfnlSubsysULOG<<8 | nfulnlMsgConfig

	nfgenmsgLen = 4 // family u8, version u8, res_id be16 (the group)

	nfulaPacketHdr     = 1
	nfulaMark          = 2
	nfulaTimestamp     = 3
	nfulaIfindexIndev  = 4
	nfulaIfindexOutdev = 5
	nfulaPayload       = 9
	nfulaPrefix        = 10

	nfulaCfgCmd     = 1
	nfulaCfgMode    = 2
	nfulaCfgTimeout = 4 // be32, hundredths of a second
	nfulaCfgQThresh = 5 // be32, packets

	nfulnlCfgCmdBind = 1
	nfulnlCopyPacket = 2
)

// Packet is one packet an NFLOG group delivered, with the attributes pflog
// uses. Payload aliases the netlink message it was parsed from.
type Packet struct {
	// Group is the NFLOG group (nfgenmsg res_id).
	Group uint16
	// Family is the nfgenmsg family: NFPROTO_IPV4 (2), NFPROTO_IPV6 (10),
	// ... of the hook that logged.
	Family uint8
	// HWProtocol is the packet's ethertype from NFULA_PACKET_HDR (0 if
	// absent); Hook is the netfilter hook number.
	HWProtocol uint16
	Hook       uint8
	Mark       uint32
	// InIfindex and OutIfindex are the input and output interfaces; 0 when
	// the hook has none (no input device on output, for example).
	InIfindex, OutIfindex uint32
	// Time is the kernel's timestamp of the packet; zero when the kernel
	// sent none (it often does not).
	Time time.Time
	// Prefix is the log prefix without its NUL.
	Prefix string
	// Payload is the packet from its network header on.
	Payload []byte
}

// ParsePacketMessage decodes the data of an NFULNL_MSG_PACKET netlink message
// (nfgenmsg followed by NFULA_* attributes). Unknown attributes are skipped.
// It never panics on malformed input.
func ParsePacketMessage(data []byte) (Packet, error) {
	var p Packet
	if len(data) < nfgenmsgLen {
		return p, fmt.Errorf("nflog: message of %d bytes is shorter than its nfgenmsg header", len(data))
	}
	p.Family = data[0]
	p.Group = binary.BigEndian.Uint16(data[2:4])
	ad, err := netlink.NewAttributeDecoder(data[nfgenmsgLen:])
	if err != nil {
		return p, fmt.Errorf("nflog: %w", err)
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		b := ad.Bytes()
		switch ad.Type() {
		case nfulaPacketHdr:
			if len(b) < 3 {
				return p, fmt.Errorf("nflog: packet header attribute of %d bytes", len(b))
			}
			p.HWProtocol = binary.BigEndian.Uint16(b)
			p.Hook = b[2]
		case nfulaMark:
			p.Mark, err = be32(b, "mark")
		case nfulaTimestamp:
			if len(b) != 16 {
				return p, fmt.Errorf("nflog: timestamp attribute of %d bytes, want 16", len(b))
			}
			sec, usec := binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])
			if sec > 1<<40 || usec >= 1e6 {
				return p, fmt.Errorf("nflog: timestamp %d.%06d out of range", sec, usec)
			}
			p.Time = time.Unix(int64(sec), int64(usec)*1000)
		case nfulaIfindexIndev:
			p.InIfindex, err = be32(b, "input ifindex")
		case nfulaIfindexOutdev:
			p.OutIfindex, err = be32(b, "output ifindex")
		case nfulaPayload:
			p.Payload = b
		case nfulaPrefix:
			p.Prefix = cString(b)
		}
		if err != nil {
			return p, err
		}
	}
	if err := ad.Err(); err != nil {
		return p, fmt.Errorf("nflog: %w", err)
	}
	return p, nil
}

func be32(b []byte, what string) (uint32, error) {
	if len(b) != 4 {
		return 0, fmt.Errorf("nflog: %s attribute of %d bytes, want 4", what, len(b))
	}
	return binary.BigEndian.Uint32(b), nil
}

// ErrForeignPrefix is returned by Packet.Record for a packet whose prefix is
// not one FormatPrefix writes: it was logged by a rule pfcarp did not
// compile.
var ErrForeignPrefix = errors.New("nflog: prefix is not a pfcarp pflog prefix")

// Record turns p into a pflog Record: the prefix gives the rule metadata,
// the interface is p's input interface for rules matching "in" and "in/out"
// and its output interface for "out" (either one when the other is missing),
// named by names; now is the time used when the kernel sent no timestamp.
func (p Packet) Record(names func(ifindex uint32) string, now time.Time) (Record, error) {
	m, ok := ParsePrefix(p.Prefix)
	if !ok {
		return Record{}, fmt.Errorf("%w: %q", ErrForeignPrefix, p.Prefix)
	}
	af, orig, err := ipInfo(p.Payload)
	if err != nil {
		return Record{}, err
	}
	idx := p.InIfindex
	if m.Dir == DirOut && p.OutIfindex != 0 || idx == 0 {
		idx = p.OutIfindex
	}
	ifname := ""
	if idx != 0 {
		ifname = names(idx)
	}
	ts := p.Time
	if ts.IsZero() {
		ts = now
	}
	return Record{Time: ts, Header: NewHeader(m, af, ifname), Packet: p.Payload, OrigLen: orig}, nil
}

// ipInfo returns the BSD address family of an IP packet and its length
// before any NFLOG truncation.
func ipInfo(b []byte) (af uint8, orig int, err error) {
	if len(b) == 0 {
		return 0, 0, errors.New("nflog: packet without payload (is the copy mode \"packet\"?)")
	}
	switch b[0] >> 4 {
	case 4:
		orig = len(b)
		if len(b) >= 4 {
			// A total length of 0 (TSO) or below the copy keeps len(b).
			orig = max(orig, int(binary.BigEndian.Uint16(b[2:4])))
		}
		return AFInet, orig, nil
	case 6:
		orig = len(b)
		if len(b) >= 6 {
			orig = max(orig, 40+int(binary.BigEndian.Uint16(b[4:6])))
		}
		return AFInet6, orig, nil
	}
	return 0, 0, fmt.Errorf("nflog: payload is not IPv4 or IPv6 (version %d)", b[0]>>4)
}

// ifNames names interfaces by index through a lookup function and caches
// the answers for ttl, so renamed or replaced interfaces are picked up. It
// is safe for concurrent use.
type ifNames struct {
	lookup func(ifindex uint32) (string, error)
	clk    clock.Clock
	ttl    time.Duration

	mu    sync.Mutex
	cache map[uint32]nameEntry // bounded by maxNames
}

type nameEntry struct {
	name string
	at   time.Time
}

const (
	nameTTL  = 30 * time.Second
	maxNames = 4096
)

func newIfNames(lookup func(uint32) (string, error), clk clock.Clock) *ifNames {
	return &ifNames{lookup: lookup, clk: clk, ttl: nameTTL, cache: make(map[uint32]nameEntry)}
}

// name returns the interface's name, or "if<index>" when it cannot be
// looked up (it was deleted before the packet was read, say).
func (n *ifNames) name(ifindex uint32) string {
	now := n.clk.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if e, ok := n.cache[ifindex]; ok && now.Sub(e.at) < n.ttl {
		return e.name
	}
	name, err := n.lookup(ifindex)
	if err != nil || name == "" {
		// Not cached: the interface may appear in a moment.
		return "if" + strconv.FormatUint(uint64(ifindex), 10)
	}
	if len(n.cache) >= maxNames {
		clear(n.cache)
	}
	n.cache[ifindex] = nameEntry{name: name, at: now}
	return name
}
