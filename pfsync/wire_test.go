package pfsync

import (
	"net/netip"
	"testing"

	"github.com/pfcarp/pfcarp/compile"
)

func v6State() State {
	return State{Proto: 17, Zone: 3, Status: StatusSeenReply | StatusSrcNAT, Mark: 7, Timeout: 30,
		Orig:  Tuple{Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8:1::2"), SrcPort: 5353, DstPort: 53},
		Reply: Tuple{Src: netip.MustParseAddr("2001:db8:1::2"), Dst: netip.MustParseAddr("2001:db8::99"), SrcPort: 53, DstPort: 61000}}
}

func TestStateRoundTrip(t *testing.T) {
	for _, s := range []State{tcpState(9), v6State()} {
		b := AppendState(nil, &s, 12345)
		if len(b) != StateLen(&s) {
			t.Fatalf("StateLen %d, encoded %d", StateLen(&s), len(b))
		}
		var got State
		upd, err := DecodeState(b[recHdrLen:], &got)
		if err != nil || upd != 12345 {
			t.Fatalf("decode: %v upd %d", err, upd)
		}
		if got.Key() != s.Key() || got.Reply != s.Reply || got.Status != s.Status || got.TCP != s.TCP || got.Mark != s.Mark || got.Timeout != s.Timeout {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, s)
		}
		d := AppendDelete(nil, &s)
		if len(d) != DeleteLen(&s) {
			t.Fatal("DeleteLen")
		}
		var del State
		if err := DecodeDelete(d[recHdrLen:], &del); err != nil || del.Key() != s.Key() {
			t.Fatalf("delete round trip: %v", err)
		}
	}
	k := Sticky{Map: "pool_www", Source: netip.MustParseAddr("192.0.2.7"), Backend: netip.MustParseAddr("198.51.100.21"), Timeout: 300}
	b := AppendSticky(nil, &k)
	var got Sticky
	if len(b) != StickyLen(&k) || DecodeSticky(b[recHdrLen:], &got) != nil || got != k {
		t.Fatalf("sticky round trip: %+v", got)
	}
}

// TestDecodeAllocs pins the receive path's decoding at zero allocations.
func TestDecodeAllocs(t *testing.T) {
	s := tcpState(3)
	a := NewAuth([]byte("k"))
	h := Header{Sender: 1, Epoch: 1, Seq: 1}
	msg := a.Seal(AppendState(h.AppendTo(nil), &s, 1), 1)
	var got State
	n := testing.AllocsPerRun(100, func() {
		_, body, err := a.Open(msg)
		if err != nil {
			t.Fatal(err)
		}
		r := NewRecords(body, 1)
		_, rb, _ := r.Next()
		if _, err := DecodeState(rb, &got); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Fatalf("open+decode allocates %v times", n)
	}
}

// FuzzDecode feeds arbitrary datagrams to the receive path: it must never
// panic, and whatever decodes must re-encode to the same bytes.
func FuzzDecode(f *testing.F) {
	key := []byte("fuzz-key")
	a := NewAuth(key)
	seal := func(count int, enc func([]byte) []byte) []byte {
		h := Header{Sender: 1, Epoch: 1, Seq: 1}
		return a.Seal(enc(h.AppendTo(nil)), count)
	}
	s4, s6 := tcpState(1), v6State()
	// Seeds: one message per record type, a multi-record one, an empty
	// one, and a truncated header.
	f.Add(seal(1, func(b []byte) []byte { return AppendState(b, &s4, 1) }))
	f.Add(seal(1, func(b []byte) []byte { return AppendState(b, &s6, 2) }))
	f.Add(seal(2, func(b []byte) []byte { return AppendDelete(AppendDelete(b, &s4), &s6) }))
	f.Add(seal(1, func(b []byte) []byte {
		return AppendSticky(b, &Sticky{Map: "m", Source: s4.Orig.Src, Backend: s4.Reply.Src, Timeout: 1})
	}))
	f.Add(seal(2, func(b []byte) []byte { return AppendBulkStatus(AppendBulkRequest(b), BulkStart, 9) }))
	l4 := s4
	l4.Labels[3] = 9
	f.Add(seal(2, func(b []byte) []byte { return AppendLabels(AppendState(b, &l4, 3), &l4) }))
	f.Add(seal(0, func(b []byte) []byte { return b }))
	f.Add([]byte{0x50, 0x46, 1, 0, 0})
	open := NewAuth(key)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, au := range []*Auth{open, NewAuth(nil)} {
			h, body, err := au.Open(b)
			if err != nil {
				continue
			}
			if validate(body, h.Count) != nil {
				continue
			}
			r := NewRecords(body, h.Count)
			for {
				typ, rb, ok := r.Next()
				if !ok {
					break
				}
				switch typ {
				case RecState:
					var s State
					upd, err := DecodeState(rb, &s)
					if err != nil {
						t.Fatalf("validated record fails: %v", err)
					}
					var s2 State
					upd2, err := DecodeState(AppendState(nil, &s, upd)[recHdrLen:], &s2)
					if err != nil || upd2 != upd || s2 != s {
						t.Fatalf("state does not round-trip: %+v vs %+v (%v)", s2, s, err)
					}
				case RecDelete:
					var s State
					if DecodeDelete(rb, &s) != nil {
						t.Fatal("validated delete fails")
					}
				case RecSticky:
					var k Sticky
					if DecodeSticky(rb, &k) != nil {
						t.Fatal("validated sticky fails")
					}
					if re := AppendSticky(nil, &k); string(re[recHdrLen+4:]) != string(rb[4:]) {
						t.Fatal("sticky does not round-trip")
					}
				}
			}
		}
		// And through an Engine, which must count, not crash.
		e, _ := NewEngine(Options{Clock: fuzzClock, Table: newFakeTable(), NodeID: 2, Key: key, Send: func([]byte) error { return nil }})
		e.Receive(b)
	})
}

// TestNoSyncMarkMatchesCompile pins the mark contract with the compiler.
func TestNoSyncMarkMatchesCompile(t *testing.T) {
	if NoSyncMark != compile.CtMarkNoSync {
		t.Fatalf("pfsync.NoSyncMark %#x != compile.CtMarkNoSync %#x", NoSyncMark, compile.CtMarkNoSync)
	}
}

func TestLabelsRoundTrip(t *testing.T) {
	for _, s := range []State{tcpState(1), v6State()} {
		s.Labels = [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
		b := AppendLabels(nil, &s)
		if len(b) != LabelsLen(&s) {
			t.Fatalf("labels record %d bytes, LabelsLen %d", len(b), LabelsLen(&s))
		}
		var got State
		if err := DecodeLabels(b[recHdrLen:], &got); err != nil {
			t.Fatal(err)
		}
		if got.Key() != s.Key() || got.Labels != s.Labels {
			t.Fatalf("decoded key/labels %v %x, want %v %x", got.Orig, got.Labels, s.Orig, s.Labels)
		}
		for _, n := range []int{0, 10, len(b) - recHdrLen - 1} {
			if DecodeLabels(b[recHdrLen:recHdrLen+n], &got) == nil {
				t.Errorf("a %d-byte labels body decoded", n)
			}
		}
	}
}

func TestStateAckAndFlags(t *testing.T) {
	s := tcpState(3)
	b := AppendStateFlags(nil, &s, 42, RecFlagAck)
	b = AppendStateAck(b, &s)
	b = AppendState(b, &s, 43)
	if len(b) != 2*StateLen(&s)+StateAckLen(&s) {
		t.Fatalf("length %d", len(b))
	}
	if err := validate(b, 3); err != nil {
		t.Fatal(err)
	}
	recs := NewRecords(b, 3)
	want := []struct {
		typ   RecordType
		flags uint8
	}{{RecState, RecFlagAck}, {RecStateAck, 0}, {RecState, 0}}
	for i, w := range want {
		typ, body, ok := recs.Next()
		if !ok || typ != w.typ || recs.Flags() != w.flags {
			t.Fatalf("record %d: %v flags %d ok %v, want %v %d", i, typ, recs.Flags(), ok, w.typ, w.flags)
		}
		if typ == RecStateAck {
			var k State
			if err := DecodeStateAck(body, &k); err != nil || k.Key() != s.Key() {
				t.Fatalf("ack key %+v %v", k, err)
			}
		}
	}
	// A malformed ack drops the message.
	bad := AppendStateAck(nil, &s)
	bad = bad[:len(bad)-1]
	bad[3]--
	if err := validate(bad, 1); err == nil {
		t.Fatal("short ack accepted")
	}
}
