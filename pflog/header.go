package pflog

import (
	"encoding/binary"
	"fmt"
)

// Link-layer and header constants (facts from FreeBSD sys/net/if_pflog.h,
// libpcap's LINKTYPE_PFLOG and tcpdump's print-pflog.c).
const (
	// LinkType is DLT_PFLOG / LINKTYPE_PFLOG, the pcap link type of pflog
	// files.
	LinkType = 117

	// HeaderLen is PFLOG_HDRLEN in FreeBSD's layout: the header padded to a
	// multiple of 4 bytes. Every record's packet starts this far in.
	HeaderLen = 72

	// realHeaderLen is PFLOG_REAL_HDRLEN (offsetof(struct pfloghdr, pad2)),
	// the value of the header's length byte. Readers round it up to 4.
	realHeaderLen = 69

	// minHeaderLen is tcpdump's MIN_PFLOG_HDRLEN: the fields up to and
	// including dir.
	minHeaderLen = 61

	// openBSDHeaderLen is OpenBSD's length byte (sizeof(struct pfloghdr),
	// with the rewritten/naf/pad bytes and saddr/daddr/sport/dport after
	// dir); ParseHeader recognises it so it does not read saddr as a
	// ridentifier.
	openBSDHeaderLen = 100

	ifNameSize      = 16 // IFNAMSIZ
	rulesetNameSize = 16 // PFLOG_RULESET_NAME_SIZE
)

// BSD address family numbers written in the header's af byte. tcpdump
// accepts IPv6 as any of 24 (OpenBSD, NetBSD), 28 (FreeBSD) or 30 (Darwin);
// pfcarp writes FreeBSD's, like the reference deployment.
const (
	AFInet  = 2
	AFInet6 = 28
)

// Values the BSD kernels write when pf did no socket lookup for the packet
// (the normal case; pfcarp never does one).
const (
	// UIDNone is UID_MAX: tcpdump prints "[uid N]" unless uid is this.
	UIDNone = 0xffffffff
	// PIDNone is NO_PID (PID_MAX+1 on FreeBSD and OpenBSD).
	PIDNone = 100000
)

// Header is one pflog header. Encode it with AppendTo; the zero value
// encodes as a header of rule 0 with uid 0 (prefer NewHeader).
//
// Byte order, as the kernels write it and tcpdump reads it: rulenr,
// subrulenr and ridentifier are big-endian (htonl); uid, pid, rule_uid and
// rule_pid are host order in the kernel, which pfcarp fixes as
// little-endian (tcpdump compares uid against UID_MAX, all ones either way).
type Header struct {
	AF      uint8 // AFInet or AFInet6
	Action  Action
	Reason  Reason
	IfName  string // truncated to 15 bytes
	Ruleset string // anchor name, "" for the main ruleset; truncated to 15 bytes
	RuleNr  uint32
	// SubRuleNr is the rule number inside Ruleset, or 0xffffffff (what
	// tcpdump tests for) for a rule of the main ruleset.
	SubRuleNr   uint32
	UID         uint32
	PID         int32
	RuleUID     uint32
	RulePID     int32
	Dir         Direction
	RIdentifier uint32
}

// NewHeader returns the header the BSD kernels would write for a packet of
// address family af seen on ifname and logged by the rule m describes.
func NewHeader(m Meta, af uint8, ifname string) Header {
	h := Header{
		AF:          af,
		Action:      m.Action,
		Reason:      m.Reason,
		IfName:      ifname,
		RuleNr:      m.Rule,
		SubRuleNr:   0xffffffff,
		UID:         UIDNone,
		PID:         PIDNone,
		Dir:         m.Dir,
		RIdentifier: m.RIdentifier,
	}
	if m.Anchor != "" {
		h.Ruleset = m.Anchor
		h.SubRuleNr = m.SubRule
	}
	return h
}

// AppendTo appends the HeaderLen-byte encoding of h to b.
func (h Header) AppendTo(b []byte) []byte {
	var w [HeaderLen]byte
	w[0] = realHeaderLen
	w[1] = h.AF
	w[2] = byte(h.Action)
	w[3] = byte(h.Reason)
	putCString(w[4:4+ifNameSize], h.IfName)
	putCString(w[20:20+rulesetNameSize], h.Ruleset)
	binary.BigEndian.PutUint32(w[36:], h.RuleNr)
	binary.BigEndian.PutUint32(w[40:], h.SubRuleNr)
	binary.LittleEndian.PutUint32(w[44:], h.UID)
	binary.LittleEndian.PutUint32(w[48:], uint32(h.PID))
	binary.LittleEndian.PutUint32(w[52:], h.RuleUID)
	binary.LittleEndian.PutUint32(w[56:], uint32(h.RulePID))
	w[60] = byte(h.Dir)
	// 61..63: pad
	binary.BigEndian.PutUint32(w[64:], h.RIdentifier)
	// 68: reserve, 69..71: pad2
	return append(b, w[:]...)
}

// putCString copies s into dst, cut so a NUL always follows.
func putCString(dst []byte, s string) {
	copy(dst[:len(dst)-1], s)
}

// ParseHeader decodes the pflog header at the start of b and returns it with
// the offset of the packet behind it (the length byte rounded up to 4, as
// tcpdump does). It accepts FreeBSD headers (length 69), older ones without
// ridentifier (61..68) and OpenBSD's (100, whose address fields it skips).
func ParseHeader(b []byte) (Header, int, error) {
	if len(b) < 1 {
		return Header{}, 0, fmt.Errorf("pflog header: empty")
	}
	n := int(b[0])
	if n < minHeaderLen {
		return Header{}, 0, fmt.Errorf("pflog header: length byte %d is below the minimum %d", n, minHeaderLen)
	}
	padded := (n + 3) &^ 3
	if len(b) < padded {
		return Header{}, 0, fmt.Errorf("pflog header: %d bytes, length byte says %d", len(b), padded)
	}
	h := Header{
		AF:        b[1],
		Action:    Action(b[2]),
		Reason:    Reason(b[3]),
		IfName:    cString(b[4 : 4+ifNameSize]),
		Ruleset:   cString(b[20 : 20+rulesetNameSize]),
		RuleNr:    binary.BigEndian.Uint32(b[36:]),
		SubRuleNr: binary.BigEndian.Uint32(b[40:]),
		UID:       binary.LittleEndian.Uint32(b[44:]),
		PID:       int32(binary.LittleEndian.Uint32(b[48:])),
		RuleUID:   binary.LittleEndian.Uint32(b[52:]),
		RulePID:   int32(binary.LittleEndian.Uint32(b[56:])),
		Dir:       Direction(b[60]),
	}
	if n >= realHeaderLen && n != openBSDHeaderLen {
		h.RIdentifier = binary.BigEndian.Uint32(b[64:])
	}
	return h, padded, nil
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
