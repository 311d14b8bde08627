//go:build linux

package integration

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/pfcarp/pfcarp/lab"
)

// faultPrefix names TestFaultMatrix's namespaces, apart from the other
// integration tests' (labPrefix).
const faultPrefix = "pfft-"

// The shape of every run of the matrix: new connections for loadFor, each
// a streamSecs stream, long streams across the whole run, the fault at
// faultAt.
const (
	faultAt    = 5 * time.Second
	loadFor    = 10 * time.Second
	streamSecs = 3
	streamRate = 16384
	longs      = 3
	longSecs   = 13
	// rateEnv overrides the default rate of new connections per second.
	rateEnv     = "PFCARP_FAULT_RATE"
	defaultRate = 300
	// logsEnv names a directory to copy each case's daemon logs into.
	logsEnv = "PFCARP_FAULT_LOGS"
)

// faultStep is one action of a fault, at its offset into the load.
type faultStep struct {
	at   time.Duration
	name string
	do   func(t *testing.T, l *lab.Lab, r *faultRun)
}

// faultCase is one row of the matrix.
type faultCase struct {
	name string
	// setup brings the lab from the baseline (lb1 MASTER, lb2 BACKUP,
	// everything plugged) to the fault's starting point; nil: none.
	setup func(t *testing.T, l *lab.Lab)
	// steps run in order at their offsets; the one named by fault is the
	// reference for "failures by start second".
	steps []faultStep
	fault string
	// apart, when set, picks the connections the protocol cannot save;
	// they are counted apart and never asserted. why says why.
	apart func(c lab.LoadConn, r *faultRun) bool
	why   string
	// check runs after the load has ended, before the lab goes down.
	check func(t *testing.T, l *lab.Lab, r *faultRun)
	// expectZero: every connection (but the apart ones) must end OK; it
	// is set for the faults that pass on main today. known explains the
	// losses of the others.
	expectZero bool
	known      string
}

// faultRun is what happened in one run.
type faultRun struct {
	t0       time.Time            // the load's start
	marks    map[string]time.Time // when each step ran
	takeover time.Duration        // from the fault to the roles a step waited for; 0: none
	row      faultRow
}

// faultRow is one line of the printed table.
type faultRow struct {
	fault       string
	conns, long int
	reset       int
	others      string
	stall       string
	apart       string
	takeover    string
	transitions string
	verdict     string
}

// TestFaultMatrix (issue 10, item 6): an open-loop load of new connections
// through the external VIP (PFCARP_FAULT_RATE a second, default 300, each
// a 3 s stream whose every byte is checked) plus long streams, and one
// fault on lb1 five seconds in; each fault is a subtest on a fresh lab. It
// prints a table: fault, connections, resets, other failures, longest
// stall.
func TestFaultMatrix(t *testing.T) {
	rate := float64(defaultRate)
	if s := os.Getenv(rateEnv); s != "" {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v <= 0 || v > 5000 {
			t.Fatalf("%s=%q: want a number of new connections per second, 0 < rate <= 5000", rateEnv, s)
		}
		rate = v
	}
	var rows []faultRow
	for _, fc := range faultCases() {
		t.Run(fc.name, func(t *testing.T) {
			r := runFault(t, rate, fc)
			rows = append(rows, r.row)
		})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "fault matrix: %.0f new connections/s for %s (each a %d s stream at %d B/s) and %d streams of %d s, fault at %s\n",
		rate, loadFor, streamSecs, streamRate, longs, longSecs, faultAt)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "fault\tconnections (short+long)\treset\tother failures\tlongest stall\tcannot be saved (apart)\ttakeover\tCARP transitions\tverdict")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d+%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.fault, r.conns, r.long, r.reset, r.others, r.stall, r.apart, r.takeover, r.transitions, r.verdict)
	}
	tw.Flush()
	t.Log("\n" + b.String())
	fmt.Print(b.String())
}

func faultCases() []faultCase {
	pull := func(t *testing.T, l *lab.Lab, r *faultRun) {
		if err := l.SetCable("lb1", "eth0", false); err != nil {
			t.Fatal(err)
		}
		r.marks["pulled"] = time.Now()
		r.roles(t, l, 6*time.Second, map[string]string{"lb2": "MASTER"})
	}
	stopped := func(t *testing.T, l *lab.Lab, r *faultRun) {
		r.roles(t, l, 6*time.Second, map[string]string{"lb2": "MASTER"})
	}
	pulled := func(t *testing.T, l *lab.Lab) {
		if err := l.SetCable("lb1", "eth0", false); err != nil {
			t.Fatal(err)
		}
		waitCARP(t, l, 6*time.Second, map[string]string{"lb2": "MASTER"})
	}
	// killLb1 SIGKILLs lb1's daemon and marks when it was gone.
	killLb1 := func(t *testing.T, l *lab.Lab, r *faultRun) {
		if err := l.KillDaemon("lb1"); err != nil {
			t.Fatal(err)
		}
		r.marks["dead"] = time.Now()
	}
	// lastMoment: established in the sync window before lb1 stopped
	// syncing (from 'from' to 'to'): their NEW events were still in lb1's
	// event socket or send queue. Only pfsync's defer saves them (the first
	// packet held until the peer acks the state), and it needs NFQUEUE,
	// which this kernel lacks (pfsync.DeferSupported says so by name).
	lastMoment := func(c lab.LoadConn, from, to time.Time) bool {
		at := established(c)
		return !c.Long && !at.Before(from.Add(-syncWindow)) && !at.After(to)
	}
	return []faultCase{{
		name:  "cable pull",
		steps: []faultStep{{faultAt, "pull lb1 eth0", pull}},
		fault: "pull lb1 eth0",
		// Measured: 0 in seven runs since the lease fix (before it 0-10,
		// opened just before the pull; see the guard's renew).
		expectZero: true,
	}, {
		name:  "failback",
		setup: pulled,
		steps: []faultStep{{faultAt, "plug lb1 eth0", func(t *testing.T, l *lab.Lab, r *faultRun) {
			if err := l.SetCable("lb1", "eth0", true); err != nil {
				t.Fatal(err)
			}
			r.roles(t, l, 10*time.Second, baseline)
		}}},
		fault:      "plug lb1 eth0",
		expectZero: true,
	}, {
		name: "SIGTERM",
		steps: []faultStep{{faultAt, "SIGTERM lb1", func(t *testing.T, l *lab.Lab, r *faultRun) {
			if err := l.StopDaemon("lb1", 5*time.Second); err != nil {
				t.Fatal(err)
			}
			stopped(t, l, r)
		}}},
		fault: "SIGTERM lb1",
		// The daemon bows out, reads events 100 ms more, then flushes
		// pfsync: nothing is in flight when it exits.
		expectZero: true,
	}, {
		name: "SIGKILL",
		steps: []faultStep{{faultAt, "SIGKILL lb1", func(t *testing.T, l *lab.Lab, r *faultRun) {
			killLb1(t, l, r)
			stopped(t, l, r)
		}}},
		fault: "SIGKILL lb1",
		apart: func(c lab.LoadConn, r *faultRun) bool {
			return lastMoment(c, r.marks["SIGKILL lb1"], r.marks["dead"])
		},
		why:        "established in the last moment before the daemon died (unsavable without defer)",
		expectZero: true,
	}, {
		name: "daemon restart",
		steps: []faultStep{{faultAt, "SIGKILL and start lb1", func(t *testing.T, l *lab.Lab, r *faultRun) {
			killLb1(t, l, r)
			if err := l.StartDaemon("lb1"); err != nil {
				t.Fatal(err)
			}
			r.roles(t, l, 15*time.Second, baseline)
		}}},
		fault: "SIGKILL and start lb1",
		apart: func(c lab.LoadConn, r *faultRun) bool {
			return lastMoment(c, r.marks["SIGKILL and start lb1"], r.marks["dead"])
		},
		why: "established in the last moment before the daemon died (unsavable without defer)",
		// 0 in four matrix runs on a quiet lab since the preempt wait, and
		// on a loaded one since the paced bulk update (the restarted node
		// holds the peer's table before it preempts).
		expectZero: true,
	}, {
		name: "sync cut, then master failure",
		steps: []faultStep{
			{faultAt - 1500*time.Millisecond, "cut sync", func(t *testing.T, l *lab.Lab, r *faultRun) {
				if err := l.CutSync(); err != nil {
					t.Fatal(err)
				}
			}},
			{faultAt, "pull lb1 eth0", pull},
		},
		fault: "pull lb1 eth0",
		// By when the handshake completed, not when the client dialled: a
		// connection whose first SYN was lost (seen: a dial 0.3 s before the
		// cut, established 1 s later by the retransmitted SYN) has its
		// state created on lb1 after the cut.
		apart: func(c lab.LoadConn, r *faultRun) bool {
			return lastMoment(c, r.marks["cut sync"], r.marks["pulled"])
		},
		why:        "established while the sync link was down, or in the moment before the cut: lb2 never heard of their states",
		expectZero: true,
	}, {
		name: "split brain",
		steps: []faultStep{
			{faultAt, "isolate lb1", func(t *testing.T, l *lab.Lab, r *faultRun) {
				if err := l.Isolate("lb1"); err != nil {
					t.Fatal(err)
				}
				r.marks["isolated"] = time.Now()
				// lb1 hears nothing and stays MASTER: two masters.
				r.roles(t, l, 6*time.Second, map[string]string{"lb1": "MASTER", "lb2": "MASTER"})
			}},
			{faultAt + 4500*time.Millisecond, "heal lb1", func(t *testing.T, l *lab.Lab, r *faultRun) {
				if err := l.Heal("lb1"); err != nil {
					t.Fatal(err)
				}
				r.marks["healed"] = time.Now()
			}},
		},
		fault: "isolate lb1",
		apart: func(c lab.LoadConn, r *faultRun) bool {
			if lastMoment(c, r.marks["isolate lb1"], r.marks["isolated"]) {
				return true
			}
			at := established(c)
			return !c.Long && !at.Before(r.marks["isolate lb1"]) && !at.After(r.marks["healed"])
		},
		why:   "established during the split (through lb2; lb1 asks lb2 for its table when it hears it after the heal, so many survive the move back), or in the moment before the isolation (their updates dropped with it)",
		check: checkSplitBrain,
		// 0 in every run since the refresh and pickup fixes but one (10,
		// dialled during the split, in a run beside the other packages'
		// tests, before the refresh ran once per episode).
		expectZero: true,
	}}
}

// syncWindow is how long a new state may wait on the master before it is
// on the wire: the daemon reads conntrack events and sends new states at
// once (p99 sync lag 1.8-3.8 ms at 1,000-3,000 new connections/s,
// BenchmarkSyncLag), so 10 ms is several times the worst seen.
const syncWindow = 10 * time.Millisecond

// established is when c's handshake completed, or when it was dialled if
// it never was.
func established(c lab.LoadConn) time.Time {
	if !c.Connected.IsZero() {
		return c.Connected
	}
	return c.Start
}

var baseline = map[string]string{"lb1": "MASTER", "lb2": "BACKUP"}

// roles waits for want and, the first time, records the takeover.
func (r *faultRun) roles(t *testing.T, l *lab.Lab, d time.Duration, want map[string]string) {
	t.Helper()
	at := waitCARP(t, l, d, want)
	if r.takeover == 0 {
		r.takeover = at.Sub(r.marks["fault"])
	}
}

// runFault runs one case on a lab of its own (states left by an earlier
// case would make the bulk updates of this one longer): setup, the load
// with its steps, checks.
func runFault(t *testing.T, rate float64, fc faultCase) *faultRun {
	l := upLabPrefix(t, lab.Options{Seed: true}, faultPrefix)
	ext, _ := l.Plan().Segment(lab.SegExternal)
	url := fmt.Sprintf("http://%s", ext.VIP)
	waitBaseline(t, l)
	if fc.setup != nil {
		fc.setup(t, l)
	}
	before := map[string]int{}
	for _, n := range []string{"lb1", "lb2"} {
		before[n] = len(stateChanges(t, l, n, time.Time{}))
	}
	ld, err := l.StartLoad(lab.LoadOptions{
		URL: url, Rate: rate, Duration: loadFor,
		StreamSeconds: streamSecs, StreamRate: streamRate,
		Long: longs, LongSeconds: longSecs,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ld.Stop)
	r := &faultRun{t0: time.Now(), marks: map[string]time.Time{}}
	for _, s := range fc.steps {
		time.Sleep(time.Until(r.t0.Add(s.at)))
		now := time.Now()
		r.marks[s.name] = now
		if s.name == fc.fault {
			r.marks["fault"] = now
		}
		t.Logf("%s: %s at %s", fc.name, s.name, ms(now.Sub(r.t0)))
		s.do(t, l, r)
	}
	conns := ld.Wait()
	if lag := ld.Lag(); lag > 50*time.Millisecond {
		t.Logf("the load generator fell behind its schedule by up to %s (the test host, not the cluster)", ms(lag))
	}
	tEnd := time.Now()
	logPfsync(t, l, fc.name)
	keepLogs(t, l, fc.name)
	if fc.check != nil {
		fc.check(t, l, r)
	}

	var counted, apart []lab.LoadConn
	for _, c := range conns {
		if fc.apart != nil && fc.apart(c, r) {
			apart = append(apart, c)
		} else {
			counted = append(counted, c)
		}
	}
	ref := r.marks["fault"]
	s := lab.Summarize(counted, ref)
	row := faultRow{
		fault:  fc.name,
		conns:  s.Conns,
		long:   s.Long,
		reset:  s.ByOutcome[lab.OutcomeReset],
		others: s.Others(),
		stall:  "-",
		apart:  "-",
	}
	if s.Stall > 0 {
		row.stall = fmt.Sprintf("%s (from %+.1f s)", ms(s.Stall), s.StallAt.Sub(ref).Seconds())
	}
	if r.takeover > 0 {
		row.takeover = ms(r.takeover)
	} else {
		row.takeover = "-"
	}
	var tr []string
	for _, n := range []string{"lb1", "lb2"} {
		tr = append(tr, fmt.Sprintf("%s %d", n, len(stateChanges(t, l, n, time.Time{}))-before[n]))
	}
	row.transitions = strings.Join(tr, ", ")
	t.Logf("%s: %d connections + %d long streams: %d ok, %d reset, others %s (long streams failed: %d); longest stall %s; takeover %s",
		fc.name, s.Conns, s.Long, s.ByOutcome[lab.OutcomeOK], row.reset, row.others, s.LongFailed, row.stall, row.takeover)
	t.Logf("%s: failures by start second relative to %q: %s", fc.name, fc.fault, s.Timeline())
	if failed := s.Failed(); failed > 0 {
		noResp := 0
		for _, c := range counted {
			if c.Outcome != lab.OutcomeOK && c.Server == 0 {
				noResp++
			}
		}
		t.Logf("%s: of the %d failed, %d had no response yet, %d broke in the body", fc.name, failed, noResp, failed-noResp)
		logFailed(t, fc.name, counted, r)
	}
	for o, err := range s.FirstErr {
		t.Logf("%s: first %s: %v", fc.name, o, err)
	}
	logSlowHandshakes(t, fc.name, conns, r)
	if len(apart) > 0 {
		as := lab.Summarize(apart, ref)
		row.apart = fmt.Sprintf("%d of %d lost", as.Failed(), len(apart))
		t.Logf("%s: apart, %s: %d connections, %d ok, %d reset, others %s (by start second: %s)",
			fc.name, fc.why, len(apart), as.ByOutcome[lab.OutcomeOK], as.ByOutcome[lab.OutcomeReset], as.Others(), as.Timeline())
		if n := as.ByOutcome[lab.OutcomeBad]; n > 0 {
			t.Errorf("%s: %d connections got wrong bytes (first: %v): never acceptable", fc.name, n, as.FirstErr[lab.OutcomeBad])
		}
	}
	if n := s.ByOutcome[lab.OutcomeBad]; n > 0 {
		t.Errorf("%s: %d connections got wrong bytes (first: %v): never acceptable", fc.name, n, s.FirstErr[lab.OutcomeBad])
	}
	switch failed := s.Failed(); {
	case fc.expectZero && failed > 0:
		row.verdict = "FAIL"
		t.Errorf("%s: %d of %d connections failed (%d reset, others %s), want none", fc.name, failed, s.Conns+s.Long, row.reset, row.others)
	case fc.expectZero:
		row.verdict = "ok"
	case failed > 0:
		row.verdict = "KNOWN"
		t.Logf("KNOWN: %s: %d failed: %s", fc.name, failed, fc.known)
	default:
		row.verdict = "0 this run (KNOWN)"
		t.Logf("%s: no connection failed this run; the case is KNOWN to lose some (%s): set expectZero once it is 0 every run", fc.name, fc.known)
	}
	r.row = row
	t.Logf("%s: run took %s", fc.name, ms(tEnd.Sub(r.t0)))
	return r
}

// waitBaseline waits for lb1 MASTER, lb2 BACKUP and both nodes' bulk
// updates done.
func waitBaseline(t *testing.T, l *lab.Lab) {
	t.Helper()
	waitCARP(t, l, 15*time.Second, baseline)
	for _, n := range []string{"lb1", "lb2"} {
		waitFor(t, 10*time.Second, n+"'s bulk update", func() bool {
			ps := status(t, l, n).Pfsync
			return ps != nil && ps.BulkDone >= 1 && ps.Bulk == "idle"
		})
	}
}

// checkSplitBrain: after the heal, exactly one master per group (lb1, the
// preferred one), and the split's end logged once per group: lb2 steps
// down once, lb1 does not change.
func checkSplitBrain(t *testing.T, l *lab.Lab, r *faultRun) {
	heal := r.marks["heal lb1"]
	waitCARP(t, l, 10*time.Second, baseline)
	sts := map[string]string{}
	for _, n := range []string{"lb1", "lb2"} {
		for g, s := range lab.CARPStates(status(t, l, n)) {
			sts[n+" "+g] = s
		}
	}
	masters := map[string][]string{}
	for k, s := range sts {
		if s == "MASTER" {
			n, g, _ := strings.Cut(k, " ")
			masters[g] = append(masters[g], n)
		}
	}
	for g, ns := range masters {
		if len(ns) != 1 {
			t.Errorf("split brain healed: group %s has masters %v, want exactly one", g, ns)
		}
	}
	groups := len(lab.CARPStates(status(t, l, "lb1")))
	var after []string
	lb2Down := 0
	for _, n := range []string{"lb1", "lb2"} {
		for _, c := range stateChanges(t, l, n, heal) {
			after = append(after, n+": "+c.line)
			if n == "lb2" && c.old == "MASTER" && c.new == "BACKUP" {
				lb2Down++
			}
		}
	}
	t.Logf("split brain: CARP state changes logged after the heal:\n%s", strings.Join(after, "\n"))
	logVIPNeighbour(t, l)
	if len(after) != groups || lb2Down != groups {
		t.Errorf("split brain healed: %d state changes logged after the heal (%d of them lb2 MASTER -> BACKUP), want exactly %d: lb2 steps down once per group, lb1 stays",
			len(after), lb2Down, groups)
	}
}

// stateChange is one "carp state change" record of a daemon's log.
type stateChange struct {
	at             time.Time
	parent         string
	old, want, new string
	line           string
}

var logField = regexp.MustCompile(`(\w+)=("(?:[^"\\]|\\.)*"|\S*)`)

// stateChanges reads node's daemon log for the CARP state changes logged
// after since (the slog text form: time=... msg="carp state change" ...).
func stateChanges(t *testing.T, l *lab.Lab, node string, since time.Time) []stateChange {
	t.Helper()
	f, err := os.Open(filepath.Join(l.NodeDir(node), "daemon.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []stateChange
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, `msg="carp state change"`) {
			continue
		}
		c := stateChange{line: line}
		for _, m := range logField.FindAllStringSubmatch(line, -1) {
			v := m[2]
			if uq, err := strconv.Unquote(v); err == nil {
				v = uq
			}
			switch m[1] {
			case "time":
				c.at, _ = time.Parse(time.RFC3339Nano, v)
			case "parent":
				c.parent = v
			case "old":
				c.old = v
			case "want":
				c.want = v
			case "new":
				c.new = v
			}
		}
		if c.at.IsZero() {
			t.Fatalf("%s daemon.log: a state change without a time: %s", node, line)
		}
		if c.at.After(since) {
			out = append(out, c)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// logVIPNeighbour logs which balancer the client's ARP entry for the
// external VIP points at: a master that never changed state sends no
// gratuitous ARP when a split heals.
func logVIPNeighbour(t *testing.T, l *lab.Lab) {
	ext, _ := l.Plan().Segment(lab.SegExternal)
	macs := map[string]string{}
	for _, n := range []string{"lb1", "lb2"} {
		if err := l.InNode(n, func() error {
			link, err := netlink.LinkByName("eth0")
			if err == nil {
				macs[link.Attrs().HardwareAddr.String()] = n
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	var neighs []netlink.Neigh
	if err := l.InNode("client", func() error {
		var err error
		neighs, err = netlink.NeighList(0, netlink.FAMILY_V4)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, nb := range neighs {
		if a, ok := netip.AddrFromSlice(nb.IP); ok && a.Unmap() == ext.VIP {
			owner := macs[nb.HardwareAddr.String()]
			if owner == "" {
				owner = "no balancer"
			}
			t.Logf("split brain: the client's neighbour entry for %s points at %s (%s, state %#x)", ext.VIP, owner, nb.HardwareAddr, nb.State)
			return
		}
	}
	t.Logf("split brain: the client has no neighbour entry for %s", ext.VIP)
}

// logFailed logs each failed connection (the first maxLogged) with its
// times relative to the run's marks, so a loss can be placed against the
// fault: dialled, last progress (stall start), ended, bytes, server, error.
func logFailed(t *testing.T, name string, conns []lab.LoadConn, r *faultRun) {
	const maxLogged = 20
	ref := r.marks["fault"]
	rel := func(at time.Time) string {
		if at.IsZero() {
			return "-"
		}
		return fmt.Sprintf("%+.3fs", at.Sub(ref).Seconds())
	}
	n := 0
	for _, c := range conns {
		if c.Outcome == lab.OutcomeOK {
			continue
		}
		if n++; n > maxLogged {
			t.Logf("%s: ... more failed connections not listed", name)
			return
		}
		// A client port reused soon after an earlier connection from it
		// ended: the kernels see a closed state reopened.
		reused := ""
		for _, p := range conns {
			if p.Local == c.Local && p.Start.Before(c.Start) {
				reused = fmt.Sprintf("; its address was used by a connection dialled %s, ended %s (%s, server %d)", rel(p.Start), rel(p.End), p.Outcome, p.Server)
			}
		}
		t.Logf("%s: failed %s from %s: dialled %s, stalled from %s for %s, ended %s, %d/%d bytes from server %d: %v%s",
			name, c.Outcome, c.Local, rel(c.Start), rel(c.StallAt), ms(c.Stall), rel(c.End), c.Got, c.Want, c.Server, c.Err, reused)
	}
}

// logPfsync logs both nodes' pfsync counters after the load (a dead
// daemon answers nothing: said so), to tell a lost update from a state
// that was never sent.
func logPfsync(t *testing.T, l *lab.Lab, name string) {
	for _, n := range []string{"lb1", "lb2"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := l.DaemonStatus(ctx, n)
		cancel()
		if err != nil || st.Pfsync == nil {
			t.Logf("%s: %s pfsync: no status (%v)", name, n, err)
			continue
		}
		p := st.Pfsync
		t.Logf("%s: %s pfsync: sent %d msgs/%d states/%d deletes, received %d msgs/%d states/%d deletes, send errors %d, inject errors %d, stale %d, pickups replaced %d, overflows %d, dropped %v, bulk done %d failed %d, sync lag p50 <= %v p99 <= %v of %d",
			name, n, p.Sent, p.StatesSent, p.DeletesSent, p.Received, p.StatesReceived, p.DeletesRecv, p.SendErrors, p.InjectErrors, p.Stale, p.PickupsReplaced, p.EventOverflows, p.Dropped, p.BulkDone, p.BulkFailed,
			p.SyncLag.Quantile(0.5), p.SyncLag.Quantile(0.99), p.SyncLag.Count)
	}
}

// keepLogs copies the balancers' daemon logs to $PFCARP_FAULT_LOGS/CASE/
// when that is set (the lab's own directory goes with the lab).
func keepLogs(t *testing.T, l *lab.Lab, name string) {
	dir := os.Getenv(logsEnv)
	if dir == "" {
		return
	}
	dst := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Errorf("%s: %v", logsEnv, err)
		return
	}
	for _, n := range []string{"lb1", "lb2"} {
		b, err := os.ReadFile(filepath.Join(l.NodeDir(n), "daemon.log"))
		if err == nil {
			err = os.WriteFile(filepath.Join(dst, n+".log"), b, 0o644)
		}
		if err != nil {
			t.Errorf("%s: %s: %v", logsEnv, n, err)
		}
	}
	t.Logf("%s: daemon logs kept in %s", name, dst)
}

// logSlowHandshakes logs how many connections took a second or more to be
// established (a SYN or SYN-ACK lost and retransmitted), by dial time.
func logSlowHandshakes(t *testing.T, name string, conns []lab.LoadConn, r *faultRun) {
	ref := r.marks["fault"]
	by := map[int]int{}
	n := 0
	for _, c := range conns {
		if !c.Connected.IsZero() && c.Connected.Sub(c.Start) >= 900*time.Millisecond {
			n++
			by[int(c.Start.Sub(ref)/(100*time.Millisecond))]++
		}
	}
	if n == 0 {
		return
	}
	var parts []string
	for k := range by {
		parts = append(parts, fmt.Sprintf("%+.1fs: %d", float64(k)/10, by[k]))
	}
	slices.Sort(parts)
	t.Logf("%s: %d connections took >= 900 ms to be established (a lost SYN), by dial time (100 ms buckets): %s", name, n, strings.Join(parts, ", "))
}
