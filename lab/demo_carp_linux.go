package lab

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// The demo's CARP steps: election, cable pull, restore. Each waits with a
// deadline for what the daemons report over their control sockets.

// demoAdvBase is the seed's advbase; the failover must complete within
// 3*advbase + 1 s.
const demoAdvBase = time.Second

func demoElect(ctx context.Context, d *Demo) error {
	t0 := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := d.Lab.WaitCARP(wctx, map[string]string{"lb1": "MASTER", "lb2": "BACKUP"}); err != nil {
		return err
	}
	fmt.Fprintf(d.Out, "    elected in %v (a new master first listens for 3 x advbase)\n", time.Since(t0).Round(time.Millisecond))
	for _, n := range []string{"lb1", "lb2"} {
		if err := demoIfconfig(ctx, d, n, false); err != nil {
			return err
		}
	}
	return nil
}

// demoIfconfig prints `pfcarp ifconfig` as run on node (all lines, or only
// the interface and carp: lines when short).
func demoIfconfig(ctx context.Context, d *Demo, node string, short bool) error {
	cmd, err := d.Lab.Command(ctx, node, d.Lab.st.Bin, "ifconfig")
	if err != nil {
		return err
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := d.Lab.Run(node, cmd); err != nil {
		return fmt.Errorf("%s: pfcarp ifconfig: %v: %s", node, err, strings.TrimSpace(errb.String()))
	}
	fmt.Fprintf(d.Out, "    %s# pfcarp ifconfig\n", node)
	for _, line := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		t := strings.TrimSpace(line)
		if short && !strings.HasPrefix(t, "carp:") && !strings.HasSuffix(t, ":") && !strings.Contains(line, ": carpdev") {
			continue
		}
		fmt.Fprintf(d.Out, "    %s\n", strings.ReplaceAll(line, "\t", "        "))
	}
	return nil
}

func demoFailover(ctx context.Context, d *Demo) error {
	l, p := d.Lab, d.Lab.Plan()
	ext, _ := p.Segment(SegExternal)
	lb1Ext, _ := p.Addr("lb1", "eth0")
	src := p.ClientAddrs()[0]
	s1, _ := p.Addr("s1", "eth0")
	url := fmt.Sprintf("http://%s/", s1)

	watch, err := l.WatchAdverts("client", "eth0")
	if err != nil {
		return err
	}
	defer func() { _ = watch.Close() }() // a capture socket: nothing to lose
	if d.loop, err = l.StartClientLoop("client", src, url, 20*time.Millisecond, 250*time.Millisecond); err != nil {
		return err
	}
	if err := pollUntil(ctx, 3*time.Second, "an advertisement from lb1 on the external segment", func() bool {
		_, ok := watch.Last(lb1Ext, 1, time.Now())
		return ok && !d.loop.LastOK().IsZero()
	}); err != nil {
		return err
	}
	fmt.Fprintf(d.Out, "    client %s fetches %s on a new connection every 20 ms; watching CARP on the external segment\n", src, url)

	bound := 3*demoAdvBase + time.Second
	tPull := time.Now()
	if err := l.SetCable("lb1", "eth0", false); err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(ctx, bound)
	answered, err := l.WaitAnswer(actx, "client", src, netip.AddrPortFrom(ext.VIP, 9), 100*time.Millisecond)
	cancel()
	if err != nil {
		return fmt.Errorf("the external VIP did not come back within %v: %w", bound, err)
	}
	wctx, cancel := context.WithTimeout(ctx, bound)
	_, err = l.WaitCARP(wctx, map[string]string{"lb2": "MASTER"})
	cancel()
	if err != nil {
		return err
	}
	tMaster := time.Now()
	last, ok := watch.Last(lb1Ext, 1, tPull.Add(time.Millisecond))
	if !ok {
		return fmt.Errorf("no advertisement from lb1 seen before the pull")
	}
	fmt.Fprintf(d.Out, "    lb2 is MASTER of both %v after the pull (carp1 moves at once: lb1, demoted by its dead link, advertises advskew 240)\n",
		tMaster.Sub(tPull).Round(time.Millisecond))
	fmt.Fprintf(d.Out, "    takeover time (last advertisement from lb1 -> %s answers on lb2): %v (bound 3 x advbase + 1 s = %v)\n",
		ext.VIP, answered.Sub(last.At).Round(time.Millisecond), bound)
	if err := demoIfconfig(ctx, d, "lb2", true); err != nil {
		return err
	}
	if err := pollUntil(ctx, 5*time.Second, "the client's requests to succeed through lb2", func() bool {
		return d.loop.LastOK().After(answered)
	}); err != nil {
		return err
	}
	if o, ok := d.loop.OutageAfter(tPull); ok {
		fmt.Fprintf(d.Out, "    service resumed: %d requests failed; %v without a successful request\n", o.Failed, o.Gap().Round(time.Millisecond))
	} else {
		fmt.Fprintf(d.Out, "    service never failed\n")
	}
	return nil
}

func demoRestore(ctx context.Context, d *Demo) error {
	t0 := time.Now()
	if err := d.Lab.SetCable("lb1", "eth0", true); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := d.Lab.WaitCARP(wctx, map[string]string{"lb1": "MASTER", "lb2": "BACKUP"}); err != nil {
		return err
	}
	tBack := time.Now()
	fmt.Fprintf(d.Out, "    lb1 is MASTER of both again %v after the plug (at lb2's next advertisement)\n", tBack.Sub(t0).Round(time.Millisecond))
	for _, n := range []string{"lb1", "lb2"} {
		if err := demoIfconfig(ctx, d, n, true); err != nil {
			return err
		}
	}
	if err := pollUntil(ctx, 5*time.Second, "the client's requests to succeed through lb1", func() bool {
		return d.loop.LastOK().After(tBack)
	}); err != nil {
		return err
	}
	d.loop.Stop()
	n, failed := 0, 0
	for _, f := range d.loop.Fetches() {
		n++
		if f.Err != nil {
			failed++
		}
	}
	fmt.Fprintf(d.Out, "    client: %d requests on new connections, %d failed\n", n, failed)
	return nil
}

// pollUntil polls cond every 10 ms until it holds, or fails after d.
func pollUntil(ctx context.Context, d time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %v for %s", d, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}
