//go:build linux

package integration

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/pfcarp/pfcarp/carp"
	"github.com/pfcarp/pfcarp/lab"
)

// Issue 5 in the lab with the seed's two balancers, each running pfcarp on
// its seed config (advskew 10 and 20, preempt): election, cable pull and
// restore, kill -9 and restart, forged advertisements.
func TestSeedClusterFailover(t *testing.T) {
	l := upLab(t, lab.Options{})
	p := l.Plan()
	ext, _ := p.Segment(lab.SegExternal)
	in, _ := p.Segment(lab.SegInternal)
	lb1Ext, _ := p.Addr("lb1", "eth0")
	client := p.ClientAddrs()[0]
	s1, _ := p.Addr("s1", "eth0")
	const advbase = 1 // the seed's (default) advbase
	// Both VIPs must move within 3*advbase + 1 s of a failure (issue 5).
	bound := 3*advbase*time.Second + time.Second

	// Election: the first master waits 3*advbase + advskew/256 for a
	// better one, so allow some seconds.
	t0 := time.Now()
	waitCARP(t, l, 10*time.Second, map[string]string{"lb1": "MASTER", "lb2": "BACKUP"})
	t.Logf("election: lb1 MASTER of carp0 and carp1, lb2 BACKUP, %s after up", ms(time.Since(t0)))
	st1, st2 := status(t, l, "lb1"), status(t, l, "lb2")
	for _, name := range []string{"carp0", "carp1"} {
		g1, g2 := group(t, st1, name), group(t, st2, name)
		if g1.AdvSkew != 10 || g2.AdvSkew != 20 || g1.AdvBase != advbase {
			t.Errorf("%s: advskew lb1 %d lb2 %d advbase %d, want the seed's 10, 20, 1", name, g1.AdvSkew, g2.AdvSkew, g1.AdvBase)
		}
	}
	for _, v := range []struct {
		iface string
		vip   netip.Addr
	}{{"eth0", ext.VIP}, {"eth1", in.VIP}} {
		if !hasAddr(t, l, "lb1", v.iface, v.vip) || hasAddr(t, l, "lb2", v.iface, v.vip) {
			t.Errorf("VIP %s: want it on lb1 %s only", v.vip, v.iface)
		}
	}
	// lb2 hears lb1 on both segments.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		st2 = status(t, l, "lb2")
		if group(t, st2, "carp0").Received > 0 && group(t, st2, "carp1").Received > 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("lb2 received no advertisement from lb1: %+v", st2.CARP)
		}
		time.Sleep(20 * time.Millisecond)
	}

	t.Run("forged adverts are ignored and counted", func(t *testing.T) {
		forged(t, l, ext.VIP)
	})
	if t.Failed() {
		return
	}

	// Clients: new connections to s1 through the external VIP, and a watch
	// of the advertisements on the external segment.
	url := fmt.Sprintf("http://%s/", s1)
	if _, err := l.Get(context.Background(), "client", client, url); err != nil {
		t.Fatalf("before any fault: %v", err)
	}
	loop, err := l.StartClientLoop("client", client, url, 20*time.Millisecond, 250*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer loop.Stop()
	watch, err := l.WatchAdverts("client", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close()
	// Wait for an advertisement of lb1 to be seen, so the watch is live.
	waitFor(t, 3*time.Second, "an advertisement from lb1 on the external segment", func() bool {
		_, ok := watch.Last(lb1Ext, 1, time.Now())
		return ok
	})

	// Pull lb1's external cable.
	tPull := time.Now()
	if err := l.SetCable("lb1", "eth0", false); err != nil {
		t.Fatal(err)
	}
	actx, acancel := context.WithTimeout(context.Background(), bound)
	answered, err := l.WaitAnswer(actx, "client", client, netip.AddrPortFrom(ext.VIP, 9), 100*time.Millisecond)
	acancel()
	if err != nil {
		t.Fatalf("cable pull: the external VIP did not answer via lb2 within %v: %v", bound, err)
	}
	tMaster := waitCARP(t, l, bound-time.Since(tPull)+50*time.Millisecond, map[string]string{"lb2": "MASTER"})
	if d := tMaster.Sub(tPull); d > bound {
		t.Errorf("cable pull: lb2 MASTER of both after %v, want within %v", d, bound)
	}
	last, ok := watch.Last(lb1Ext, 1, tPull.Add(time.Millisecond))
	if !ok {
		t.Fatal("no advertisement from lb1 seen before the pull")
	}
	st1 = status(t, l, "lb1")
	t.Logf("cable pull: lb2 MASTER of both after %s (seen by polling); VIP answers via lb2 %s after the pull; takeover (last lb1 advert -> VIP answers on lb2) %s; lb1 now carp0 %s carp1 %s",
		ms(tMaster.Sub(tPull)), ms(answered.Sub(tPull)), ms(answered.Sub(last.At)),
		group(t, st1, "carp0").State, group(t, st1, "carp1").State)
	if answered.Sub(last.At) > bound {
		t.Errorf("takeover took %v from lb1's last advertisement, want within %v", answered.Sub(last.At), bound)
	}
	for _, v := range []struct {
		iface string
		vip   netip.Addr
	}{{"eth0", ext.VIP}, {"eth1", in.VIP}} {
		if !hasAddr(t, l, "lb2", v.iface, v.vip) {
			t.Errorf("cable pull: VIP %s not on lb2 %s", v.vip, v.iface)
		}
	}
	if hasAddr(t, l, "lb1", "eth1", in.VIP) {
		t.Errorf("cable pull: demoted lb1 still holds the internal VIP %s", in.VIP)
	}
	// Service resumes for new connections.
	waitFor(t, 5*time.Second, "a request through lb2 to succeed", func() bool { return loop.LastOK().After(answered) })
	if o, ok := loop.OutageAfter(tPull); ok {
		t.Logf("cable pull: client loop of new connections: %d requests failed (first: %v); service gap %s (last success %s before the pull, resumed %s after it)",
			o.Failed, o.FirstErr, ms(o.Gap()), ms(tPull.Sub(o.LastOK)), ms(o.Resumed.Sub(tPull)))
	} else {
		t.Logf("cable pull: client loop saw no failed request")
	}

	// Restore the cable: lb1 takes both back (preempt).
	tPlug := time.Now()
	if err := l.SetCable("lb1", "eth0", true); err != nil {
		t.Fatal(err)
	}
	tBack := waitCARP(t, l, bound, map[string]string{"lb1": "MASTER", "lb2": "BACKUP"})
	t.Logf("cable restored: lb1 MASTER of both again, lb2 BACKUP, %s after the plug", ms(tBack.Sub(tPlug)))
	if hasAddr(t, l, "lb2", "eth0", ext.VIP) || hasAddr(t, l, "lb2", "eth1", in.VIP) {
		t.Errorf("cable restored: lb2 still holds a VIP")
	}
	waitFor(t, 5*time.Second, "a request through lb1 again", func() bool { return loop.LastOK().After(tBack) })

	// kill -9 lb1's daemon: its VIPs stay on its interfaces (the kernel
	// keeps addresses), lb2 takes over after master-down.
	tKill := time.Now()
	if err := l.KillDaemon("lb1"); err != nil {
		t.Fatal(err)
	}
	tMaster = waitCARP(t, l, bound, map[string]string{"lb2": "MASTER"})
	masterDown := 3*advbase*time.Second + 20*time.Second/256
	t.Logf("kill -9 lb1: lb2 MASTER of both %s after the kill (master-down interval %s); lb1 keeps its VIPs: %v",
		ms(tMaster.Sub(tKill)), ms(masterDown), hasAddr(t, l, "lb1", "eth0", ext.VIP))
	if d := tMaster.Sub(tKill); d > bound {
		t.Errorf("kill -9: lb2 took over after %v, want within %v", d, bound)
	}
	waitFor(t, 5*time.Second, "a request after lb2 took over from the killed lb1", func() bool { return loop.LastOK().After(tMaster) })

	// Restart: lb1's daemon removes the stale VIPs at INIT->BACKUP, then
	// preempts lb2.
	tStart := time.Now()
	if err := l.StartDaemon("lb1"); err != nil {
		t.Fatal(err)
	}
	tBack = waitCARP(t, l, 3*bound, map[string]string{"lb1": "MASTER", "lb2": "BACKUP"})
	t.Logf("fault start lb1: lb1 MASTER of both again %s after the start", ms(tBack.Sub(tStart)))
	if !hasAddr(t, l, "lb1", "eth0", ext.VIP) || !hasAddr(t, l, "lb1", "eth1", in.VIP) ||
		hasAddr(t, l, "lb2", "eth0", ext.VIP) || hasAddr(t, l, "lb2", "eth1", in.VIP) {
		t.Errorf("after restart: want both VIPs on lb1 only")
	}
	waitFor(t, 5*time.Second, "a request after lb1 came back", func() bool { return loop.LastOK().After(tBack) })
	loop.Stop()
	total, failed := 0, 0
	for _, f := range loop.Fetches() {
		total++
		if f.Err != nil {
			failed++
		}
	}
	t.Logf("client loop: %d requests on new connections, %d failed", total, failed)
}

// forged sends advertisements for vhid 1 on the external segment from the
// client that would make lb1 yield if they were accepted (advskew 0): one
// set signed with the wrong password, one with the right password but TTL
// 64. Both balancers must count them (bad hmac, bad ttl) and change nothing.
func forged(t *testing.T, l *lab.Lab, vip netip.Addr) {
	before := map[string][3]uint64{} // bad hmac, bad ttl, transitions
	counts := func(node string) [3]uint64 {
		st := status(t, l, node)
		g := group(t, st, "carp0")
		var tr uint64
		for _, g := range st.CARP {
			tr += g.Transitions
		}
		return [3]uint64{g.Rejects["bad hmac"], st.CARPRejects["bad ttl"], tr}
	}
	for _, n := range []string{"lb1", "lb2"} {
		before[n] = counts(n)
	}
	advert := func(pass string, counter uint64) []byte {
		key, _ := carp.NewKey(pass)
		h := carp.Header{Version: carp.Version, Type: carp.TypeAdvert, VHID: 1, AdvSkew: 0, AdvBase: 1,
			AuthLen: carp.AuthLen, Counter: counter}
		h.HMAC = carp.NewAuth(key, 1, []netip.Addr{vip}).Sign(counter)
		return h.AppendTo(nil)
	}
	const n = 3
	for i := range n {
		if err := l.SendIPv4("client", "eth0", carp.Proto, carp.TTL, carp.Group4, advert("not11111", 0x1000+uint64(i))); err != nil {
			t.Fatal(err)
		}
		if err := l.SendIPv4("client", "eth0", carp.Proto, 64, carp.Group4, advert("11111", 0x2000+uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, node := range []string{"lb1", "lb2"} {
		var now [3]uint64
		waitFor(t, 3*time.Second, node+" to count the forged advertisements", func() bool {
			now = counts(node)
			return now[0]-before[node][0] >= n && now[1]-before[node][1] >= n
		})
		t.Logf("%s: bad hmac %d -> %d, bad ttl %d -> %d", node, before[node][0], now[0], before[node][1], now[1])
		if now[2] != before[node][2] {
			t.Errorf("%s: CARP transitions %d -> %d: a forged advertisement changed state", node, before[node][2], now[2])
		}
	}
	// Roles unchanged.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := l.WaitCARP(ctx, map[string]string{"lb1": "MASTER", "lb2": "BACKUP"}); err != nil {
		t.Errorf("after forged advertisements: %v", err)
	}
}

// waitFor polls cond every 10 ms until it holds, failing after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
