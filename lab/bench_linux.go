package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Bench is `pfcarp lab bench`: pfcarp side by side with hand-written
// nftables, plain routing, HAProxy and keepalived+conntrackd, every figure
// measured in one run on labs built for it (BENCHMARKS.md). Each step
// builds its own labs (namespace prefix Prefix, directory Dir) and tears
// them down; numbers are printed, never asserted.
type Bench struct {
	Bin    string // the pfcarp binary (daemons, backends)
	Dir    string // lab directory of the bench's labs
	Prefix string // namespace prefix of the bench's labs
	// Quick: one run of each figure, short loads, tiny sizes (CI).
	Quick bool
	// Runs of every figure (default 3, 1 with Quick).
	Runs int
	// Only lists the steps to run (default all).
	Only []string
	// Log receives progress lines (may be nil).
	Log io.Writer
	// Command is the command line, printed in the report.
	Command string
}

// BenchStep is one named step of the bench.
type BenchStep struct {
	Name string
	Doc  string
	run  func(ctx context.Context, b *Bench, r *Report) error
}

// BenchSteps lists the steps in the order they run.
func BenchSteps() []BenchStep {
	return []BenchStep{
		{"forwarding", "new connections/s, requests/s, p50/p99 latency (wrk) and bulk throughput (iperf3) through (a) pfcarp rdr sticky-address + pfsync, (b) the same DNAT by hand in nftables, (c) plain routing, (d) HAProxy TCP mode", benchForwarding},
		{"failover", "takeover time and connections failed at 300 and 1,000 new connections/s for cable pull, SIGKILL, graceful stop and failback: pfcarp vs keepalived+conntrackd", benchFailover},
		{"sync", "pfsync lag p50/p99 at the highest connection rate, bulk update and kernel injection of N states, daemon RSS idle and holding N states", benchSync},
		{"control", "parse, compile and load 10,000 rules; a 1,000,000-address table: load, add, delete, test, show", benchControl},
	}
}

func (b *Bench) logf(format string, args ...any) {
	if b.Log != nil {
		_, _ = fmt.Fprintf(b.Log, "bench: "+format+"\n", args...) // progress lines; the report is what counts
	}
}

func (b *Bench) runs() int {
	if b.Runs > 0 {
		return b.Runs
	}
	if b.Quick {
		return 1
	}
	return 3
}

// sample returns the report's sample (step, name), adding it when new.
func sample(r *Report, step, name, unit string) *Sample {
	if s := r.Find(step, name); s != nil {
		return s
	}
	s := &Sample{Step: step, Name: name, Unit: unit}
	r.Samples = append(r.Samples, s)
	return s
}

// add appends one run's value to (step, name).
func add(r *Report, step, name, unit string, v float64) {
	s := sample(r, step, name, unit)
	s.Values = append(s.Values, v)
}

// note records why (step, name) has no value or is bounded.
func note(r *Report, step, name, unit, why string) {
	s := sample(r, step, name, unit)
	if s.Note == "" {
		s.Note = why
	} else if !strings.Contains(s.Note, why) {
		s.Note += "; " + why
	}
}

// Run runs the selected steps and returns the report; an error is returned
// only when the bench cannot run at all (not root, bad arguments). A step
// that fails records why in its figures' notes and the bench goes on.
func (b *Bench) Run(ctx context.Context) (*Report, error) {
	if err := CheckRoot(); err != nil {
		return nil, fmt.Errorf("lab bench: %w", err)
	}
	if b.Dir == "" {
		b.Dir = "/run/pfcarp-bench"
	}
	if b.Prefix == "" {
		b.Prefix = "pfb-"
	}
	abs, err := filepath.Abs(b.Dir)
	if err != nil {
		return nil, err
	}
	b.Dir = abs
	if b.Bin == "" {
		if b.Bin, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	steps := BenchSteps()
	want := map[string]bool{}
	for _, o := range b.Only {
		found := false
		for _, s := range steps {
			found = found || s.Name == o
		}
		if !found {
			var names []string
			for _, s := range steps {
				names = append(names, s.Name)
			}
			return nil, fmt.Errorf("lab bench: unknown step %q (steps: %s)", o, strings.Join(names, ", "))
		}
		want[o] = true
	}
	rep := &Report{Machine: thisMachine(), Command: b.Command, Runs: b.runs()}
	if b.Quick {
		rep.Machine.Note = "--quick: one short run, tiny sizes"
	}
	// A crashed earlier bench may have left its lab behind.
	if err := Cleanup(b.Dir, b.Prefix, nil); err != nil {
		return nil, fmt.Errorf("lab bench: clean up an earlier run: %w", err)
	}
	for _, s := range steps {
		if len(want) > 0 && !want[s.Name] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		t0 := time.Now()
		b.logf("step %s", s.Name)
		if err := s.run(ctx, b, rep); err != nil {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			note(rep, s.Name, "step", "", "failed: "+err.Error())
			b.logf("step %s failed: %v", s.Name, err)
		}
		b.logf("step %s done in %v", s.Name, time.Since(t0).Round(time.Millisecond))
		if err := Cleanup(b.Dir, b.Prefix, nil); err != nil {
			return rep, fmt.Errorf("lab bench: after step %s: %w", s.Name, err)
		}
	}
	rep.Goals = evalGoals(rep)
	return rep, nil
}

// thisMachine describes the machine: cores, CPU model, kernel.
func thisMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), CPU: "unknown CPU", Kernel: "unknown", Date: time.Now()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// benchLab builds one lab of the bench (the previous one must be down).
func (b *Bench) benchLab(ctx context.Context, o Options) (*Lab, error) {
	o.Dir, o.Prefix, o.Bin = b.Dir, b.Prefix, b.Bin
	if o.Backends == 0 {
		o.Backends = 2
	}
	l, err := Up(ctx, o)
	if err != nil {
		return nil, err
	}
	// The load generators open many short connections.
	for _, n := range l.plan.Nodes {
		if n.Role == RoleSwitch {
			continue
		}
		ns := l.Namespace(n.Name)
		for _, kv := range [][2]string{{"net.ipv4.ip_local_port_range", "1024 65535"}, {"net.ipv4.tcp_tw_reuse", "1"}} {
			if err := writeSysctlIn(ns, kv[0], kv[1]); err != nil {
				return nil, errors.Join(fmt.Errorf("bench lab: %s: %w", n.Name, err), l.Down())
			}
		}
	}
	return l, nil
}

// runOut runs argv in node and returns its standard output; an error
// carries the tail of its standard error.
func runOut(ctx context.Context, l *Lab, node string, argv ...string) ([]byte, error) {
	cmd, err := l.Command(ctx, node, argv...)
	if err != nil {
		return nil, err
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := l.Run(node, cmd); err != nil {
		msg := strings.TrimSpace(errb.String())
		if len(msg) > 400 {
			msg = "..." + msg[len(msg)-400:]
		}
		if msg == "" {
			msg = strings.TrimSpace(out.String())
			if len(msg) > 400 {
				msg = "..." + msg[len(msg)-400:]
			}
		}
		return out.Bytes(), fmt.Errorf("%s in %s: %w: %s", argv[0], node, err, msg)
	}
	return out.Bytes(), nil
}

// startBg starts argv in node in the background with its output in the
// node's directory; stop kills it and waits.
func startBg(l *Lab, node, logName string, argv ...string) (stop func(), err error) {
	f, err := os.OpenFile(filepath.Join(l.NodeDir(node), logName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd, err := l.Command(context.Background(), node, argv...)
	if err != nil {
		return nil, errors.Join(err, f.Close())
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = l.NodeDir(node)
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true}
	if err := l.Start(node, cmd); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	done := make(chan struct{})
	go func() {
		// It ends by our SIGKILL: its exit status says nothing; the log
		// is what a person reads.
		_ = cmd.Wait()
		_ = f.Close()
		close(done)
	}()
	return func() {
		_ = unix.Kill(-cmd.Process.Pid, unix.SIGKILL) // ESRCH: it ended already
		<-done
	}, nil
}

// lookTool finds a peer's program; the error names the Debian package and
// the script that installs it.
func lookTool(name, pkg string) (string, error) {
	for _, p := range []string{name, "/usr/sbin/" + name, "/usr/bin/" + name} {
		if path, err := exec.LookPath(p); err == nil {
			return path, nil
		}
	}
	return "", fmt.Errorf("%s not installed (Debian package %s; scripts/bench-deps.sh installs it)", name, pkg)
}

func ratio(r *Report, a, b float64) string { return FormatValue(a/b) + "x" }

// evalGoals evaluates issue 13's goals on the report's medians.
func evalGoals(r *Report) []Goal {
	var gs []Goal
	pass := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	na := func(what, why string) { gs = append(gs, Goal{What: what, Result: "n/a", Detail: why}) }
	a, okA := r.Median("forwarding", "new conn/s (a) pfcarp rdr+pfsync")
	bb, okB := r.Median("forwarding", "new conn/s (b) nftables by hand")
	d, okD := r.Median("forwarding", "new conn/s (d) haproxy tcp")
	const g1 = "(a) >= 0.95 x (b) new conn/s"
	if okA && okB {
		gs = append(gs, Goal{What: g1, Result: pass(a >= 0.95*bb), Detail: fmt.Sprintf("a/b = %s (%s / %s)", ratio(r, a, bb), FormatValue(a), FormatValue(bb))})
	} else if r.Find("forwarding", "new conn/s (a) pfcarp rdr+pfsync") != nil {
		na(g1, "a figure is missing")
	}
	const g2 = "(a) >= 2 x (d) new conn/s"
	if okA && okD {
		gs = append(gs, Goal{What: g2, Result: pass(a >= 2*d), Detail: fmt.Sprintf("a/d = %s (%s / %s)", ratio(r, a, d), FormatValue(a), FormatValue(d))})
	} else if r.Find("forwarding", "new conn/s (a) pfcarp rdr+pfsync") != nil {
		na(g2, "a figure is missing")
	}
	for _, f := range failoverFaults {
		for _, rate := range failoverRates {
			p, okP := r.Median("failover", failName("pfcarp", f.name, rate, "failed"))
			k, okK := r.Median("failover", failName("keepalived", f.name, rate, "failed"))
			what := fmt.Sprintf("fewer connections failed than keepalived+conntrackd: %s at %d/s", f.name, rate)
			switch {
			case okP && okK:
				gs = append(gs, Goal{What: what, Result: pass(p < k || p == 0 && k == 0), Detail: fmt.Sprintf("pfcarp %s, keepalived %s", FormatValue(p), FormatValue(k))})
			case r.Find("failover", failName("pfcarp", f.name, rate, "failed")) != nil:
				na(what, "a figure is missing")
			}
		}
	}
	// At the highest rate the lab sustains (issue 10), not at saturation,
	// where the offered load exceeds what the cores forward and the lag
	// measures the queues.
	if v, ok := r.Median("sync", "sync lag p99 at the highest sustained rate"); ok {
		d := FormatValue(v) + " ms"
		if rate, ok := r.Median("sync", "highest sustained rate (open loop, 0 failed)"); ok {
			d += " at " + FormatValue(rate) + " new conn/s"
		}
		gs = append(gs, Goal{What: "sync lag p99 <= 5 ms at the highest sustained rate", Result: pass(v <= 5), Detail: d})
	}
	for _, s := range r.Samples {
		if s.Step == "sync" && strings.HasPrefix(s.Name, "bulk update ") && len(s.Values) > 0 && strings.Contains(s.Name, "1000000") {
			m, _, _ := Stats(s.Values)
			gs = append(gs, Goal{What: "bulk update of 1,000,000 states <= 5 s", Result: pass(m <= 5), Detail: FormatValue(m) + " s"})
		}
	}
	if v, ok := r.Median("control", "10000 rules: parse+compile+load"); ok {
		gs = append(gs, Goal{What: "10,000 rules load <= 1 s", Result: pass(v <= 1000), Detail: FormatValue(v) + " ms"})
	}
	for _, s := range r.Samples {
		if s.Step == "control" && s.Name == "1000000-address table: load" && len(s.Values) > 0 {
			m, _, _ := Stats(s.Values)
			gs = append(gs, Goal{What: "1,000,000-address table load <= 5 s", Result: pass(m <= 5000), Detail: FormatValue(m) + " ms"})
		}
	}
	return gs
}
