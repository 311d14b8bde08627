package carp

import (
	"encoding/binary"
	"net/netip"
)

// Wire constants of CARPv2 (netinet/ip_carp.h in both BSDs).
const (
	Proto      = 112 // IPPROTO_CARP, shared with VRRP
	Version    = 2   // CARP_VERSION
	TypeAdvert = 1   // CARP_ADVERTISEMENT, the only message type
	HeaderLen  = 36  // sizeof(struct carp_header)
	AuthLen    = 7   // carp_authlen as both kernels send it ("XXX DEFINE")
	TTL        = 255 // CARP_DFLTTL: sent, and required on receipt
	MaxSkew    = 240 // CARP_MAXSKEW: FreeBSD's cap for a demoted advskew
	KeyLen     = 20  // CARP_KEY_LEN: passphrase buffer, NUL-padded
)

// Multicast groups advertisements are sent to unless a unicast peer is set.
var (
	Group4 = netip.AddrFrom4([4]byte{224, 0, 0, 18})          // INADDR_CARP_GROUP
	Group6 = netip.AddrFrom16([16]byte{0xff, 0x02, 15: 0x12}) // ff02::12
)

// Header is one CARPv2 advertisement as it is on the wire:
//
//	byte 0      version<<4 | type          (0x21)
//	byte 1      vhid
//	byte 2      advskew
//	byte 3      authlen                    (7)
//	byte 4      demote  (OpenBSD; FreeBSD calls it pad1 and sends 0)
//	byte 5      advbase
//	bytes 6-7   checksum (Internet checksum of these 36 bytes)
//	bytes 8-15  counter  (two 32-bit words in network order)
//	bytes 16-35 HMAC-SHA1 digest
//
// The zero value is not a valid advertisement; set Version and Type.
type Header struct {
	Version  uint8
	Type     uint8
	VHID     uint8
	AdvSkew  uint8
	AuthLen  uint8
	Demote   uint8
	AdvBase  uint8
	Checksum uint16 // as received; AppendTo computes its own
	Counter  uint64
	HMAC     [20]byte
}

// AppendTo appends the 36-byte encoding of h to b with a freshly computed
// checksum (h.Checksum is ignored) and returns the extended slice.
func (h *Header) AppendTo(b []byte) []byte {
	off := len(b)
	b = append(b,
		h.Version<<4|h.Type&0x0f, h.VHID, h.AdvSkew, h.AuthLen,
		h.Demote, h.AdvBase, 0, 0)
	b = binary.BigEndian.AppendUint64(b, h.Counter)
	b = append(b, h.HMAC[:]...)
	binary.BigEndian.PutUint16(b[off+6:], Checksum(b[off:off+HeaderLen]))
	return b
}

// Decode fills h from the first HeaderLen bytes of b. Bytes after the header
// are ignored, as the BSD kernels do (they checksum only the header). It
// returns nil or a Reject: RejectShort, RejectChecksum, RejectVersion or
// RejectType, in the order the kernels check (length, checksum, version; the
// kernels do not check the type, we do since 1 is the only one). Decode does
// not allocate and leaves h unchanged on error.
func (h *Header) Decode(b []byte) error {
	if len(b) < HeaderLen {
		return RejectShort
	}
	b = b[:HeaderLen]
	if Checksum(b) != 0 {
		return RejectChecksum
	}
	if b[0]>>4 != Version {
		return RejectVersion
	}
	if b[0]&0x0f != TypeAdvert {
		return RejectType
	}
	h.Version = b[0] >> 4
	h.Type = b[0] & 0x0f
	h.VHID = b[1]
	h.AdvSkew = b[2]
	h.AuthLen = b[3]
	h.Demote = b[4]
	h.AdvBase = b[5]
	h.Checksum = binary.BigEndian.Uint16(b[6:])
	h.Counter = binary.BigEndian.Uint64(b[8:])
	copy(h.HMAC[:], b[16:HeaderLen])
	return nil
}

// Checksum returns the Internet checksum (RFC 1071) of b: the value to store
// in a zeroed checksum field, or 0 when b already carries a correct one.
func Checksum(b []byte) uint16 {
	var sum uint32
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
