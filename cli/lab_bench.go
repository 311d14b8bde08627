//go:build linux

package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/pfcarp/pfcarp/lab"
)

// runLabBench is `pfcarp lab bench`: pfcarp side by side with hand-written
// nftables, plain routing, HAProxy and keepalived+conntrackd on labs of
// its own (lab.Bench; BENCHMARKS.md). It prints a table; --markdown also
// writes it as Markdown. Numbers are printed, never asserted.
func runLabBench(ctx context.Context, env *Env, args []string) error {
	fs, dir := labFlags(env, "bench")
	fs.Lookup("dir").DefValue = "/run/pfcarp-bench"
	if err := fs.Set("dir", "/run/pfcarp-bench"); err != nil {
		return err // labFlags defines dir: cannot happen
	}
	prefix := fs.String("prefix", "pfb-", "namespace `prefix` of the bench's labs")
	quick := fs.Bool("quick", false, "one short run of each figure with tiny sizes (CI: under two minutes)")
	runs := fs.Int("runs", 0, "runs of every figure (default 3, 1 with --quick); the table shows median, min and max")
	var only multiFlag
	fs.Var(&only, "only", "run only `STEP` (forwarding, failover, sync, control; repeatable or comma-separated)")
	md := fs.String("markdown", "", "also write the table as Markdown to `FILE`")
	deps := fs.String("deps", "scripts/bench-deps.sh", "`script` that installs the peers from Debian's packages when one is absent (empty: never install)")
	timeout := fs.Duration("timeout", 0, "hard `deadline` of the whole bench (default 60m, 5m with --quick): the steps are cancelled, and if one does not stop within 30 s more the bench removes its labs and exits")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *runs < 0 {
		return &ExitError{Code: 2, Err: fmt.Errorf("lab bench: --runs %d: want 1 or more", *runs)}
	}
	var steps []string
	for _, o := range only {
		for _, s := range strings.Split(o, ",") {
			if s = strings.TrimSpace(s); s != "" {
				steps = append(steps, s)
			}
		}
	}
	known := map[string]bool{}
	for _, s := range lab.BenchSteps() {
		known[s.Name] = true
	}
	for _, s := range steps {
		if !known[s] {
			return &ExitError{Code: 2, Err: fmt.Errorf("lab bench: --only %q: steps are forwarding, failover, sync, control", s)}
		}
	}
	if err := lab.CheckRoot(); err != nil {
		return fmt.Errorf("lab bench: %w", err)
	}
	if *deps != "" {
		if err := benchDeps(env, env.path(*deps)); err != nil {
			return err
		}
	}
	b := &lab.Bench{Dir: *dir, Prefix: *prefix, Quick: *quick, Runs: *runs, Only: steps, Log: env.Stderr,
		Command: "pfcarp lab bench " + strings.Join(args, " ")}
	b.Command = strings.TrimSpace(b.Command)
	limit := *timeout
	if limit <= 0 {
		limit = benchTimeout
		if *quick {
			limit = benchQuickTimeout
		}
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	// A step that ignores its context (a peer's process, a kernel call)
	// must not hold the machine's lab for ever: past the deadline and a
	// grace period, remove the labs (killing what runs in them) and exit.
	hard := time.AfterFunc(limit+benchGrace, func() {
		fmt.Fprintf(env.Stderr, "lab bench: still running %v after its %v deadline: removing its labs and exiting\n", benchGrace, limit)
		if err := lab.Cleanup(b.Dir, b.Prefix, nil); err != nil {
			fmt.Fprintf(env.Stderr, "lab bench: cleanup: %v\n", err)
		}
		os.Exit(3)
	})
	defer hard.Stop()
	rep, err := b.Run(ctx)
	if rep != nil {
		if werr := rep.WriteText(env.Stdout); werr != nil && err == nil {
			err = werr
		}
		if *md != "" {
			var buf bytes.Buffer
			if werr := rep.WriteMarkdown(&buf); werr != nil && err == nil {
				err = werr
			}
			if werr := os.WriteFile(env.path(*md), buf.Bytes(), 0o644); werr != nil && err == nil {
				err = fmt.Errorf("lab bench: --markdown: %w", werr)
			}
		}
	}
	return err
}

// The bench's deadlines (--timeout): the whole run, and how long a step
// may outlive its cancelled context before the bench gives up on it.
const (
	benchTimeout      = 60 * time.Minute
	benchQuickTimeout = 5 * time.Minute
	benchGrace        = 30 * time.Second
)

// benchPeers are the programs the bench compares pfcarp with.
var benchPeers = []string{"wrk", "iperf3", "haproxy", "keepalived", "conntrackd"}

// benchDeps runs the install script when a peer is absent. A missing
// script is not an error: the figures of an absent peer say so by name.
func benchDeps(env *Env, script string) error {
	var missing []string
	for _, p := range benchPeers {
		found := false
		for _, c := range []string{p, "/usr/sbin/" + p, "/usr/bin/" + p} {
			if _, err := exec.LookPath(c); err == nil {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if _, err := os.Stat(script); err != nil {
		fmt.Fprintf(env.Stderr, "lab bench: %s absent and no install script %s: their figures will say so\n", strings.Join(missing, ", "), script)
		return nil
	}
	fmt.Fprintf(env.Stderr, "lab bench: installing %s with %s\n", strings.Join(missing, ", "), script)
	if abs, err := filepath.Abs(script); err == nil {
		script = abs // it runs in its own directory
	}
	cmd := exec.Command("bash", script)
	cmd.Dir = filepath.Dir(script)
	cmd.Stdout, cmd.Stderr = env.Stderr, env.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(env.Stderr, "lab bench: %s failed (%v): figures of absent peers will say so\n", script, err)
	}
	return nil
}
