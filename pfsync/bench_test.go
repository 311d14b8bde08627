package pfsync

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/pfcarp/pfcarp/internal/clock"
)

func benchState(i int) State {
	s := tcpState(0)
	s.Orig.Src = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	s.Reply.Dst = s.Orig.Src
	s.Orig.SrcPort = uint16(1024 + i%60000)
	s.Reply.DstPort = s.Orig.SrcPort
	return s
}

// BenchmarkReplicate measures states replicated per second at saturation
// through the protocol path (encode, HMAC, send, open, decode, apply to
// the peer's table), without the kernel: the Engine's ceiling.
func BenchmarkReplicate(b *testing.B) {
	clk := clock.NewFake(epoch0)
	tb := newFakeTable()
	var peer *Engine
	a, _ := NewEngine(Options{Clock: clk, Table: newFakeTable(), NodeID: 1, Key: []byte("k"),
		Send: func(m []byte) error { peer.Receive(m); return nil }})
	peer, _ = NewEngine(Options{Clock: clk, Table: tb, NodeID: 2, Key: []byte("k"), Send: func([]byte) error { return nil }})
	states := make([]State, 4096)
	for i := range states {
		states[i] = benchState(i)
	}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		s := states[i%len(states)]
		s.TCP.State = uint8(1 + i%9) // a real change every time
		a.Local(&Event{Type: EventUpdate, State: s})
		if i%64 == 63 {
			a.flushPending()
		}
	}
	a.flushPending()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "states/s")
}

// BenchmarkBulkUpdate measures a whole bulk update between two Engines in
// memory (request, BULK START, every state, BULK END, applied to the
// requester's table) for 100,000 and 1,000,000 states.
func BenchmarkBulkUpdate(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				clk := clock.NewFake(epoch0)
				ta, tb := newFakeTable(), newFakeTable()
				for j := 0; j < n; j++ {
					s := benchState(j)
					tb.m[s.Key()] = s
				}
				var ea, eb *Engine
				var toA, toB [][]byte
				ea, _ = NewEngine(Options{Clock: clk, Table: ta, NodeID: 1, Key: []byte("k"), Send: func(m []byte) error { toB = append(toB, append([]byte(nil), m...)); return nil }})
				eb, _ = NewEngine(Options{Clock: clk, Table: tb, NodeID: 2, Key: []byte("k"), Send: func(m []byte) error { toA = append(toA, append([]byte(nil), m...)); return nil }})
				eb.Start()
				toA = nil
				b.StartTimer()
				start := time.Now()
				ea.Start()
				for ea.Bulk() != BulkIdle {
					for _, m := range toB {
						eb.Receive(m)
					}
					toB = toB[:0]
					if d, ok := eb.Deadline(); ok && !d.After(clk.Now()) {
						eb.Tick()
					}
					for _, m := range toA {
						ea.Receive(m)
					}
					toA = toA[:0]
				}
				el := time.Since(start)
				if len(ta.m) != n {
					b.Fatalf("got %d states, want %d", len(ta.m), n)
				}
				b.ReportMetric(el.Seconds(), "s/bulk")
				b.ReportMetric(float64(n)/el.Seconds(), "states/s")
			}
		})
	}
}

// BenchmarkMemoryPerState reports the Engine's heap per synced state.
func BenchmarkMemoryPerState(b *testing.B) {
	const n = 200_000
	for i := 0; i < b.N; i++ {
		clk := clock.NewFake(epoch0)
		e, _ := NewEngine(Options{Clock: clk, Table: newFakeTable(), NodeID: 1, Send: func([]byte) error { return nil }})
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		for j := 0; j < n; j++ {
			s := benchState(j)
			e.Local(&Event{Type: EventNew, State: s})
			if j%100 == 99 {
				e.flushPending()
			}
		}
		e.flushPending()
		runtime.GC()
		runtime.ReadMemStats(&m1)
		b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/n, "bytes/state")
		runtime.KeepAlive(e)
	}
}
