package pfsync

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// BenchmarkKernelInjectBatch writes states as a received message's
// states are written (InjectBatch, one netlink write per message of 24
// IPv4 states, a full 1,500-byte message): the rate a bulk update's
// receiver can take in, which bounds how fast a bulk may be served.
func BenchmarkKernelInjectBatch(b *testing.B) {
	testenv.RequireRoot(b)
	n := newNS(b, "injectb")
	var ct *Conntrack
	n.do(b, func() error { var err error; ct, err = DialConntrack(); return err })
	defer ct.Close()
	const per = 24
	batch := make([]State, 0, per)
	exists := make([]bool, per)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		batch = append(batch, benchState(i))
		if len(batch) == per || i == b.N-1 {
			for j, err := range ct.InjectBatch(batch, exists[:len(batch)]) {
				if err != nil {
					b.Fatalf("state %d: %v", i-len(batch)+1+j, err)
				}
			}
			batch = batch[:0]
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "states/s")
}

// BenchmarkSyncLag measures the sync lag, from a change in router A's
// kernel to its arrival in router B's kernel, over a real sync link (raw
// IP 240, multicast, HMAC) with the daemon's defaults (flush interval
// 100 ms, maxupd 128). Each of b.N connections is created on A in
// SYN_SENT (the NEW event) and, one connection later, moved to
// ESTABLISHED (an UPDATE): "new" is the lag of the NEW to B's first
// entry, "est" the lag of the ESTABLISHED update to B's entry showing it.
//
// mode=batched is the baseline, every change waiting for the flush
// interval (PromptDelay < 0); mode=prompt sends new states and handshake
// steps at once (DefaultPromptDelay). rate is the connections per second
// offered, 0 as fast as A's kernel takes them; conn/s reports what was
// achieved, load1 the machine's load average (on a shared machine the
// other processes' load sets the tail). Run with -benchtime 3000x (the
// count of connections).
func BenchmarkSyncLag(b *testing.B) {
	for _, m := range []struct {
		name   string
		prompt time.Duration
	}{{"batched", -1}, {"prompt", DefaultPromptDelay}} {
		for _, rate := range []int{1000, 2000, 3000, 5000, 0} {
			b.Run(fmt.Sprintf("mode=%s/rate=%d", m.name, rate), func(b *testing.B) { syncLag(b, m.prompt, rate) })
		}
	}
}

// lagEvent is one of B's conntrack events, stamped when it was read.
type lagEvent struct {
	k   Key
	tcp uint8
	at  time.Time
}

func syncLag(b *testing.B, prompt time.Duration, rate int) {
	testenv.RequireRoot(b)
	ra, rb := newNS(b, "ra"), newNS(b, "rb")
	link(b, ra, "async", "169.254.240.1/24", rb, "bsync", "169.254.240.2/24")
	ra.do(b, func() error { return waitOperUp("async") })
	rb.do(b, func() error { return waitOperUp("bsync") })
	key := []byte("bench")
	daemonLike := func(o *Options) { o.FlushInterval, o.PromptDelay = DefaultFlushInterval, prompt }
	na := startSyncNode(b, ra, "async", 1, key, daemonLike)
	nb := startSyncNode(b, rb, "bsync", 2, key, daemonLike)
	poll(b, "bulk updates", func() bool { return na.r.Status().Bulk == "idle" && nb.r.Status().Bulk == "idle" })

	// B's kernel events, stamped on arrival by their own goroutine.
	var evc *conntrack.Conn
	rb.do(b, func() error { var err error; evc, err = conntrack.Dial(nil); return err })
	evc.SetReadBuffer(8 << 20)
	evs := make(chan conntrack.Event, 1<<16)
	if _, err := evc.Listen(evs, 1, []netfilter.NetlinkGroup{netfilter.GroupCTNew, netfilter.GroupCTUpdate}); err != nil {
		b.Fatal(err)
	}
	var ct *Conntrack
	ra.do(b, func() error { var err error; ct, err = DialConntrack(); return err })
	defer ct.Close()

	n := b.N
	conns := make([]State, n)
	want := make(map[Key]bool, n)
	for i := range conns {
		s := benchState(i)
		s.Status &^= StatusSeenReply | StatusAssured
		s.TCP.State, s.Timeout = TCPSynSent, 120
		conns[i] = s
		want[s.Key()] = true
	}
	var mu sync.Mutex
	var got []lagEvent
	done := make(chan struct{})
	stop := make(chan struct{})
	go func() { // owns want
		established := 0
		for {
			select {
			case <-stop:
				return
			case ev := <-evs:
				at := time.Now()
				if ev.Flow == nil {
					continue
				}
				s, ok := fromFlow(ev.Flow)
				if !ok || !want[s.Key()] {
					continue
				}
				mu.Lock()
				got = append(got, lagEvent{s.Key(), s.TCP.State, at})
				mu.Unlock()
				if s.TCP.State == TCPEstablished {
					delete(want, s.Key())
					if established++; established == n {
						close(done)
					}
				}
			}
		}
	}()
	defer func() { close(stop); evc.Close() }()

	created := make([]time.Time, n)
	estAt := make([]time.Time, n)
	establish := func(i int) {
		s := conns[i]
		s.Status |= StatusSeenReply | StatusAssured
		s.TCP.State, s.Timeout = TCPEstablished, 432000
		estAt[i] = time.Now()
		if err := ct.Inject(&s); err != nil {
			b.Fatal(err)
		}
	}
	var every time.Duration
	if rate > 0 {
		every = time.Second / time.Duration(rate)
	}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < n; i++ {
		if every > 0 {
			if d := time.Until(start.Add(time.Duration(i) * every)); d > 0 {
				time.Sleep(d)
			}
		}
		created[i] = time.Now()
		if err := ct.Inject(&conns[i]); err != nil {
			b.Fatal(err)
		}
		if i > 0 {
			establish(i - 1)
		}
	}
	establish(n - 1)
	elapsed := time.Since(start)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		mu.Lock()
		b.Fatalf("%d of %d connections never reached B in ESTABLISHED (%d events)", n-len(got), n, len(got))
	}
	b.StopTimer()

	index := make(map[Key]int, n)
	for i := range conns {
		index[conns[i].Key()] = i
	}
	var newLag, estLag []time.Duration
	seen := make(map[Key]bool, n)
	mu.Lock()
	for _, ev := range got {
		i := index[ev.k]
		if !seen[ev.k] {
			seen[ev.k] = true
			newLag = append(newLag, ev.at.Sub(created[i]))
		}
		if ev.tcp == TCPEstablished {
			estLag = append(estLag, ev.at.Sub(estAt[i]))
		}
	}
	mu.Unlock()
	reportLag(b, "new", newLag)
	reportLag(b, "est", estLag)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "conn/s")
	if l, ok := loadAverage(); ok {
		// the machine's other work: on a shared machine it sets the tail
		b.ReportMetric(l, "load1")
	}
	sa, sb := na.r.Status(), nb.r.Status()
	b.ReportMetric(float64(sa.Sent), "msgs")
	if sa.EventOverflows+sb.EventOverflows > 0 || sb.InjectErrors > 0 {
		b.Logf("A overflows %d, B overflows %d, B inject errors %d, B drops %v", sa.EventOverflows, sb.EventOverflows, sb.InjectErrors, sb.Dropped)
	}
}

// loadAverage reads the one-minute load average.
func loadAverage() (float64, bool) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, false
	}
	f, _, _ := strings.Cut(string(b), " ")
	l, err := strconv.ParseFloat(f, 64)
	return l, err == nil
}

// reportLag reports the p50, p99 and maximum of lags, in ms, named what.
func reportLag(b *testing.B, what string, lags []time.Duration) {
	if len(lags) == 0 {
		b.Fatalf("no %s lags measured", what)
	}
	slices.Sort(lags)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(lags[len(lags)/2]), what+"-p50-ms")
	b.ReportMetric(ms(lags[len(lags)*99/100]), what+"-p99-ms")
	b.ReportMetric(ms(lags[len(lags)-1]), what+"-max-ms")
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
