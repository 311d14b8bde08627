package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// demoServerDown stops s1's web server while the three client addresses
// fetch through the external VIP: relayd on lb1 takes s1 out of the pool
// within interval + timeout, s1's sticky clients go to s2, and s1 returns
// when it is started again.
func demoServerDown(ctx context.Context, d *Demo) error {
	l, p := d.Lab, d.Lab.Plan()
	ext, _ := p.Segment(SegExternal)
	s1, _ := p.Addr("s1", "eth0")
	url := fmt.Sprintf("http://%s/", ext.VIP)
	bound := (RelaydInterval + RelaydTimeout) * time.Millisecond
	if _, err := l.WaitPool(ctx, "lb1", s1.String(), true); err != nil {
		return err
	}
	before := map[netip.Addr]string{}
	for _, c := range p.ClientAddrs() {
		body, err := l.Get(ctx, "client", c, url)
		if err != nil {
			return fmt.Errorf("from %s: %w", c, err)
		}
		before[c] = strings.TrimSpace(body)
	}
	var loops []*ClientLoop
	defer func() {
		for _, cl := range loops {
			cl.Stop()
		}
	}()
	for _, c := range p.ClientAddrs() {
		cl, err := l.StartClientLoop("client", c, url, 50*time.Millisecond, 2*time.Second)
		if err != nil {
			return err
		}
		loops = append(loops, cl)
	}
	fmt.Fprintf(d.Out, "    clients %v fetch %s on a new connection every 50 ms each\n", p.ClientAddrs(), url)
	time.Sleep(300 * time.Millisecond)
	t0 := time.Now()
	if err := l.StopBackend("s1"); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	detected, err := l.WaitPool(wctx, "lb1", s1.String(), false)
	cancel()
	if err != nil {
		return err
	}
	time.Sleep(time.Second)
	failed, after := 0, 0
	for _, cl := range loops {
		for _, f := range cl.Fetches() {
			if !f.Start.Before(detected) {
				after++
				if f.Err != nil {
					failed++
				}
			}
		}
	}
	fmt.Fprintf(d.Out, "    s1's server stopped: out of lb1's pool after %v (relayd.conf: interval + timeout = %v); %d new connections since, %d failed\n",
		detected.Sub(t0).Round(time.Millisecond), bound, after, failed)
	if failed > 0 {
		return fmt.Errorf("%d new connections failed after s1 left the pool", failed)
	}
	for c, was := range before {
		if !strings.HasSuffix(was, "No.1 server") {
			continue
		}
		body, err := l.Get(ctx, "client", c, url)
		if err != nil {
			return fmt.Errorf("from %s: %w", c, err)
		}
		fmt.Fprintf(d.Out, "    %-15s was on %q, now %q (its sticky binding chosen anew)\n", c, was, strings.TrimSpace(body))
	}
	if err := demoRelayctl(ctx, d, "lb1", "show", "hosts"); err != nil {
		return err
	}
	t1 := time.Now()
	if err := l.StartBackend(ctx, "s1"); err != nil {
		return err
	}
	wctx, cancel = context.WithTimeout(ctx, 10*time.Second)
	back, err := l.WaitPool(wctx, "lb1", s1.String(), true)
	cancel()
	if err != nil {
		return err
	}
	fmt.Fprintf(d.Out, "    s1's server started again: back in lb1's pool %v later\n", back.Sub(t1).Round(time.Millisecond))
	return demoRelayctl(ctx, d, "lb1", "show", "summary")
}

// demoServersUnreachable makes both servers unreachable from lb1 only:
// every host of relayd's table is down there, "demote carp" demotes lb1,
// and lb2, which still reaches them, takes both VIPs; they return when lb1
// reaches the servers again.
func demoServersUnreachable(ctx context.Context, d *Demo) error {
	l, p := d.Lab, d.Lab.Plan()
	var servers []netip.Addr
	for _, s := range p.Servers() {
		a, _ := p.Addr(s.Name, "eth0")
		servers = append(servers, a)
	}
	t0 := time.Now()
	if err := l.SetUnreachable("lb1", servers, true); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	_, err := l.WaitCARP(wctx, map[string]string{"lb1": "BACKUP", "lb2": "MASTER"})
	cancel()
	if err != nil {
		return errors.Join(err, l.SetUnreachable("lb1", servers, false))
	}
	st, err := l.DaemonStatus(ctx, "lb1")
	if err != nil {
		return err
	}
	fmt.Fprintf(d.Out, "    lb1 can no longer reach %v: relayd demotes it (demotion %d) and lb2 is MASTER of both VIPs %v later\n",
		servers, st.Demotion, time.Since(t0).Round(time.Millisecond))
	t1 := time.Now()
	if err := l.SetUnreachable("lb1", servers, false); err != nil {
		return err
	}
	wctx, cancel = context.WithTimeout(ctx, 15*time.Second)
	_, err = l.WaitCARP(wctx, map[string]string{"lb1": "MASTER", "lb2": "BACKUP"})
	cancel()
	if err != nil {
		return err
	}
	fmt.Fprintf(d.Out, "    lb1 reaches them again: demotion lifted, lb1 MASTER of both again %v later (preempt)\n", time.Since(t1).Round(time.Millisecond))
	return nil
}

// demoRelayctl prints `pfcarp relayctl ARGS` as run on node.
func demoRelayctl(ctx context.Context, d *Demo, node string, args ...string) error {
	cmd, err := d.Lab.Command(ctx, node, append([]string{d.Lab.st.Bin, "relayctl"}, args...)...)
	if err != nil {
		return err
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := d.Lab.Run(node, cmd); err != nil {
		return fmt.Errorf("%s: relayctl %s: %v: %s", node, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	fmt.Fprintf(d.Out, "    %s# pfcarp relayctl %s\n", node, strings.Join(args, " "))
	for _, line := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		fmt.Fprintf(d.Out, "    %s\n", strings.ReplaceAll(line, "\t", "  "))
	}
	return nil
}
