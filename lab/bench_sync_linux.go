package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"

	"github.com/pfcarp/pfcarp/pfsync"
)

// benchSync measures pfsync on the seed cluster:
//
//   - lag: wrk opens new connections through lb1 at saturation while the
//     bench listens to conntrack's NEW events on lb1 and on lb2; the lag
//     of a connection is the time from its entry on lb1 to its injection
//     on lb2 (both clocks are this machine's);
//   - bulk update: N states are injected into lb1's kernel (the kernel
//     injection rate) while lb2's daemon is stopped, then lb2's daemon
//     starts and the bench times until lb2's kernel holds them all;
//   - RSS of the daemons idle and holding N states.
func benchSync(ctx context.Context, b *Bench, r *Report) error {
	sizes := []int{100000, 1000000}
	if b.Quick {
		sizes = []int{10000}
	}
	for run := 0; run < b.runs(); run++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		b.logf("sync run %d: lag", run+1)
		if err := b.syncLag(ctx, r); err != nil {
			note(r, "sync", "sync lag p99 at saturation", "ms", err.Error())
		}
		if err := Cleanup(b.Dir, b.Prefix, nil); err != nil {
			return err
		}
		b.logf("sync run %d: lag at set rates", run+1)
		if err := b.syncLagRates(ctx, r); err != nil {
			note(r, "sync", "sync lag p99 at the highest sustained rate", "ms", err.Error())
		}
		if err := Cleanup(b.Dir, b.Prefix, nil); err != nil {
			return err
		}
		for _, n := range sizes {
			b.logf("sync run %d: bulk %d", run+1, n)
			if err := b.syncBulk(ctx, r, n); err != nil {
				note(r, "sync", fmt.Sprintf("bulk update %d states", n), "s", err.Error())
			}
			if err := Cleanup(b.Dir, b.Prefix, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

type flowKey struct {
	src, dst     netip.Addr
	sport, dport uint16
	proto        uint8
}

func keyOf(f *conntrack.Flow) flowKey {
	t := f.TupleOrig
	return flowKey{t.IP.SourceAddress, t.IP.DestinationAddress, t.Proto.SourcePort, t.Proto.DestinationPort, t.Proto.Protocol}
}

// newEvents listens to conntrack NEW events in node and timestamps them
// on arrival; stop ends it and returns what arrived, or the error that
// ended the subscription early (the events after it were lost).
func newEvents(l *Lab, node string) (stop func() (map[flowKey]time.Time, error), err error) {
	var c *conntrack.Conn
	if err := l.InNode(node, func() error { var err error; c, err = conntrack.Dial(nil); return err }); err != nil {
		return nil, err
	}
	if err := c.SetReadBuffer(16 << 20); err != nil {
		c.Close()
		return nil, fmt.Errorf("conntrack events in %s: receive buffer: %w", node, err)
	}
	evs := make(chan conntrack.Event, 1<<16)
	errc, err := c.Listen(evs, 1, []netfilter.NetlinkGroup{netfilter.GroupCTNew})
	if err != nil {
		c.Close()
		return nil, err
	}
	seen := map[flowKey]time.Time{}
	var mu sync.Mutex
	var lost error // set before done is closed
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			case ev := <-evs:
				if ev.Flow != nil {
					k := keyOf(ev.Flow)
					mu.Lock()
					if _, ok := seen[k]; !ok {
						seen[k] = time.Now()
					}
					mu.Unlock()
				}
			case err := <-errc:
				lost = fmt.Errorf("conntrack events in %s: %w", node, err)
				return
			}
		}
	}()
	return func() (map[flowKey]time.Time, error) {
		close(quit)
		<-done
		c.Close()
		mu.Lock()
		defer mu.Unlock()
		return seen, lost
	}, nil
}

// servingCluster starts pfcarp's seed cluster and waits until the
// external VIP answers on port 80.
func (b *Bench) servingCluster(ctx context.Context) (*Lab, netip.Addr, error) {
	l, err := b.pfcarpCluster(ctx, true)
	if err != nil {
		return nil, netip.Addr{}, err
	}
	vip := l.extVIP()
	return l, vip, waitTCP(ctx, l, "client", netip.AddrPortFrom(vip, 80), 5*time.Second)
}

func (b *Bench) syncLag(ctx context.Context, r *Report) error {
	wrk, err := lookTool("wrk", "wrk")
	if err != nil {
		return err
	}
	l, vip, err := b.servingCluster(ctx)
	if err != nil {
		return err
	}
	stop1, err := newEvents(l, "lb1")
	if err != nil {
		return err
	}
	stop2, err := newEvents(l, "lb2")
	if err != nil {
		_, _ = stop1() // the first error is the one to report
		return err
	}
	ld := b.fwdLoad()
	out, werr := runOut(ctx, l, "client", wrk, "--latency", "-t", strconv.Itoa(ld.threads), "-c", strconv.Itoa(ld.connsNew),
		"-d", strconv.Itoa(int(ld.dur.Seconds()))+"s", "-H", "Connection: close", "http://"+netip.AddrPortFrom(vip, 80).String()+"/")
	time.Sleep(500 * time.Millisecond) // the last flushes (pfsync's flush interval is 10 ms)
	on1, err1 := stop1()
	on2, err2 := stop2()
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	if werr != nil {
		return werr
	}
	var lags []time.Duration
	missing := 0
	for k, t1 := range on1 {
		if k.dst != vip {
			continue
		}
		if t2, ok := on2[k]; ok {
			lags = append(lags, t2.Sub(t1))
		} else {
			missing++
		}
	}
	if len(lags) == 0 {
		return fmt.Errorf("no connection of lb1 reached lb2 (%d on lb1)", len(on1))
	}
	if w, err := ParseWrk(bytes.NewReader(out)); err == nil {
		add(r, "sync", "sync lag: new conn/s of the load", "conn/s", w.RPS)
	}
	add(r, "sync", "sync lag p50 at saturation", "ms", ms(Percentile(lags, 50)))
	add(r, "sync", "sync lag p99 at saturation", "ms", ms(Percentile(lags, 99)))
	if missing > 0 {
		note(r, "sync", "sync lag p99 at saturation", "ms", fmt.Sprintf("%d of %d connections not seen on lb2 (ended before the sync or lost events)", missing, missing+len(lags)))
	}
	return nil
}

// lagRates are the open-loop rates (new connections/s) of syncLagRates,
// tried in order until one is not sustained.
var lagRates = []float64{500, 1000, 1500, 2000, 2500, 3000, 4000, 5000}

// lagRateFor is how long each rate of syncLagRates runs (--quick: 2 s).
func (b *Bench) lagRateFor() time.Duration {
	if b.Quick {
		return 2 * time.Second
	}
	return 5 * time.Second
}

// syncLagRates measures the sync lag at set rates rather than at
// saturation (where the offered load exceeds what the two cores forward
// and every queue grows, the lag with them): an open-loop load of 1 s
// streams, each checked byte for byte, at each rate of lagRates in turn
// until a rate is not sustained (a connection failed, or the generator
// fell behind its schedule by more than 50 ms). It reports the lag at
// every rate tried and, as the figure, p50/p99 at the highest
// rate sustained.
func (b *Bench) syncLagRates(ctx context.Context, r *Report) error {
	l, vip, err := b.servingCluster(ctx)
	if err != nil {
		return err
	}
	rates := lagRates
	if b.Quick {
		rates = rates[:4]
	}
	best := -1.0
	var bestLags []time.Duration
	for _, rate := range rates {
		if err := ctx.Err(); err != nil {
			return err
		}
		lags, sum, late, err := b.lagAtRate(l, vip, rate)
		if err != nil {
			return err
		}
		name := fmt.Sprintf("sync lag p99 at %.0f new conn/s (open loop)", rate)
		if len(lags) > 0 {
			add(r, "sync", name, "ms", ms(Percentile(lags, 99)))
		}
		sustained := sum.Failed() == 0 && late <= 50*time.Millisecond && len(lags) > 0
		b.logf("sync lag at %.0f/s: %d conns, %d failed, generator %v late, %d lags, p99 %.2f ms",
			rate, sum.Conns, sum.Failed(), late.Round(time.Millisecond), len(lags), ms(Percentile(lags, 99)))
		if !sustained {
			note(r, "sync", name, "ms", fmt.Sprintf("not sustained: %d of %d failed (%s), generator %v behind", sum.Failed(), sum.Conns, sum.Others(), late.Round(time.Millisecond)))
			break
		}
		best, bestLags = rate, lags
	}
	if best < 0 {
		return fmt.Errorf("no rate of %v was sustained", rates)
	}
	add(r, "sync", "highest sustained rate (open loop, 0 failed)", "conn/s", best)
	add(r, "sync", "sync lag p50 at the highest sustained rate", "ms", ms(Percentile(bestLags, 50)))
	add(r, "sync", "sync lag p99 at the highest sustained rate", "ms", ms(Percentile(bestLags, 99)))
	if best == rates[len(rates)-1] {
		note(r, "sync", "highest sustained rate (open loop, 0 failed)", "conn/s", "the highest rate tried: the lab may sustain more")
	}
	return nil
}

// lagAtRate runs one open-loop load at rate through vip and returns the
// lag of each of its connections that reached lb2, the load's summary and
// how far the generator fell behind its schedule. The lag is read from
// the kernels, not from event listeners in this (busy) process: with
// nf_conntrack_timestamp on, each entry's start is when the kernel
// confirmed it, on lb1 the first packet's, on lb2 pfsync's write; both
// are this machine's real-time clock.
func (b *Bench) lagAtRate(l *Lab, vip netip.Addr, rate float64) ([]time.Duration, LoadSummary, time.Duration, error) {
	for _, n := range []string{"lb1", "lb2"} {
		if err := l.InNode(n, func() error {
			return os.WriteFile("/proc/sys/net/netfilter/nf_conntrack_timestamp", []byte("1\n"), 0o644)
		}); err != nil {
			return nil, LoadSummary{}, 0, fmt.Errorf("%s: conntrack timestamps: %w", n, err)
		}
	}
	before := b.daemonLag(l, "lb2")
	ld, err := l.StartLoad(LoadOptions{URL: "http://" + vip.String(), Rate: rate, Duration: b.lagRateFor(), StreamSeconds: 1})
	if err != nil {
		return nil, LoadSummary{}, 0, err
	}
	conns := ld.Wait()
	time.Sleep(200 * time.Millisecond) // the last flushes (pfsync's flush interval is 10 ms)
	if after := b.daemonLag(l, "lb2"); after.Count > before.Count {
		d := after
		for i := range d.Counts {
			d.Counts[i] -= before.Counts[i]
		}
		d.Count -= before.Count
		b.logf("sync lag at %.0f/s as lb2's daemon measures it (lb1's engine taking the event in -> lb2's kernel write): p50 <= %v, p99 <= %v of %d",
			rate, d.Quantile(0.5), d.Quantile(0.99), d.Count)
	}
	on1, err := ctStarts(l, "lb1")
	if err != nil {
		return nil, LoadSummary{}, 0, err
	}
	on2, err := ctStarts(l, "lb2")
	if err != nil {
		return nil, LoadSummary{}, 0, err
	}
	var lags []time.Duration
	for _, c := range conns {
		if !c.Local.IsValid() {
			continue
		}
		k := flowKey{c.Local.Addr(), vip, c.Local.Port(), 80, 6}
		t1, ok1 := on1[k]
		t2, ok2 := on2[k]
		// an entry older than the connection is another one's (a reused
		// port), not this connection's
		if ok1 && ok2 && !t1.Before(c.Start.Add(-time.Second)) {
			lags = append(lags, t2.Sub(t1))
		}
	}
	return lags, Summarize(conns, time.Time{}), ld.Lag(), nil
}

// daemonLag reads node's sync lag histogram (zero when it cannot).
func (b *Bench) daemonLag(l *Lab, node string) pfsync.Lag {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := l.DaemonStatus(ctx, node)
	if err != nil || st.Pfsync == nil {
		return pfsync.Lag{}
	}
	return st.Pfsync.SyncLag
}

// ctStarts reads node's conntrack table: each entry's start (kernel
// timestamp) by tuple.
func ctStarts(l *Lab, node string) (map[flowKey]time.Time, error) {
	var flows []conntrack.Flow
	err := l.InNode(node, func() error {
		c, err := conntrack.Dial(nil)
		if err != nil {
			return err
		}
		defer c.Close()
		flows, err = c.Dump(nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: conntrack dump: %w", node, err)
	}
	m := make(map[flowKey]time.Time, len(flows))
	for i := range flows {
		if st := flows[i].Timestamp.Start; !st.IsZero() {
			m[keyOf(&flows[i])] = st
		}
	}
	return m, nil
}

// benchState is the i-th injected state: a redirected connection to the
// VIP's port 80, answered by s1; distinct for every i below 2^17 * 64511.
func benchState(i int, vip, s1 netip.Addr) pfsync.State {
	// RFC 2544's benchmarking range, 198.18.0.0/15 (2^17 addresses), then
	// the next source port: the states are written, never sent to
	a := i % (1 << 17)
	src := netip.AddrFrom4([4]byte{198, 18 + byte(a>>16), byte(a >> 8), byte(a)})
	sport := uint16(1024 + i/(1<<17))
	return pfsync.State{Proto: 6,
		Status:  pfsync.StatusSeenReply | pfsync.StatusAssured | pfsync.StatusDstNAT | pfsync.StatusConfirmed,
		Orig:    pfsync.Tuple{Src: src, Dst: vip, SrcPort: sport, DstPort: 80},
		Reply:   pfsync.Tuple{Src: s1, Dst: src, SrcPort: 80, DstPort: sport},
		Timeout: 3600,
		TCP:     pfsync.TCPInfo{State: pfsync.TCPEstablished, WScale: [2]uint8{7, 7}, Flags: [2]uint8{3, 3}}}
}

// ctCount reads node's nf_conntrack_count.
func ctCount(l *Lab, node string) (int, error) {
	return readIntIn(l, node, "/proc/sys/net/netfilter/nf_conntrack_count")
}

func readIntIn(l *Lab, node, path string) (int, error) {
	var n int
	err := l.InNode(node, func() error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err
	})
	return n, err
}

// rssMB returns the resident set of pid in MiB.
func rssMB(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseFloat(f[1], 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

func (l *Lab) daemonPID(node string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st.Nodes[node].DaemonProc.PID
}

func (b *Bench) syncBulk(ctx context.Context, r *Report, n int) error {
	name := fmt.Sprintf("bulk update %d states", n)
	l, err := b.pfcarpCluster(ctx, true)
	if err != nil {
		return err
	}
	max, err := readIntIn(l, "lb1", "/proc/sys/net/netfilter/nf_conntrack_max")
	if err != nil {
		return err
	}
	if n+1000 > max {
		note(r, "sync", name, "s", fmt.Sprintf("not measured: the kernel holds at most net.netfilter.nf_conntrack_max=%d entries per namespace (a host sysctl, read-only inside namespaces; the bench does not change it: raise it to measure)", max))
		return nil
	}
	if err := l.StopDaemon("lb2", 5*time.Second); err != nil {
		return err
	}
	if pid := l.daemonPID("lb1"); pid > 0 {
		if v, err := rssMB(pid); err == nil {
			add(r, "sync", "daemon RSS idle (lb1)", "MiB", v)
		}
	}
	s1, _ := l.plan.Addr("s1", "eth0")
	vip := l.extVIP()
	var ct *pfsync.Conntrack
	if err := l.InNode("lb1", func() error { var err error; ct, err = pfsync.DialConntrack(); return err }); err != nil {
		return err
	}
	t0 := time.Now()
	for i := 0; i < n; i++ {
		s := benchState(i, vip, s1)
		if err := ct.Inject(&s); err != nil {
			ct.Close()
			return fmt.Errorf("inject state %d: %w", i, err)
		}
	}
	inj := time.Since(t0)
	ct.Close()
	add(r, "sync", fmt.Sprintf("kernel injection %d states", n), "states/s", float64(n)/inj.Seconds())
	// lb2 comes back and asks lb1 for a bulk update.
	base, err := ctCount(l, "lb2")
	if err != nil {
		return err
	}
	t0 = time.Now()
	if err := l.StartDaemon("lb2"); err != nil {
		return err
	}
	deadline := t0.Add(60 * time.Second)
	for {
		c, err := ctCount(l, "lb2")
		if err != nil {
			return err
		}
		if c-base >= n {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("lb2 holds %d of %d states after 60 s", c-base, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	add(r, "sync", name, "s", time.Since(t0).Seconds())
	note(r, "sync", name, "s", "from lb2's daemon start to its kernel holding them all")
	for _, node := range []string{"lb1", "lb2"} {
		if pid := l.daemonPID(node); pid > 0 {
			if v, err := rssMB(pid); err == nil {
				add(r, "sync", fmt.Sprintf("daemon RSS holding %d states (%s)", n, node), "MiB", v)
			}
		}
	}
	return nil
}
