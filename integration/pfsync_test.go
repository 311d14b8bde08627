//go:build linux

package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pfcarp/pfcarp/lab"
	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/pfsync"
)

// Issue 6, item 6, in the lab with the seed's files and addresses: long
// TCP streams through the external VIP (rdr round-robin sticky-address to
// s1/s2) survive a pulled cable and its return, a kill -9 of lb1's daemon
// and a cut-then-healed sync link; sticky clients keep their server;
// outbound NAT survives only when it targets the CARP address.
func TestSeedClusterPfsync(t *testing.T) {
	l := upLab(t, lab.Options{Seed: true})
	p := l.Plan()
	ext, _ := p.Segment(lab.SegExternal)
	clients := p.ClientAddrs()
	vipURL := fmt.Sprintf("http://%s", ext.VIP)

	t0 := time.Now()
	waitCARP(t, l, 15*time.Second, map[string]string{"lb1": "MASTER", "lb2": "BACKUP"})
	for _, n := range []string{"lb1", "lb2"} {
		waitFor(t, 10*time.Second, n+"'s first bulk update", func() bool {
			ps := status(t, l, n).Pfsync
			return ps != nil && ps.BulkDone >= 1 && ps.Bulk == "idle"
		})
	}
	t.Logf("start: lb1 MASTER, lb2 BACKUP, both bulk updates done %s after up", ms(time.Since(t0)))

	// Sticky bindings, made in an order lb2's own round-robin would not
	// repeat: the second and third clients first.
	bound := map[netip.Addr]int{}
	for _, c := range []netip.Addr{clients[1], clients[0], clients[2]} {
		bound[c] = greeting(t, l, c, vipURL)
	}
	t.Logf("sticky: %v", bound)
	waitFor(t, 3*time.Second, "lb2 to hold lb1's sticky bindings", func() bool {
		return sameBindings(stickyMap(t, l, "lb1"), stickyMap(t, l, "lb2")) && len(stickyMap(t, l, "lb2")) == len(clients)
	})
	checkSticky := func(when string) {
		t.Helper()
		// The first client first: a node without the bindings would give
		// it the first server.
		for _, c := range clients {
			if got := greeting(t, l, c, vipURL); got != bound[c] {
				t.Errorf("%s: client %s reached server %d, bound to %d", when, c, got, bound[c])
			}
		}
	}

	// 1. Pull lb1's external cable under 200 streams, then plug it back.
	// Outbound connections from s1, NATed to lb1's own address (the
	// seed's `-> $ext_if`), run at the same time.
	out := startOutsideServer(t, l, clients[0])
	const n = 200
	set := startStreams(t, l, clients, vipURL, n, 12, 16384)
	natSeed := startNATStreams(t, l, out, 3, 12, 16384)
	waitSynced(t, l, set, natSeed)
	time.Sleep(time.Second) // some bytes before the failure (not a sync: a measurement window)
	tPull := time.Now()
	if err := l.SetCable("lb1", "eth0", false); err != nil {
		t.Fatal(err)
	}
	tMaster := waitCARP(t, l, 6*time.Second, map[string]string{"lb2": "MASTER"})
	t.Logf("cable pull: lb2 MASTER %s after the pull", ms(tMaster.Sub(tPull)))
	checkSticky("after the cable pull (via lb2)")
	time.Sleep(2 * time.Second)
	tPlug := time.Now()
	natSeedStuck := natSeed.progressSince(tMaster.Add(500 * time.Millisecond))
	if err := l.SetCable("lb1", "eth0", true); err != nil {
		t.Fatal(err)
	}
	tBack := waitCARP(t, l, 6*time.Second, map[string]string{"lb1": "MASTER", "lb2": "BACKUP"})
	assertBulkBeforeMaster(t, l, "lb1", tPlug)
	t.Logf("cable restored: lb1 MASTER again %s after the plug", ms(tBack.Sub(tPlug)))
	checkSticky("after the cable returned (via lb1)")
	set.wait(t, "cable pull and return", tPull, tPlug)
	natSeed.stop()
	if natSeedStuck > 0 {
		t.Errorf("outbound NAT to lb1's own address: %d reads of data at s1 while lb2 was master; there can be none", natSeedStuck)
	} else {
		t.Logf("outbound NAT -> $ext_if (lb1's own address): no byte reached s1 for %s while lb2 was master: "+
			"replies go to lb1's address, which does not move; this is why `pfcarp check` flags nat to a non-CARP address",
			ms(tPlug.Sub(tMaster.Add(500*time.Millisecond))))
	}

	// 2. kill -9 lb1's daemon: the kernel keeps its state and addresses,
	// CARP moves to lb2; started again, lb1 takes over after its bulk
	// update.
	// While carp1 has moved to lb2 and carp0 not yet, the dead daemon's
	// kernel on lb1 still receives the clients' ACKs for data lb2
	// forwarded: outside its entries' windows, ct-invalid, dropped by
	// hook_in (compile's "Invalid packets"), not answered with RST.
	t.Run("kill -9", func(t *testing.T) {
		killPhase(t, l, clients, vipURL, n, checkSticky)
	})
	// lb2's eth2 and its switch port have the same ifindex, so the kernel
	// reports its carrier changes late and a short cut as one "up": the
	// sync link watch compares the carrier-up count.
	t.Run("sync cut and heal", func(t *testing.T) {
		syncPhase(t, l, clients, vipURL)
	})

	// 4. Outbound NAT to the CARP address survives the cable pull.
	natCarpPhase(t, l, out)
}

func killPhase(t *testing.T, l *lab.Lab, clients []netip.Addr, vipURL string, n int, checkSticky func(string)) {
	set := startStreams(t, l, clients, vipURL, n, 10, 16384)
	waitSynced(t, l, set)
	time.Sleep(time.Second)
	tKill := time.Now()
	if err := l.KillDaemon("lb1"); err != nil {
		t.Fatal(err)
	}
	tMaster := waitCARP(t, l, 6*time.Second, map[string]string{"lb2": "MASTER"})
	t.Logf("kill -9 lb1: lb2 MASTER %s after the kill", ms(tMaster.Sub(tKill)))
	tStart := time.Now()
	if err := l.StartDaemon("lb1"); err != nil {
		t.Fatal(err)
	}
	tBack := waitCARP(t, l, 10*time.Second, map[string]string{"lb1": "MASTER", "lb2": "BACKUP"})
	assertBulkBeforeMaster(t, l, "lb1", tStart)
	t.Logf("lb1 restarted: MASTER again %s after the start", ms(tBack.Sub(tStart)))
	set.wait(t, "kill -9 and restart", tKill, tStart)
	checkSticky("after lb1's restart")
}

func syncPhase(t *testing.T, l *lab.Lab, clients []netip.Addr, vipURL string) {
	// 3. Cut the sync link, open a connection lb2 cannot hear of, heal:
	// both nodes run a bulk update after the heal, lb2 learns the new
	// flow, and the master is not demoted (no flap).
	before := map[string]uint64{}
	trans := map[string]uint64{}
	for _, nd := range []string{"lb1", "lb2"} {
		st := status(t, l, nd)
		before[nd] = st.Pfsync.BulkDone
		for _, g := range st.CARP {
			trans[nd] += g.Transitions
		}
	}
	if err := l.CutSync(); err != nil {
		t.Fatal(err)
	}
	during := startStreams(t, l, clients[:1], vipURL, 1, 4, 16384)
	time.Sleep(500 * time.Millisecond)
	tHeal := time.Now()
	if err := l.HealSync(); err != nil {
		t.Fatal(err)
	}
	for _, nd := range []string{"lb1", "lb2"} {
		waitFor(t, 8*time.Second, nd+"'s bulk update after the sync link healed", func() bool {
			ps := status(t, l, nd).Pfsync
			return ps.BulkDone > before[nd] && ps.Bulk == "idle"
		})
		ps := status(t, l, nd).Pfsync
		t.Logf("sync heal: %s bulk update done %s after the heal, %d states in %s",
			nd, ms(ps.LastBulkEnd.Sub(tHeal)), ps.LastBulkStates, ms(ps.LastBulkDuration))
		if ps.LastBulkEnd.Before(tHeal) {
			t.Errorf("%s: last bulk update ended %v, before the heal %v", nd, ps.LastBulkEnd, tHeal)
		}
	}
	if st := status(t, l, "lb2").Pfsync; st.LastBulkStates < 1 {
		t.Errorf("lb2's bulk update after the heal carried %d states, want the flow opened during the cut", st.LastBulkStates)
	}
	during.wait(t, "stream begun during the sync cut", tHeal)
	for _, nd := range []string{"lb1", "lb2"} {
		var tr uint64
		for _, g := range status(t, l, nd).CARP {
			tr += g.Transitions
		}
		if tr != trans[nd] {
			t.Errorf("%s: %d CARP transitions during the sync cut and heal, want none", nd, tr-trans[nd])
		}
	}

}

func natCarpPhase(t *testing.T, l *lab.Lab, out *outside) {
	for _, nd := range []string{"lb1", "lb2"} {
		pf, err := os.ReadFile(filepath.Join(l.NodeDir(nd), "pf.conf"))
		if err != nil {
			t.Fatal(err)
		}
		v := bytes.Replace(pf, []byte("to any -> $ext_if"), []byte("to any -> $ext_carp"), 1)
		if bytes.Equal(v, pf) {
			t.Fatalf("%s: pf.conf has no `-> $ext_if` nat rule to change", nd)
		}
		if err := os.WriteFile(filepath.Join(l.NodeDir(nd), "pf.conf"), v, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(status(t, l, nd).PID, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	for _, nd := range []string{"lb1", "lb2"} {
		waitFor(t, 5*time.Second, nd+" to reload pf.conf", func() bool {
			b, _ := os.ReadFile(filepath.Join(l.NodeDir(nd), "daemon.log"))
			return strings.Count(string(b), "pf rules loaded") >= 2
		})
	}
	natCarp := startNATStreams(t, l, out, 3, 8, 16384)
	waitSynced(t, l, natCarp)
	time.Sleep(time.Second)
	tPull := time.Now()
	if err := l.SetCable("lb1", "eth0", false); err != nil {
		t.Fatal(err)
	}
	tMaster := waitCARP(t, l, 6*time.Second, map[string]string{"lb2": "MASTER"})
	natCarp.wait(t, "outbound NAT -> $ext_carp, cable pull", tPull)
	t.Logf("outbound NAT -> $ext_carp: the connections completed through lb2 (MASTER %s after the pull)", ms(tMaster.Sub(tPull)))
	if err := l.SetCable("lb1", "eth0", true); err != nil {
		t.Fatal(err)
	}
	waitCARP(t, l, 6*time.Second, map[string]string{"lb1": "MASTER", "lb2": "BACKUP"})
}

// greeting fetches / from the VIP from client address c and returns the
// server number that answered.
func greeting(t *testing.T, l *lab.Lab, c netip.Addr, url string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	body, err := l.Get(ctx, "client", c, url+"/")
	if err != nil {
		t.Fatalf("GET / from %s: %v", c, err)
	}
	var n int
	if _, err := fmt.Sscanf(body, "hi, this is No.%d server", &n); err != nil {
		t.Fatalf("GET / from %s: %q", c, body)
	}
	return n
}

// stickyMap reads node's sticky-address bindings from its kernel.
func stickyMap(t *testing.T, l *lab.Lab, node string) map[netip.Addr]netip.Addr {
	t.Helper()
	var els []nft.StickyElem
	err := l.InNode(node, func() error {
		var err error
		els, err = nft.Open().StickyElems()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	m := map[netip.Addr]netip.Addr{}
	for _, e := range els {
		m[e.Source] = e.Backend
	}
	return m
}

func sameBindings(a, b map[netip.Addr]netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// waitSynced waits until every stream of sets has its conntrack entry in
// lb2's kernel (injected by pfsync), so a failover now finds them there.
func waitSynced(t *testing.T, l *lab.Lab, sets ...*streamSet) {
	t.Helper()
	want := map[netip.AddrPort]bool{}
	for _, set := range sets {
		for _, s := range set.streams {
			want[s.local] = true
		}
	}
	var missing int
	waitFor(t, 5*time.Second, "lb2 to hold the streams' states", func() bool {
		var states []pfsync.State
		if err := l.InNode("lb2", func() error {
			ct, err := pfsync.DialConntrack()
			if err != nil {
				return err
			}
			defer ct.Close()
			states, err = ct.Dump(nil)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		have := map[netip.AddrPort]bool{}
		for _, st := range states {
			if st.TCP.State == pfsync.TCPEstablished {
				have[netip.AddrPortFrom(st.Orig.Src, st.Orig.SrcPort)] = true
			}
		}
		missing = 0
		for ap := range want {
			if !have[ap] {
				missing++
			}
		}
		if missing > 0 {
			ps := status(t, l, "lb2").Pfsync
			t.Logf("lb2: %d streams not established there; pfsync states %d received %d inject errors %d stale %d resync repairs %d",
				missing, ps.States, ps.StatesReceived, ps.InjectErrors, ps.Stale, ps.ResyncRepairs)
		}
		return missing == 0
	})
	ps, ps1 := status(t, l, "lb2").Pfsync, status(t, l, "lb1").Pfsync
	t.Logf("lb2 holds every stream's state; pfsync stale updates %d resync repairs %d (lb1: %d, %d)", ps.Stale, ps.ResyncRepairs, ps1.Stale, ps1.ResyncRepairs)
}

// assertBulkBeforeMaster checks that node's last bulk update completed
// after since and before its carp groups became MASTER.
func assertBulkBeforeMaster(t *testing.T, l *lab.Lab, node string, since time.Time) {
	t.Helper()
	st := status(t, l, node)
	ps := st.Pfsync
	if ps.LastBulkEnd.Before(since) {
		t.Errorf("%s: no bulk update completed since %v (last %v)", node, since.Format(time.StampMilli), ps.LastBulkEnd)
		return
	}
	for _, g := range st.CARP {
		if g.Last == nil || g.Last.To != "MASTER" {
			t.Errorf("%s %s: last transition %+v, want to MASTER", node, g.Name, g.Last)
			continue
		}
		if g.Last.At.Before(ps.LastBulkEnd) {
			t.Errorf("%s %s: MASTER at %s, before its bulk update ended at %s", node, g.Name,
				g.Last.At.Format(time.StampMilli), ps.LastBulkEnd.Format(time.StampMilli))
		} else {
			t.Logf("%s %s: bulk update (%d states, %s) ended %s before it became MASTER", node, g.Name,
				ps.LastBulkStates, ms(ps.LastBulkDuration), ms(g.Last.At.Sub(ps.LastBulkEnd)))
		}
	}
}

// stream is one long GET whose reads are timed.
type stream struct {
	src    netip.Addr
	local  netip.AddrPort // the connection's source address and port
	server int
	want   int64
	mu     sync.Mutex
	got    int64
	reads  []time.Time
	err    error
}

// trace records the connection's local address in s.local.
func (s *stream) trace(ctx context.Context) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) {
		if a, ok := ci.Conn.LocalAddr().(*net.TCPAddr); ok {
			s.local = a.AddrPort()
		}
	}})
}

// timedReader records when bytes arrive.
type timedReader struct {
	r io.Reader
	s *stream
}

func (tr *timedReader) Read(p []byte) (int, error) {
	n, err := tr.r.Read(p)
	if n > 0 {
		tr.s.mu.Lock()
		tr.s.got += int64(n)
		tr.s.reads = append(tr.s.reads, time.Now())
		tr.s.mu.Unlock()
	}
	return n, err
}

// streamSet is a group of concurrent streams.
type streamSet struct {
	streams []*stream
	wg      sync.WaitGroup
	cancel  context.CancelFunc
}

// startStreams opens n GET /stream?seconds=secs&rate=rate to url, the
// source addresses taken in turn from srcs, and returns once all have
// their response header.
func startStreams(t *testing.T, l *lab.Lab, srcs []netip.Addr, url string, n, secs int, rate int64) *streamSet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs)*time.Second+30*time.Second)
	set := &streamSet{cancel: cancel}
	t.Cleanup(set.stop)
	started := make(chan error, n)
	for i := 0; i < n; i++ {
		s := &stream{src: srcs[i%len(srcs)], want: int64(secs) * rate}
		set.streams = append(set.streams, s)
		set.wg.Add(1)
		go func() {
			defer set.wg.Done()
			c := l.HTTPClient("client", s.src)
			c.Timeout = 0
			req, _ := http.NewRequestWithContext(s.trace(ctx), http.MethodGet, fmt.Sprintf("%s/stream?seconds=%d&rate=%d", url, secs, rate), nil)
			resp, err := c.Do(req)
			if err != nil {
				s.err = err
				started <- err
				return
			}
			defer resp.Body.Close()
			s.server, _ = strconv.Atoi(resp.Header.Get("X-Lab-Server"))
			started <- nil
			s.err = lab.VerifyContent(&timedReader{r: resp.Body, s: s}, s.want)
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-started; err != nil {
			t.Fatalf("starting stream: %v", err)
		}
	}
	return set
}

func (set *streamSet) stop() {
	set.cancel()
	set.wg.Wait()
}

// wait waits for every stream and checks each completed with its exact
// byte count and no error; it reports the longest stall (the longest gap
// between two reads) overall and around each event: a gap that ends after
// the event and begins less than 10 s after it.
func (set *streamSet) wait(t *testing.T, what string, events ...time.Time) {
	t.Helper()
	set.wg.Wait()
	var failed []string
	var worst time.Duration
	around := make([]time.Duration, len(events))
	servers := map[int]int{}
	for _, s := range set.streams {
		servers[s.server]++
		if s.err != nil || s.got != s.want {
			at := ""
			if len(s.reads) > 0 && len(events) > 0 {
				at = fmt.Sprintf(" (last data %s after the first event)", ms(s.reads[len(s.reads)-1].Sub(events[0])))
			}
			failed = append(failed, fmt.Sprintf("%s (server %d): %d of %d bytes%s: %v", s.src, s.server, s.got, s.want, at, s.err))
			continue
		}
		for i := 1; i < len(s.reads); i++ {
			a, b := s.reads[i-1], s.reads[i]
			worst = max(worst, b.Sub(a))
			for j, ev := range events {
				if b.After(ev) && a.Before(ev.Add(10*time.Second)) {
					around[j] = max(around[j], b.Sub(a))
				}
			}
		}
	}
	sort.Strings(failed)
	broke := len(failed)
	if broke > 0 {
		if broke > 8 {
			failed = append(failed[:8], fmt.Sprintf("... and %d more", broke-8))
		}
		t.Errorf("%s: %d of %d streams broke:\n%s", what, broke, len(set.streams), strings.Join(failed, "\n"))
	}
	ev := make([]string, len(around))
	for i, d := range around {
		ev[i] = ms(d)
	}
	t.Logf("%s: %d of %d streams complete with the exact bytes (servers %v); longest stall %s; around each event: %s",
		what, len(set.streams)-broke, len(set.streams), servers, ms(worst), strings.Join(ev, ", "))
}

// progressSince reports how many reads returned data since t.
func (set *streamSet) progressSince(t time.Time) (n int64) {
	for _, s := range set.streams {
		s.mu.Lock()
		for _, r := range s.reads {
			if r.After(t) {
				n++
			}
		}
		s.mu.Unlock()
	}
	return n
}

// outside is a web server outside the cluster, on the client segment.
type outside struct {
	addr netip.AddrPort
	srv  *http.Server
	done chan struct{}
}

// startOutsideServer runs a lab backend (No.9) on addr:8080 in the client
// node, for connections the servers open through the balancers' NAT.
func startOutsideServer(t *testing.T, l *lab.Lab, addr netip.Addr) *outside {
	t.Helper()
	o := &outside{addr: netip.AddrPortFrom(addr, 8080), done: make(chan struct{})}
	var ln net.Listener
	if err := l.InNode("client", func() error {
		var err error
		ln, err = net.Listen("tcp", o.addr.String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	o.srv = &http.Server{Handler: lab.NewBackend(9)}
	go func() { defer close(o.done); o.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := o.srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Logf("outside server: %v", err)
		}
		o.srv.Close()
		<-o.done
	})
	return o
}

// startNATStreams opens n streams from s1 to the outside server: their
// packets leave through the master's outbound nat rule.
func startNATStreams(t *testing.T, l *lab.Lab, o *outside, n, secs int, rate int64) *streamSet {
	t.Helper()
	s1, _ := l.Plan().Addr("s1", "eth0")
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs)*time.Second+30*time.Second)
	set := &streamSet{cancel: cancel}
	t.Cleanup(set.stop)
	started := make(chan error, n)
	url := fmt.Sprintf("http://%s/stream?seconds=%d&rate=%d", o.addr, secs, rate)
	for i := 0; i < n; i++ {
		s := &stream{src: s1, want: int64(secs) * rate}
		set.streams = append(set.streams, s)
		set.wg.Add(1)
		go func() {
			defer set.wg.Done()
			c := l.HTTPClient("s1", s1)
			c.Timeout = 0
			req, _ := http.NewRequestWithContext(s.trace(ctx), http.MethodGet, url, nil)
			resp, err := c.Do(req)
			if err != nil {
				s.err = err
				started <- err
				return
			}
			defer resp.Body.Close()
			s.server, _ = strconv.Atoi(resp.Header.Get("X-Lab-Server"))
			started <- nil
			s.err = lab.VerifyContent(&timedReader{r: resp.Body, s: s}, s.want)
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-started; err != nil {
			t.Fatalf("starting an outbound stream from s1: %v", err)
		}
	}
	return set
}
