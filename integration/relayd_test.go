//go:build linux

package integration

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pfcarp/pfcarp/lab"
)

// relaydPrefix names TestRelaydPool's namespaces.
const relaydPrefix = "rb-"

// waitPool waits up to d for lab.WaitPool.
func waitPool(t *testing.T, l *lab.Lab, node, name string, in bool, d time.Duration) time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	at, err := l.WaitPool(ctx, node, name, in)
	if err != nil {
		t.Fatal(err)
	}
	return at
}

// server is the greeting's server number: "hi, this is No.N server".
func server(body string) string {
	body = strings.TrimSpace(body)
	for i := 1; i <= lab.MaxBackends; i++ {
		if body == strings.TrimSpace(lab.Greeting(i)) {
			return fmt.Sprintf("s%d", i)
		}
	}
	return "?" + body
}

// Issue 11 in the lab: both balancers run relayd (lab.RelaydConf, OpenBSD's
// documented form) over s1 and s2 with sticky-address. With clients from
// the three client addresses fetching through the external VIP, s1's
// backend stops: lb1 takes s1 out of the kernel's pool within interval +
// timeout, no new connection fails after that, s1's sticky clients go to
// s2; s1 rejoins after its restart. Then lb1 alone loses both servers: the
// demotion moves the VIPs to lb2, and back when lb1 reaches them again.
func TestRelaydPool(t *testing.T) {
	o, err := lab.WithRelayd(lab.Options{Dir: filepath.Join(t.TempDir(), "lab")})
	if err != nil {
		t.Fatal(err)
	}
	l := upLabPrefix(t, o, relaydPrefix)
	p := l.Plan()
	ext, _ := p.Segment(lab.SegExternal)
	clients := p.ClientAddrs()
	s1, _ := p.Addr("s1", "eth0")
	s2, _ := p.Addr("s2", "eth0")
	url := "http://" + ext.VIP.String() + "/"
	bound := (lab.RelaydInterval + lab.RelaydTimeout) * time.Millisecond

	waitCARP(t, l, 15*time.Second, map[string]string{"lb1": "MASTER", "lb2": "BACKUP"})
	for _, n := range []string{"lb1", "lb2"} {
		waitPool(t, l, n, s1.String(), true, 10*time.Second)
		waitPool(t, l, n, s2.String(), true, 10*time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Where each client is bound (sticky-address).
	bound1 := map[netip.Addr]string{}
	for _, c := range clients {
		body, err := l.Get(ctx, "client", c, url)
		if err != nil {
			t.Fatalf("GET %s from %s: %v", url, c, err)
		}
		bound1[c] = server(body)
		for range 3 {
			if again, err := l.Get(ctx, "client", c, url); err != nil || server(again) != bound1[c] {
				t.Fatalf("client %s: %s then %q %v: not sticky", c, bound1[c], again, err)
			}
		}
	}
	t.Logf("sticky bindings before: %v", bound1)

	var loops []*lab.ClientLoop
	for _, c := range clients {
		cl, err := l.StartClientLoop("client", c, url, 50*time.Millisecond, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		loops = append(loops, cl)
		defer cl.Stop()
	}
	time.Sleep(500 * time.Millisecond)

	// s1's backend dies.
	t0 := time.Now()
	if err := l.StopBackend("s1"); err != nil {
		t.Fatal(err)
	}
	detected := waitPool(t, l, "lb1", s1.String(), false, 10*time.Second)
	detect := detected.Sub(t0)
	time.Sleep(2 * time.Second) // load after the detection
	failedBefore, failedAfter, after := 0, 0, 0
	for _, cl := range loops {
		for _, f := range cl.Fetches() {
			switch {
			case f.Start.Before(t0):
			case f.Start.Before(detected):
				if f.Err != nil {
					failedBefore++
				}
			default:
				after++
				if f.Err != nil {
					failedAfter++
					t.Logf("failed after detection: %v at +%v", f.Err, f.Start.Sub(detected))
				}
			}
		}
	}
	moved := map[netip.Addr]string{}
	for c, s := range bound1 {
		if s != "s1" {
			continue
		}
		body, err := l.Get(ctx, "client", c, url)
		if err != nil {
			t.Errorf("s1's client %s after detection: %v", c, err)
			continue
		}
		moved[c] = server(body)
	}
	t.Logf("s1 down: detected by lb1 after %v (bound: interval+timeout = %v); new connections after detection: %d, failed %d (between the stop and the detection: %d failed); s1's sticky clients now on %v",
		ms(detect), bound, after, failedAfter, failedBefore, moved)
	if detect > bound {
		t.Errorf("detection took %v, more than interval+timeout %v", detect, bound)
	}
	if failedAfter != 0 || after == 0 {
		t.Errorf("%d of %d new connections failed after the detection", failedAfter, after)
	}
	if len(moved) == 0 {
		t.Errorf("no client was bound to s1: %v", bound1)
	}
	for c, s := range moved {
		if s != "s2" {
			t.Errorf("s1's sticky client %s went to %s, want s2", c, s)
		}
	}

	// s1 comes back. The clients are all bound to s2 now, and stay:
	// relayd kills only the bindings to hosts that went down.
	for _, cl := range loops {
		cl.Stop()
	}
	t1 := time.Now()
	if err := l.StartBackend(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	rejoined := waitPool(t, l, "lb1", s1.String(), true, 10*time.Second)
	t.Logf("s1 restarted: back in lb1's pool after %v", ms(rejoined.Sub(t1)))
	// (the restart itself, up to the backend answering, comes first)
	if d := rejoined.Sub(t1); d > bound+time.Second {
		t.Errorf("s1 rejoined %v after its restart began, more than a second plus interval+timeout %v", d, bound)
	}
	stayed := map[netip.Addr]string{}
	for _, c := range clients {
		body, err := l.Get(ctx, "client", c, url)
		if err != nil {
			t.Errorf("client %s after s1's return: %v", c, err)
			continue
		}
		stayed[c] = server(body)
		if stayed[c] != "s2" {
			t.Errorf("client %s bound to s2 went to %s when s1 returned", c, stayed[c])
		}
	}
	t.Logf("after s1's return the clients stay on their servers: %v", stayed)

	// lb1 alone loses both servers: every host of the table is down on
	// lb1, its demotion hands both VIPs to lb2, which still reaches them.
	t2 := time.Now()
	if err := l.SetUnreachable("lb1", []netip.Addr{s1, s2}, true); err != nil {
		t.Fatal(err)
	}
	waitCARP(t, l, 15*time.Second, map[string]string{"lb1": "BACKUP", "lb2": "MASTER"})
	takeover := time.Since(t2)
	if d := status(t, l, "lb1").Demotion; d < 1 {
		t.Errorf("lb1's demotion %d after losing both servers", d)
	}
	if body, err := l.Get(ctx, "client", clients[0], url); err != nil {
		t.Errorf("through lb2: %v", err)
	} else {
		t.Logf("through lb2: %q", strings.TrimSpace(body))
	}
	t.Logf("both servers unreachable from lb1 only: demoted, lb2 MASTER of both VIPs %v after", ms(takeover))
	t3 := time.Now()
	if err := l.SetUnreachable("lb1", []netip.Addr{s1, s2}, false); err != nil {
		t.Fatal(err)
	}
	waitCARP(t, l, 15*time.Second, map[string]string{"lb1": "MASTER", "lb2": "BACKUP"})
	t.Logf("servers reachable from lb1 again: demotion lifted, lb1 MASTER again (preempt) %v after", ms(time.Since(t3)))
	if d := status(t, l, "lb1").Demotion; d != 0 {
		t.Errorf("lb1's demotion %d after the servers came back", d)
	}
}
