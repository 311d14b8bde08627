package carp

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"os"
	"testing"
)

type vector struct {
	Name       string   `json:"name"`
	Pass       string   `json:"pass"`
	VHID       uint8    `json:"vhid"`
	AdvBase    uint8    `json:"advbase"`
	AdvSkew    uint8    `json:"advskew"`
	Demote     uint8    `json:"demote"`
	Counter    string   `json:"counter"`
	VIPs       []string `json:"vips"`
	Key        string   `json:"key"`
	HMAC       string   `json:"hmac"`
	HMACWithLL string   `json:"hmac_with_ll"`
	Packet     string   `json:"packet"`
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	b, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 5 {
		t.Fatalf("only %d vectors", len(vs))
	}
	return vs
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGoldenVectors checks key, HMAC (both forms), encoding and decoding
// against vectors computed independently in Python (testdata/README.md).
func TestGoldenVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			key, _ := NewKey(v.Pass)
			if got := hex.EncodeToString(key[:]); got != v.Key {
				t.Fatalf("key = %s, want %s", got, v.Key)
			}
			var vips []netip.Addr
			for _, s := range v.VIPs {
				vips = append(vips, netip.MustParseAddr(s))
			}
			counter := binary.BigEndian.Uint64(unhex(t, v.Counter))
			a := NewAuth(key, v.VHID, vips)
			md := a.Sign(counter)
			if got := hex.EncodeToString(md[:]); got != v.HMAC {
				t.Fatalf("hmac = %s, want %s", got, v.HMAC)
			}
			var ll [20]byte
			copy(ll[:], unhex(t, v.HMACWithLL))
			if !a.Verify(counter, &ll) {
				t.Fatalf("FreeBSD form (link-local included) not accepted")
			}
			h := Header{Version: Version, Type: TypeAdvert, VHID: v.VHID, AdvSkew: v.AdvSkew,
				AuthLen: AuthLen, Demote: v.Demote, AdvBase: v.AdvBase, Counter: counter, HMAC: md}
			pkt := unhex(t, v.Packet)
			if got := h.AppendTo(nil); !bytes.Equal(got, pkt) {
				t.Fatalf("encoded\n %x\nwant\n %x", got, pkt)
			}
			var d Header
			if err := d.Decode(pkt); err != nil {
				t.Fatalf("decode: %v", err)
			}
			h.Checksum = binary.BigEndian.Uint16(pkt[6:])
			if d != h {
				t.Fatalf("decoded %+v\nwant    %+v", d, h)
			}
			if !a.Verify(d.Counter, &d.HMAC) {
				t.Fatal("own signature not verified")
			}
			d.HMAC[19] ^= 1
			if a.Verify(d.Counter, &d.HMAC) {
				t.Fatal("flipped bit verified")
			}
			if a.Verify(d.Counter+1, &md) {
				t.Fatal("wrong counter verified")
			}
		})
	}
}

func TestNewKey(t *testing.T) {
	for _, tc := range []struct {
		pass      string
		want      string
		truncated bool
	}{
		{"", "", false},
		{"11111", "11111", false},
		{"abcdefghijklmnopqrs", "abcdefghijklmnopqrs", false},
		{"abcdefghijklmnopqrst", "abcdefghijklmnopqrs", true},
		{"ab\x00cd", "ab", true},
	} {
		k, tr := NewKey(tc.pass)
		want := Key{}
		copy(want[:], tc.want)
		if k != want || tr != tc.truncated {
			t.Errorf("NewKey(%q) = %q,%v want %q,%v", tc.pass, k[:], tr, want[:], tc.truncated)
		}
	}
}

func TestHMACMessageOrder(t *testing.T) {
	ips := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}
	m := hmacMessage(9, ips("::ffff:10.0.0.2", "10.0.0.1", "0.0.0.0", "255.255.255.255", "2001:db8::1", "::", "fe80:7::1"), false)
	want := []byte{2, 1, 9, 10, 0, 0, 1, 10, 0, 0, 2}
	want = append(want, netip.MustParseAddr("2001:db8::1").AsSlice()...)
	if !bytes.Equal(m, want) {
		t.Fatalf("message\n %x\nwant\n %x", m, want)
	}
	ll := hmacMessage(9, ips("fe80:7::1"), true)
	if want := append([]byte{2, 1, 9}, netip.MustParseAddr("fe80::1").AsSlice()...); !bytes.Equal(ll, want) {
		t.Fatalf("link-local form %x, want %x", ll, want)
	}
}

func TestDecodeRejects(t *testing.T) {
	good := (&Header{Version: Version, Type: TypeAdvert, VHID: 1, AuthLen: AuthLen, AdvBase: 1}).AppendTo(nil)
	mut := func(f func(b []byte) []byte) []byte {
		b := f(append([]byte(nil), good...))
		return b
	}
	refix := func(b []byte) []byte {
		b[6], b[7] = 0, 0
		binary.BigEndian.PutUint16(b[6:], Checksum(b[:HeaderLen]))
		return b
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"good", good, nil},
		{"trailing bytes ignored", append(append([]byte(nil), good...), 1, 2, 3), nil},
		{"empty", nil, RejectShort},
		{"35 bytes", good[:35], RejectShort},
		{"checksum", mut(func(b []byte) []byte { b[7] ^= 0xff; return b }), RejectChecksum},
		{"payload bit", mut(func(b []byte) []byte { b[20] ^= 0x10; return b }), RejectChecksum},
		{"version 3", mut(func(b []byte) []byte { b[0] = 0x31; return refix(b) }), RejectVersion},
		{"type 2", mut(func(b []byte) []byte { b[0] = 0x22; return refix(b) }), RejectType},
	} {
		var h Header
		if err := h.Decode(tc.b); err != tc.want {
			t.Errorf("%s: Decode = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestDecodeNoAlloc pins the allocation-free receive path: decoding and
// verifying an advertisement must not allocate.
func TestDecodeNoAlloc(t *testing.T) {
	key, _ := NewKey("11111")
	a := NewAuth(key, 1, []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("fe80::1")})
	h := Header{Version: Version, Type: TypeAdvert, VHID: 1, AuthLen: AuthLen, AdvBase: 1, Counter: 42}
	h.HMAC = a.Sign(42)
	pkt := h.AppendTo(nil)
	bad := append([]byte(nil), pkt...)
	bad[0] = 0x31
	var d Header
	n := testing.AllocsPerRun(1000, func() {
		if err := d.Decode(pkt); err != nil {
			t.Fatal(err)
		}
		if !a.Verify(d.Counter, &d.HMAC) {
			t.Fatal("verify failed")
		}
		if err := d.Decode(bad); err == nil {
			t.Fatal("bad accepted")
		}
	})
	if n != 0 {
		t.Fatalf("decode+verify allocates %v times per run, want 0", n)
	}
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(1000, func() { buf = h.AppendTo(buf[:0]) }); n != 0 {
		t.Fatalf("AppendTo into a big enough buffer allocates %v times", n)
	}
}

func BenchmarkDecodeVerify(b *testing.B) {
	key, _ := NewKey("11111")
	a := NewAuth(key, 1, []netip.Addr{netip.MustParseAddr("192.0.2.1")})
	h := Header{Version: Version, Type: TypeAdvert, VHID: 1, AuthLen: AuthLen, AdvBase: 1, Counter: 42}
	h.HMAC = a.Sign(42)
	pkt := h.AppendTo(nil)
	var d Header
	b.ReportAllocs()
	b.SetBytes(HeaderLen)
	for b.Loop() {
		if d.Decode(pkt) != nil || !a.Verify(d.Counter, &d.HMAC) {
			b.Fatal("bad")
		}
	}
}

func BenchmarkEncodeSign(b *testing.B) {
	key, _ := NewKey("11111")
	a := NewAuth(key, 1, []netip.Addr{netip.MustParseAddr("192.0.2.1")})
	h := Header{Version: Version, Type: TypeAdvert, VHID: 1, AuthLen: AuthLen, AdvBase: 1}
	buf := make([]byte, 0, HeaderLen)
	b.ReportAllocs()
	for b.Loop() {
		h.Counter++
		h.HMAC = a.Sign(h.Counter)
		buf = h.AppendTo(buf[:0])
	}
}
