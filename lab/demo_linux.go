package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Demo is the README's demonstration of the seed cluster, run as a list of
// steps so later work (CARP, pf, pfsync, failover) adds steps rather than
// rewriting it. Not safe for concurrent use.
type Demo struct {
	Opts Options   // how to build the lab; Seed is forced on, the seed cluster added
	Out  io.Writer // progress and results
	Lab  *Lab      // set by the "up" step

	loop *ClientLoop // client requests across the failover; stopped by Run
}

// DemoStep is one step of the demo.
type DemoStep struct {
	Name string
	Run  func(ctx context.Context, d *Demo) error
}

// DemoBytes is the size of the /bytes transfer the demo verifies.
const DemoBytes = 1 << 20

// DemoSteps returns the demo's steps in order (teardown is not a step: Run
// always does it).
func DemoSteps() []DemoStep {
	return []DemoStep{
		{"up: build the seed topology; lb1 and lb2 run pfcarp on the seed's rc.conf, with relayd checking the web pool", demoUp},
		{"status", demoStatus},
		{"carp: lb1 (advskew 10) becomes MASTER of both virtual IPs, lb2 (advskew 20) BACKUP", demoElect},
		{"fetch / from every server, from every client address, through the VIPs on lb1", demoFetch},
		{"verify /bytes from every server", demoBytes},
		{"pf: relayd's rdr-to of the external VIP to the servers, round-robin sticky-address; lb1's states", demoRdr},
		{"failover: pull lb1's external cable (eth0)", demoFailover},
		{"restore the cable: lb1 takes both VIPs back (preempt)", demoRestore},
		{"relayd: s1's web server stops under load, then starts again", demoServerDown},
		{"relayd: lb1 alone loses both servers: demote carp hands the VIPs to lb2", demoServersUnreachable},
	}
}

// Run runs every step, stopping at the first failure, and always tears the
// lab down, also when ctx is cancelled (SIGINT).
func (d *Demo) Run(ctx context.Context) (err error) {
	d.Opts.Seed = true
	defer func() {
		if d.loop != nil {
			d.loop.Stop()
		}
		fmt.Fprintf(d.Out, "==> down\n")
		t0 := time.Now()
		var derr error
		if d.Lab != nil {
			derr = d.Lab.Down()
		} else {
			derr = Cleanup(d.Opts.Dir, d.Opts.Prefix, nil)
		}
		if derr == nil {
			fmt.Fprintf(d.Out, "    removed everything in %v\n", time.Since(t0).Round(time.Millisecond))
		}
		err = errors.Join(err, derr)
	}()
	for i, s := range DemoSteps() {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("demo interrupted before step %d (%s): %w", i+1, s.Name, err)
		}
		fmt.Fprintf(d.Out, "==> %s\n", s.Name)
		if err := s.Run(ctx, d); err != nil {
			return fmt.Errorf("demo step %d (%s): %w", i+1, s.Name, err)
		}
	}
	fmt.Fprintf(d.Out, "==> demo passed\n")
	return nil
}

func demoUp(ctx context.Context, d *Demo) error {
	t0 := time.Now()
	opts, err := WithRelayd(d.Opts)
	if err != nil {
		return err
	}
	d.Opts = opts
	l, err := Up(ctx, d.Opts)
	if err != nil {
		return err
	}
	d.Lab = l
	fmt.Fprintf(d.Out, "    up in %v (%d nodes; daemon logs in %s/lb1 and lb2)\n", time.Since(t0).Round(time.Millisecond), len(l.Plan().Nodes), l.Dir())
	return nil
}

func demoStatus(ctx context.Context, d *Demo) error {
	return d.Lab.Status().WriteText(&indent{w: d.Out})
}

func demoFetch(ctx context.Context, d *Demo) error {
	p := d.Lab.Plan()
	for _, src := range p.ClientAddrs() {
		for _, s := range p.Servers() {
			addr, _ := p.Addr(s.Name, "eth0")
			url := fmt.Sprintf("http://%s/", addr)
			body, err := d.Lab.Get(ctx, "client", src, url)
			if err != nil {
				return fmt.Errorf("from %s: %w", src, err)
			}
			if body != Greeting(s.Index) {
				return fmt.Errorf("from %s: GET %s: got %q, want %q", src, url, body, Greeting(s.Index))
			}
			who, err := d.Lab.Get(ctx, "client", src, fmt.Sprintf("http://%s/whoami", addr))
			if err != nil {
				return fmt.Errorf("from %s: %w", src, err)
			}
			fmt.Fprintf(d.Out, "    %-15s -> %-15s %q (server sees %s)\n", src, addr, strings.TrimSpace(body), strings.TrimSpace(who))
		}
	}
	return nil
}

func demoBytes(ctx context.Context, d *Demo) error {
	p := d.Lab.Plan()
	src := p.ClientAddrs()[0]
	for _, s := range p.Servers() {
		addr, _ := p.Addr(s.Name, "eth0")
		t0 := time.Now()
		if err := d.Lab.VerifyBytes(ctx, "client", src, "http://"+addr.String(), DemoBytes); err != nil {
			return err
		}
		fmt.Fprintf(d.Out, "    %s: %d bytes verified in %v\n", s.Name, DemoBytes, time.Since(t0).Round(time.Millisecond))
	}
	return nil
}

// indent prefixes every line written through it with four spaces.
type indent struct {
	w   io.Writer
	mid bool // inside a line
}

func (in *indent) Write(b []byte) (int, error) {
	var out []byte
	for _, c := range b {
		if !in.mid {
			out = append(out, "    "...)
			in.mid = true
		}
		out = append(out, c)
		if c == '\n' {
			in.mid = false
		}
	}
	if _, err := in.w.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}
