package pfsync

import (
	"sort"
	"testing"
	"time"

	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"

	"github.com/pfcarp/pfcarp/internal/clock"
	"github.com/pfcarp/pfcarp/internal/testenv"
)

// BenchmarkKernelInject measures conntrack entries injected per second
// (create with NAT bindings and TCP state) into a fresh namespace's kernel
// table: the ceiling of a backup applying a bulk update.
func BenchmarkKernelInject(b *testing.B) {
	testenv.RequireRoot(b)
	n := newNS(b, "inject")
	var ct *Conntrack
	n.do(b, func() error { var err error; ct, err = DialConntrack(); return err })
	defer ct.Close()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		s := benchState(i)
		if err := ct.Inject(&s); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "states/s")
}

// BenchmarkSyncLag measures the lag from a new entry in router A's kernel
// to its insertion in router B's kernel, over a real sync link (raw IP
// 240, multicast, HMAC), with a 10 ms flush interval; p50 and p99 over
// b.N entries created 1 ms apart.
func BenchmarkSyncLag(b *testing.B) {
	testenv.RequireRoot(b)
	ra, rb := newNS(b, "ra"), newNS(b, "rb")
	link(b, ra, "async", "169.254.240.1/24", rb, "bsync", "169.254.240.2/24")
	ra.do(b, func() error { return waitOperUp("async") })
	rb.do(b, func() error { return waitOperUp("bsync") })
	key := []byte("bench")
	na := startSyncNode(b, ra, "async", 1, key)
	nb := startSyncNode(b, rb, "bsync", 2, key)
	poll(b, "bulk updates", func() bool { return na.r.Status().Bulk == "idle" && nb.r.Status().Bulk == "idle" })

	// B's kernel events, timestamped on arrival.
	var evc *conntrack.Conn
	rb.do(b, func() error { var err error; evc, err = conntrack.Dial(nil); return err })
	defer evc.Close()
	evc.SetReadBuffer(8 << 20)
	evs := make(chan conntrack.Event, 65536)
	if _, err := evc.Listen(evs, 1, []netfilter.NetlinkGroup{netfilter.GroupCTNew}); err != nil {
		b.Fatal(err)
	}
	var ct *Conntrack
	ra.do(b, func() error { var err error; ct, err = DialConntrack(); return err })
	defer ct.Close()

	sent := make(map[Key]time.Time, b.N)
	lags := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	collect := func(ev conntrack.Event) {
		if ev.Flow == nil {
			return
		}
		s, ok := fromFlow(ev.Flow)
		if !ok {
			return
		}
		if t0, ok := sent[s.Key()]; ok {
			lags = append(lags, time.Since(t0))
			delete(sent, s.Key())
		}
	}
	for i := 0; i < b.N; i++ {
		s := benchState(i)
		sent[s.Key()] = time.Now()
		if err := ct.Inject(&s); err != nil {
			b.Fatal(err)
		}
		for done := false; !done; {
			select {
			case ev := <-evs:
				collect(ev)
			case <-tick.C:
				done = true
			}
		}
	}
	deadline := time.After(10 * time.Second)
	for len(sent) > 0 {
		select {
		case ev := <-evs:
			collect(ev)
		case <-deadline:
			b.Fatalf("%d of %d entries never reached B", len(sent), b.N)
		}
	}
	b.StopTimer()
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	b.ReportMetric(float64(lags[len(lags)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lags[len(lags)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkPeriodicResync measures one periodic resync (the daemon's runs
// every DefaultResyncInterval) over a kernel table of 20,000 synced TCP
// entries that all match the Engine's view: a conntrack dump, decoding and
// the comparison. It reports the time per resync and per entry.
func BenchmarkPeriodicResync(b *testing.B) {
	testenv.RequireRoot(b)
	const n = 20_000
	ns := newNS(b, "resync")
	var ct *Conntrack
	ns.do(b, func() error { var err error; ct, err = DialConntrack(); return err })
	defer ct.Close()
	for i := 0; i < n; i++ {
		s := benchState(i)
		if err := ct.Inject(&s); err != nil {
			b.Fatal(err)
		}
	}
	e, err := NewEngine(Options{Clock: clock.NewFake(epoch0), Table: &KernelTable{CT: ct, NoSyncMask: NoSyncMark},
		NodeID: 1, NoSyncMask: NoSyncMark, Send: func([]byte) error { return nil }})
	if err != nil {
		b.Fatal(err)
	}
	e.Start()
	if e.Len() != n {
		b.Fatalf("engine holds %d entries, want %d", e.Len(), n)
	}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := e.Resync(); err != nil {
			b.Fatal(err)
		}
	}
	d := time.Since(start) / time.Duration(b.N)
	if r := e.Stats().ResyncRepairs; r != 0 {
		b.Fatalf("%d repairs of a table that did not change", r)
	}
	b.ReportMetric(float64(d.Milliseconds()), "ms/resync")
	b.ReportMetric(float64(d.Nanoseconds())/n, "ns/entry")
}
