package carp

import (
	"bytes"
	"testing"
)

// FuzzDecode: Decode never panics, never reads past the header, and what it
// accepts re-encodes to the same 36 bytes (decode(encode(x)) == x).
func FuzzDecode(f *testing.F) {
	// A valid advertisement (seed carp0 of the reference deployment).
	f.Add([]byte("\x21\x01\x0a\x07\x00\x01\xa5\xca\x01\x02\x03\x04\x05\x06\x07\x08" +
		"\x6c\x0b\xa1\x40\x5e\x77\xcf\x28\x4c\xbd\x6e\x7d\x02\x74\xa5\xe9\xeb\xc1\x94\xd1"))
	// Too short.
	f.Add([]byte("\x21\x01"))
	// Empty.
	f.Add([]byte{})
	// A VRRPv2-looking packet (also IP protocol 112).
	f.Add([]byte("\x21\x01\x64\x01\x00\x01\xba\x52\xc0\xa8\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00"))
	// Bow-out advertisement with trailing garbage.
	f.Add(append((&Header{Version: 2, Type: 1, VHID: 255, AdvBase: 255, AdvSkew: 255, AuthLen: 7}).AppendTo(nil), 0xde, 0xad))
	f.Fuzz(func(t *testing.T, b []byte) {
		var h Header
		err := h.Decode(b)
		if err != nil {
			if _, ok := err.(Reject); !ok {
				t.Fatalf("error %T is not a Reject", err)
			}
			return
		}
		// The Internet checksum has two zeros: a header carrying 0xffff
		// where the encoder writes 0x0000 (or the reverse) is equally
		// valid, so the checksum bytes are compared by validity only.
		enc := h.AppendTo(nil)
		if !bytes.Equal(enc[:6], b[:6]) || !bytes.Equal(enc[8:], b[8:HeaderLen]) {
			t.Fatalf("re-encoded\n %x\nfrom\n %x", enc, b[:HeaderLen])
		}
		var h2 Header
		if err := h2.Decode(enc); err != nil {
			t.Fatalf("re-encoded header rejected: %v", err)
		}
		h2.Checksum = h.Checksum
		if h2 != h {
			t.Fatalf("round trip: %+v != %+v", h2, h)
		}
	})
}
