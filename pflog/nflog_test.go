package pflog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/netlink"

	"github.com/pfcarp/pfcarp/internal/clock"
)

// nflogMsg builds the data of an NFULNL_MSG_PACKET message as the kernel
// sends it.
type nflogMsg struct {
	family          uint8
	group           uint16
	prefix          string
	indev, outdev   uint32
	ts              *[2]uint64
	payload         []byte
	hwProto         uint16
	hook            uint8
	extra           func(*netlink.AttributeEncoder)
	noPrefix, noHdr bool
}

func (m nflogMsg) encode(t testing.TB) []byte {
	t.Helper()
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	if !m.noHdr {
		hdr := make([]byte, 4)
		binary.BigEndian.PutUint16(hdr, m.hwProto)
		hdr[2] = m.hook
		ae.Bytes(nfulaPacketHdr, hdr)
	}
	if m.indev != 0 {
		ae.Uint32(nfulaIfindexIndev, m.indev)
	}
	if m.outdev != 0 {
		ae.Uint32(nfulaIfindexOutdev, m.outdev)
	}
	if m.ts != nil {
		b := make([]byte, 16)
		binary.BigEndian.PutUint64(b, m.ts[0])
		binary.BigEndian.PutUint64(b[8:], m.ts[1])
		ae.Bytes(nfulaTimestamp, b)
	}
	if !m.noPrefix {
		ae.String(nfulaPrefix, m.prefix) // NUL-terminated, as the kernel sends it
	}
	if m.extra != nil {
		m.extra(ae)
	}
	ae.Bytes(nfulaPayload, m.payload)
	attrs, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	data := []byte{m.family, 0, 0, 0}
	binary.BigEndian.PutUint16(data[2:], m.group)
	return append(data, attrs...)
}

// udp6 is an IPv6/UDP packet ::1.4000 -> ::1.53 with 5 payload bytes.
var udp6 = func() []byte {
	b := make([]byte, 40+8+5)
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], 13)
	b[6] = 17
	b[7] = 64
	b[23], b[39] = 1, 1
	binary.BigEndian.PutUint16(b[40:], 4000)
	binary.BigEndian.PutUint16(b[42:], 53)
	binary.BigEndian.PutUint16(b[44:], 13)
	copy(b[48:], "hello")
	return b
}()

func staticNames(m map[uint32]string) func(uint32) string {
	return func(i uint32) string { return m[i] }
}

func TestParsePacketMessage(t *testing.T) {
	data := nflogMsg{
		family: 2, group: 7, prefix: "pf:3/0:block:in", indev: 4, outdev: 9,
		ts: &[2]uint64{1714564800, 250000}, payload: udp4, hwProto: 0x0800, hook: 1,
		extra: func(ae *netlink.AttributeEncoder) {
			ae.Uint32(nfulaMark, 0xbeef)
			ae.Bytes(99, []byte{1, 2, 3}) // unknown attributes are skipped
		},
	}.encode(t)
	p, err := ParsePacketMessage(data)
	if err != nil {
		t.Fatal(err)
	}
	want := Packet{
		Group: 7, Family: 2, HWProtocol: 0x0800, Hook: 1, Mark: 0xbeef,
		InIfindex: 4, OutIfindex: 9, Time: time.Unix(1714564800, 250000000),
		Prefix: "pf:3/0:block:in",
	}
	if !p.Time.Equal(want.Time) {
		t.Fatalf("Time = %v, want %v", p.Time, want.Time)
	}
	got := p
	got.Payload, got.Time = nil, want.Time
	if !reflect.DeepEqual(got, want) || !bytes.Equal(p.Payload, udp4) {
		t.Fatalf("ParsePacketMessage = %+v\nwant %+v", p, want)
	}
}

func TestParsePacketMessageMalformed(t *testing.T) {
	good := nflogMsg{prefix: "pf:3/0:block:in", payload: udp4}.encode(t)
	attr := func(typ uint16, b []byte) []byte {
		ae := netlink.NewAttributeEncoder()
		ae.Bytes(typ, b)
		out, _ := ae.Encode()
		return append([]byte{2, 0, 0, 1}, out...)
	}
	tests := map[string][]byte{
		"short nfgenmsg":     {2, 0},
		"truncated attr":     good[:len(good)-10], // into the payload, past the padding
		"bad attr length":    append([]byte{2, 0, 0, 1}, 0xff, 0x00, 0x09, 0x00),
		"short packet hdr":   attr(nfulaPacketHdr, []byte{8}),
		"short ifindex":      attr(nfulaIfindexIndev, []byte{0, 1}),
		"short mark":         attr(nfulaMark, []byte{0, 1, 2}),
		"short timestamp":    attr(nfulaTimestamp, make([]byte, 8)),
		"timestamp too late": attr(nfulaTimestamp, bytes.Repeat([]byte{0xff}, 16)),
	}
	for name, data := range tests {
		if _, err := ParsePacketMessage(data); err == nil {
			t.Errorf("%s: ParsePacketMessage succeeded", name)
		}
	}
}

func TestPacketRecord(t *testing.T) {
	names := staticNames(map[uint32]string{1: "lo", 4: "eth0", 9: "eth1"})
	now := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	kernelTime := time.Unix(1714564800, 5000)
	tests := []struct {
		name   string
		p      Packet
		wantIf string
		wantAF uint8
		want   time.Time
	}{
		{"in uses the input interface", Packet{Prefix: "pf:3/0:block:in", InIfindex: 4, OutIfindex: 9, Payload: udp4}, "eth0", AFInet, now},
		{"out uses the output interface", Packet{Prefix: "pf:3/0:pass:out", InIfindex: 4, OutIfindex: 9, Payload: udp4}, "eth1", AFInet, now},
		{"in/out uses the input interface", Packet{Prefix: "pf:3/0:pass:in/out", InIfindex: 4, OutIfindex: 9, Payload: udp6}, "eth0", AFInet6, now},
		{"out without output falls back", Packet{Prefix: "pf:3/0:pass:out", InIfindex: 4, Payload: udp4}, "eth0", AFInet, now},
		{"in without input falls back", Packet{Prefix: "pf:3/0:pass:in", OutIfindex: 1, Payload: udp4}, "lo", AFInet, now},
		{"no interface at all", Packet{Prefix: "pf:3/0:pass:in", Payload: udp4}, "", AFInet, now},
		{"kernel timestamp wins", Packet{Prefix: "pf:3/0:pass:in", InIfindex: 1, Time: kernelTime, Payload: udp4}, "lo", AFInet, kernelTime},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := tt.p.Record(names, now)
			if err != nil {
				t.Fatal(err)
			}
			if r.Header.IfName != tt.wantIf || r.Header.AF != tt.wantAF || !r.Time.Equal(tt.want) {
				t.Fatalf("Record = if %q af %d time %v; want %q %d %v", r.Header.IfName, r.Header.AF, r.Time, tt.wantIf, tt.wantAF, tt.want)
			}
			if r.Header.SubRuleNr != 0xffffffff || r.Header.RuleNr != 3 || r.OrigLen != len(tt.p.Payload) {
				t.Fatalf("Record header %+v, orig %d", r.Header, r.OrigLen)
			}
		})
	}
}

func TestPacketRecordRejects(t *testing.T) {
	names := staticNames(nil)
	_, err := Packet{Prefix: "ulogd: hello", Payload: udp4}.Record(names, time.Time{})
	if !errors.Is(err, ErrForeignPrefix) {
		t.Errorf("foreign prefix: %v", err)
	}
	_, err = Packet{Prefix: "pf:1/0:pass:in"}.Record(names, time.Time{})
	if err == nil || !strings.Contains(err.Error(), "without payload") {
		t.Errorf("no payload: %v", err)
	}
	_, err = Packet{Prefix: "pf:1/0:pass:in", Payload: []byte{0x20, 0}}.Record(names, time.Time{})
	if err == nil || !strings.Contains(err.Error(), "version 2") {
		t.Errorf("not IP: %v", err)
	}
}

func TestPacketRecordOrigLen(t *testing.T) {
	// The kernel copied 28 bytes of a 1500-byte IPv4 packet.
	v4 := bytes.Clone(udp4[:28])
	binary.BigEndian.PutUint16(v4[2:], 1500)
	r, err := Packet{Prefix: "pf:1/0:pass:in", Payload: v4}.Record(staticNames(nil), time.Time{})
	if err != nil || r.OrigLen != 1500 {
		t.Fatalf("IPv4 orig len %d, %v", r.OrigLen, err)
	}
	v6 := bytes.Clone(udp6[:48])
	binary.BigEndian.PutUint16(v6[4:], 1000)
	r, err = Packet{Prefix: "pf:1/0:pass:in", Payload: v6}.Record(staticNames(nil), time.Time{})
	if err != nil || r.OrigLen != 1040 {
		t.Fatalf("IPv6 orig len %d, %v", r.OrigLen, err)
	}
}

func TestIfNamesCache(t *testing.T) {
	clk := clock.NewFake(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	calls := 0
	current := map[uint32]string{2: "eth0"}
	n := newIfNames(func(i uint32) (string, error) {
		calls++
		if name, ok := current[i]; ok {
			return name, nil
		}
		return "", errors.New("no such link")
	}, clk)
	for range 3 {
		if got := n.name(2); got != "eth0" {
			t.Fatalf("name(2) = %q", got)
		}
	}
	if calls != 1 {
		t.Fatalf("%d lookups for one interface, want 1 (cached)", calls)
	}
	current[2] = "wan0" // renamed
	clk.Advance(nameTTL - time.Second)
	if got := n.name(2); got != "eth0" {
		t.Fatalf("within the TTL name(2) = %q, want the cached eth0", got)
	}
	clk.Advance(2 * time.Second)
	if got := n.name(2); got != "wan0" {
		t.Fatalf("after the TTL name(2) = %q, want wan0", got)
	}
	// Unknown interfaces are named by index and not cached.
	if got := n.name(7); got != "if7" {
		t.Fatalf("name(7) = %q, want if7", got)
	}
	current[7] = "eth7"
	if got := n.name(7); got != "eth7" {
		t.Fatalf("name(7) once it exists = %q", got)
	}
}

// FuzzPacketToRecord feeds arbitrary netlink message data through the whole
// path a logged packet takes: parse, record, header and pcap record
// encoding. Nothing may panic, and what comes out must read back.
func FuzzPacketToRecord(f *testing.F) {
	f.Add(nflogMsg{family: 2, group: 5, prefix: "pf:3/0:block:in", indev: 1, payload: udp4}.encode(f))                                     // typical IPv4
	f.Add(nflogMsg{family: 10, group: 5, prefix: "pf:12.web.2/0:pass:out:4711", outdev: 2, payload: udp6, ts: &[2]uint64{1, 2}}.encode(f)) // IPv6, anchor
	f.Add(nflogMsg{family: 2, prefix: "pf:3/0:block:in", payload: []byte{0x45}}.encode(f))                                                 // one byte of IP
	f.Add(nflogMsg{family: 2, prefix: "other", payload: udp4, noHdr: true}.encode(f))                                                      // foreign prefix
	f.Add([]byte{2, 0, 0, 5, 8, 0, 10, 0, 'p', 'f', ':', 0})                                                                               // bare attribute
	names := staticNames(map[uint32]string{1: "lo", 2: "eth0"})
	w := &Writer{order: binary.LittleEndian, snaplen: DefaultSnaplen}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePacketMessage(data)
		if err != nil {
			return
		}
		r, err := p.Record(names, time.Unix(0, 0))
		if err != nil {
			return
		}
		if r.Header.AF != AFInet && r.Header.AF != AFInet6 {
			t.Fatalf("af %d", r.Header.AF)
		}
		b := w.appendRecord(nil, r)
		incl := binary.LittleEndian.Uint32(b[8:])
		orig := binary.LittleEndian.Uint32(b[12:])
		if int(incl) != len(b)-pcapRecordHeaderLen || orig < incl {
			t.Fatalf("record incl %d orig %d for %d bytes", incl, orig, len(b))
		}
		h, n, err := ParseHeader(b[pcapRecordHeaderLen:])
		if err != nil || n != HeaderLen || !bytes.Equal(b[pcapRecordHeaderLen+n:], p.Payload) {
			t.Fatalf("record does not read back: %v", err)
		}
		m, _ := ParsePrefix(p.Prefix)
		if h.RuleNr != m.Rule || h.Action != m.Action || h.Dir != m.Dir || h.Reason != m.Reason {
			t.Fatalf("header %+v does not carry %+v", h, m)
		}
	})
}

// BenchmarkPacketToRecord measures the user-space cost per logged packet:
// netlink attribute parsing, prefix parsing, name lookup (cached) and the
// pcap record encoding.
func BenchmarkPacketToRecord(b *testing.B) {
	data := nflogMsg{family: 2, group: 5, prefix: "pf:3/0:block:in", indev: 1, payload: udp4}.encode(b)
	names := staticNames(map[uint32]string{1: "lo"})
	w := &Writer{order: binary.LittleEndian, snaplen: DefaultSnaplen}
	buf := make([]byte, 0, 512)
	now := time.Unix(1714564800, 0)
	b.ReportAllocs()
	for b.Loop() {
		p, err := ParsePacketMessage(data)
		if err != nil {
			b.Fatal(err)
		}
		r, err := p.Record(names, now)
		if err != nil {
			b.Fatal(err)
		}
		buf = w.appendRecord(buf[:0], r)
	}
}
