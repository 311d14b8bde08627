package carp

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/binary"
	"hash"
	"net/netip"
	"slices"
)

// Key is a CARP passphrase as the kernels hold it: at most KeyLen-1 bytes,
// NUL-padded to KeyLen. The HMAC key is all KeyLen bytes, padding included.
type Key [KeyLen]byte

// NewKey makes the key ifconfig(8) of both BSDs makes from pass: it copies
// with strlcpy into a KeyLen buffer, so the key is the bytes before the first
// NUL, cut to KeyLen-1 bytes, NUL-padded. truncated reports whether bytes of
// pass were dropped (worth a warning: BSD peers silently drop them too).
func NewKey(pass string) (k Key, truncated bool) {
	if i := bytesIndexNUL(pass); i >= 0 {
		pass, truncated = pass[:i], true
	}
	if len(pass) > KeyLen-1 {
		pass, truncated = pass[:KeyLen-1], true
	}
	copy(k[:], pass)
	return k, truncated
}

func bytesIndexNUL(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return i
		}
	}
	return -1
}

// Auth computes and checks the HMAC of one VHID. Not safe for concurrent
// use; Sign and Verify do not allocate.
//
// The message, as FreeBSD (carp_hmac_prepare, since the sorted walk replaced
// interface order) and OpenBSD (carp_hmac_prepare_ctx) build it, is
//
//	version byte (2), type byte (1), vhid byte,
//	each IPv4 virtual address, ascending (4 bytes, network order),
//	each IPv6 virtual address, ascending by bytes (16 bytes),
//	the 8 counter bytes exactly as in the header,
//
// keyed with the 20-byte NUL-padded Key in standard HMAC-SHA1 (the kernels
// XOR the key zero-padded to 64 bytes with 0x36/0x5c: that is RFC 2104 for a
// key shorter than the block). Both kernels walk the addresses with "the
// smallest one greater than the last", so duplicates are hashed once and
// 0.0.0.0, 255.255.255.255, :: and ffff:...:ffff never are; Auth does the same.
//
// IPv6 scoped addresses (link-local, and link/interface-local multicast:
// IN6_IS_SCOPE_EMBED) are where the two kernels differ. OpenBSD signs without
// them (its HMAC_NOV6LL context) and accepts either that or the HMAC_ORIG
// form, which includes them with the embedded scope (bytes 2-3) zeroed, the
// form FreeBSD both signs and checks. Auth does what OpenBSD does: it signs
// without scoped addresses and accepts both forms. With no link-local
// virtual address, which is the normal case, the two forms are the same
// bytes and all three kernels agree; with one, FreeBSD peers reject our
// advertisements (pfcarp check should warn).
type Auth struct {
	mac hash.Hash
	// msgs[0] is the message prefix we sign with; msgs[1], when present,
	// the other form we accept.
	msgs [][]byte
	buf  []byte // scratch: prefix + counter
	sum  []byte // scratch for the digest
}

// NewAuth prepares the HMAC for vhid with key over the virtual addresses
// vips (prefix lengths are irrelevant; IPv4-mapped IPv6 counts as IPv4).
func NewAuth(key Key, vhid uint8, vips []netip.Addr) *Auth {
	a := &Auth{mac: hmac.New(sha1.New, key[:])}
	noLL := hmacMessage(vhid, vips, false)
	withLL := hmacMessage(vhid, vips, true)
	a.msgs = append(a.msgs, noLL)
	if !bytes.Equal(noLL, withLL) {
		a.msgs = append(a.msgs, withLL)
	}
	a.buf = make([]byte, 0, len(withLL)+8)
	a.sum = make([]byte, 0, sha1.Size)
	return a
}

// Sign returns the digest to send with counter.
func (a *Auth) Sign(counter uint64) (md [20]byte) {
	a.digest(a.msgs[0], counter, &md)
	return md
}

// Verify reports whether md is a valid digest for counter, in either form.
func (a *Auth) Verify(counter uint64, md *[20]byte) bool {
	var want [20]byte
	for _, m := range a.msgs {
		a.digest(m, counter, &want)
		if hmac.Equal(want[:], md[:]) {
			return true
		}
	}
	return false
}

func (a *Auth) digest(prefix []byte, counter uint64, out *[20]byte) {
	a.buf = append(a.buf[:0], prefix...)
	a.buf = binary.BigEndian.AppendUint64(a.buf, counter)
	a.mac.Reset()
	a.mac.Write(a.buf)
	a.sum = a.mac.Sum(a.sum[:0])
	copy(out[:], a.sum)
}

// hmacMessage builds version, type, vhid and the sorted addresses.
func hmacMessage(vhid uint8, vips []netip.Addr, withScoped bool) []byte {
	var v4 [][4]byte
	var v6 [][16]byte
	for _, ip := range vips {
		ip = ip.Unmap()
		switch {
		case ip.Is4():
			v4 = append(v4, ip.As4())
		case ip.Is6():
			b := ip.As16()
			if scopeEmbedded(b) {
				if !withScoped {
					continue
				}
				b[2], b[3] = 0, 0
			}
			v6 = append(v6, b)
		}
	}
	slices.SortFunc(v4, func(x, y [4]byte) int { return bytes.Compare(x[:], y[:]) })
	slices.SortFunc(v6, func(x, y [16]byte) int { return bytes.Compare(x[:], y[:]) })
	v4 = slices.Compact(v4)
	v6 = slices.Compact(v6)
	msg := []byte{Version, TypeAdvert, vhid}
	for _, b := range v4 {
		if b == [4]byte{} || b == [4]byte{255, 255, 255, 255} {
			continue
		}
		msg = append(msg, b[:]...)
	}
	allOnes := [16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	for _, b := range v6 {
		if b == [16]byte{} || b == allOnes {
			continue
		}
		msg = append(msg, b[:]...)
	}
	return msg
}

// scopeEmbedded is the BSD IN6_IS_SCOPE_EMBED test: link-local unicast
// (fe80::/10), link-local multicast (ffx2::) or interface-local multicast
// (ffx1::), the addresses whose bytes 2-3 the kernel uses for the zone.
func scopeEmbedded(b [16]byte) bool {
	switch {
	case b[0] == 0xfe && b[1]&0xc0 == 0x80:
		return true
	case b[0] == 0xff && (b[1]&0x0f == 0x02 || b[1]&0x0f == 0x01):
		return true
	}
	return false
}
