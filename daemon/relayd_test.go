package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pfcarp/pfcarp/carp"
	"github.com/pfcarp/pfcarp/internal/clock"
	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/relayd"
)

// fakeProbe answers relayd's checks from a table of host states (up when
// not set) and counts them.
type fakeProbe struct {
	mu     sync.Mutex
	states map[string]relayd.State
	checks int
	// clk and took, when set: each check takes took of clk's time.
	clk  *clock.Fake
	took time.Duration
}

func (f *fakeProbe) set(addr string, st relayd.State) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.states == nil {
		f.states = map[string]relayd.State{}
	}
	f.states[addr] = st
}

func (f *fakeProbe) probe(_ context.Context, _ *relayd.Table, h *relayd.Host, _ time.Duration) relayd.State {
	f.mu.Lock()
	f.checks++
	st, ok := f.states[h.Addr.String()]
	clk, took := f.clk, f.took
	f.mu.Unlock()
	if clk != nil {
		clk.Advance(took)
	}
	if ok {
		return st
	}
	return relayd.Up
}

const relaydPF = "anchor \"relayd/*\"\npass all\n"

const relaydConf = `interval 2
timeout 500
log state changes
table <web> { 198.51.100.11, 198.51.100.12 }
redirect www {
	listen on 192.0.2.10 port 80
	forward to <web> check tcp demote carp
	sticky-address
}
`

// relaydNode starts a node with relayd on conf and pf.conf pf.
func relaydNode(t *testing.T, clk *clock.Fake, conf, pf string, p *fakeProbe, rc ...string) (*node, string, error) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "relayd.conf")
	writeTestFile(t, file, conf)
	extra := pfEnable + "relayd_enable=\"YES\"\nrelayd_flags=\"-f " + file + "\"\n" + strings.Join(rc, "\n") + "\n"
	n, err := startNodePF(t, clk, carp.NewMemSegment(), "lb1", "192.0.2.2", "203.0.113.1", 10, extra, pf,
		func(o *Options) { o.RelaydProbe = p.probe })
	return n, file, err
}

// anchorAddrs is what the fake kernel holds in anchor path: the addresses
// of its pf table and its number of rules; ok is false when the anchor
// was never loaded.
func anchorAddrs(s *fakeSystem, path string) (addrs []string, rules int, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.anchors[path]
	if p == nil {
		return nil, 0, false
	}
	for _, set := range p.Sets {
		if set.Kind == nft.SetAddr && set.Table != "" {
			for _, pr := range set.Prefixes {
				addrs = append(addrs, pr.Addr().String())
			}
		}
	}
	slices.Sort(addrs)
	return addrs, p.NumRules(), true
}

func poolIs(s *fakeSystem, path string, want ...string) func() bool {
	return func() bool {
		got, rules, ok := anchorAddrs(s, path)
		return ok && slices.Equal(got, want) && (len(want) == 0) == (rules == 0)
	}
}

// A host that fails its check leaves the pool within one interval plus
// the timeout, in one anchor load; its sticky bindings are removed; it
// returns when it passes again. Every host down demotes CARP; one back
// lifts it.
func TestRelaydHostDownAndBack(t *testing.T) {
	clk := clock.NewFake(epoch)
	p := &fakeProbe{}
	n, _, err := relaydNode(t, clk, relaydConf, relaydPF, p)
	if err != nil {
		t.Fatal(err)
	}
	until(t, clk, "both hosts in the pool", poolIs(n.sys, "relayd/www", "198.51.100.11", "198.51.100.12"))
	loads := n.sys.count("load-anchor")
	m := nft.AnchorSet("relayd/www", "sticky_x")
	n.sys.mu.Lock()
	n.sys.sticky = []nft.StickyElem{
		{Map: m, Source: netip.MustParseAddr("203.0.113.89"), Backend: netip.MustParseAddr("198.51.100.11"), Expires: time.Minute},
		{Map: m, Source: netip.MustParseAddr("203.0.113.90"), Backend: netip.MustParseAddr("198.51.100.12"), Expires: time.Minute},
	}
	n.sys.mu.Unlock()

	p.set("198.51.100.11", relayd.Down)
	failed := clk.Now()
	until(t, clk, "198.51.100.11 out of the pool", poolIs(n.sys, "relayd/www", "198.51.100.12"))
	if took := clk.Now().Sub(failed); took > 2*time.Second+500*time.Millisecond {
		t.Errorf("the host left the pool after %v, more than interval+timeout", took)
	}
	if got := n.sys.count("load-anchor"); got != loads+1 {
		t.Errorf("%d anchor loads for one host going down, want 1", got-loads)
	}
	if n.sys.count("forget-sticky relayd/ [198.51.100.11]") != 1 {
		t.Errorf("sticky bindings to the dead host not removed: %v", n.sys.calls)
	}
	// The anchor load emptied its sticky map: the binding to the live
	// host is written back, the one to the dead host is not.
	if n.sys.count("set-sticky "+m+" 203.0.113.90>198.51.100.12") != 1 || n.sys.count("set-sticky "+m+" 203.0.113.89") != 0 {
		t.Errorf("sticky bindings after the load: %v", n.sys.calls)
	}
	if d := n.d.Status().Demotion; d != 0 {
		t.Fatalf("demotion %d with a host up", d)
	}

	p.set("198.51.100.12", relayd.Down)
	until(t, clk, "pool empty, CARP demoted", func() bool {
		return poolIs(n.sys, "relayd/www")() && n.d.Status().Demotion == 1
	})
	p.set("198.51.100.12", relayd.Up)
	until(t, clk, "198.51.100.12 back, demotion lifted", func() bool {
		return poolIs(n.sys, "relayd/www", "198.51.100.12")() && n.d.Status().Demotion == 0
	})
	p.set("198.51.100.11", relayd.Up)
	until(t, clk, "198.51.100.11 back", poolIs(n.sys, "relayd/www", "198.51.100.11", "198.51.100.12"))

	// Close empties the anchor.
	if err := n.d.Close(); err != nil {
		t.Fatal(err)
	}
	if got, rules, _ := anchorAddrs(n.sys, "relayd/www"); len(got) != 0 || rules != 0 {
		t.Errorf("after Close: anchor holds %v and %d rules", got, rules)
	}
}

// Start refuses a relayd.conf with an error (file:line:col) and a pf.conf
// without relayd's anchor, and takes down what it had started.
func TestRelaydStartRefused(t *testing.T) {
	for _, tc := range []struct{ conf, pf, want string }{
		{relaydConf, "pass all\n", `no anchor "relayd/*" or rdr-anchor "relayd/*"`},
		{"table <web> { 198.51.100.11 }\nredirect www {\n\tlisten on 192.0.2.10 port 80\n\tforward to <nope> check tcp\n}\n", relaydPF, "relayd.conf:4:"},
		{strings.Replace(relaydConf, "demote carp", "demote web", 1), relaydPF, "demote web: no such interface group"},
	} {
		clk := clock.NewFake(epoch)
		n, file, err := relaydNode(t, clk, tc.conf, tc.pf, &fakeProbe{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Start: %v, want %q", err, tc.want)
			continue
		}
		if strings.HasPrefix(tc.want, "relayd.conf:") && !strings.Contains(err.Error(), file+":4:") {
			t.Errorf("Start: %v does not name %s", err, file)
		}
		if n.sys.count("load-anchor") != 0 || n.sys.haInstalled {
			t.Errorf("a refused start left anchors (%d loads) or the HA tables (%v)", n.sys.count("load-anchor"), n.sys.haInstalled)
		}
	}
}

// Reload: a bad relayd.conf changes nothing; a new one keeps the states
// of the hosts that stay, empties the anchors of removed redirections and
// installs new ones; pf's reload has the anchors installed again.
func TestRelaydReload(t *testing.T) {
	clk := clock.NewFake(epoch)
	p := &fakeProbe{}
	p.set("198.51.100.12", relayd.Down)
	n, file, err := relaydNode(t, clk, relaydConf, relaydPF, p)
	if err != nil {
		t.Fatal(err)
	}
	until(t, clk, "198.51.100.11 alone in the pool", poolIs(n.sys, "relayd/www", "198.51.100.11"))
	loads := n.sys.count("load-anchor")

	writeTestFile(t, file, relaydConf+"redirect {\n")
	if err := n.d.Reload(); err == nil || !strings.Contains(err.Error(), file+":10:") {
		t.Fatalf("Reload with a bad relayd.conf: %v", err)
	}
	if got := n.sys.count("load-anchor"); got != loads {
		t.Fatalf("a refused relayd.conf loaded %d anchors", got-loads)
	}

	// pf's reload replaces the anchors: they are installed again, with
	// the same hosts.
	writeTestFile(t, file, relaydConf)
	if err := n.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := n.sys.count("load-anchor"); got != loads+1 {
		t.Errorf("after pf's reload %d anchor loads, want 1", got-loads)
	}
	if !poolIs(n.sys, "relayd/www", "198.51.100.11")() {
		got, _, _ := anchorAddrs(n.sys, "relayd/www")
		t.Errorf("after the reload the pool is %v; the host states were not kept", got)
	}

	// Redirection www renamed to web: www is emptied, web installed.
	writeTestFile(t, file, strings.Replace(relaydConf, "redirect www", "redirect web", 1))
	if err := n.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if !poolIs(n.sys, "relayd/www")() || !poolIs(n.sys, "relayd/web", "198.51.100.11")() {
		a, _, _ := anchorAddrs(n.sys, "relayd/www")
		b, _, _ := anchorAddrs(n.sys, "relayd/web")
		t.Errorf("after renaming: www %v, web %v", a, b)
	}

	// relayd_enable off: relayd stops and empties its anchors.
	n.rewrite(strings.Replace(readTestFile(t, n.rc), `relayd_enable="YES"`, `relayd_enable="NO"`, 1))
	if err := n.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if !poolIs(n.sys, "relayd/web")() {
		t.Errorf("relayd turned off left its anchor")
	}
}

// A failing anchor load is tried again.
func TestRelaydSyncRetry(t *testing.T) {
	clk := clock.NewFake(epoch)
	p := &fakeProbe{}
	n, _, err := relaydNode(t, clk, relaydConf, relaydPF, p)
	if err != nil {
		t.Fatal(err)
	}
	until(t, clk, "both hosts in the pool", poolIs(n.sys, "relayd/www", "198.51.100.11", "198.51.100.12"))
	n.sys.mu.Lock()
	n.sys.anchorErr = errTest
	n.sys.mu.Unlock()
	p.set("198.51.100.11", relayd.Down)
	until(t, clk, "a failed load", func() bool { return n.sys.count("load-anchor relayd/www") >= 3 })
	n.sys.mu.Lock()
	n.sys.anchorErr = nil
	n.sys.mu.Unlock()
	until(t, clk, "198.51.100.11 out of the pool", poolIs(n.sys, "relayd/www", "198.51.100.12"))
}

var errTest = errors.New("test: the kernel refuses")

func readTestFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// relayctl's commands over the control socket: show, host and redirect
// disable/enable (the pools follow before the answer), reload.
func TestRelaydControl(t *testing.T) {
	clk := clock.NewFake(epoch)
	p := &fakeProbe{}
	n, file, err := relaydNode(t, clk, relaydConf, relaydPF, p)
	if err != nil {
		t.Fatal(err)
	}
	until(t, clk, "both hosts in the pool", poolIs(n.sys, "relayd/www", "198.51.100.11", "198.51.100.12"))
	c := NewClient(n.d.sock)
	ctx := context.Background()
	var st RelaydStatus
	if err := c.Get(ctx, "/v1/relayd", &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Redirects) != 1 || st.Redirects[0].Status != "active" || st.Redirects[0].ID != 1 ||
		len(st.Tables) != 1 || st.Tables[0].Status != "active (2 hosts)" || len(st.Hosts) != 2 ||
		st.Hosts[0].Status != "up" || st.Hosts[0].Checks == 0 || st.Hosts[0].Availability != 100 {
		t.Fatalf("status %+v", st)
	}
	post := func(path string, ok bool, want string) {
		t.Helper()
		var res CommandResult
		if err := c.Post(ctx, path, &res); err != nil {
			t.Fatal(err)
		}
		if res.OK != ok || !strings.Contains(res.Error, want) {
			t.Fatalf("POST %s: %+v, want ok %v and %q", path, res, ok, want)
		}
	}
	post("/v1/relayd/host/198.51.100.11/disable", true, "")
	if !poolIs(n.sys, "relayd/www", "198.51.100.12")() {
		t.Errorf("host disable: the pool still has the host")
	}
	if err := c.Get(ctx, "/v1/relayd", &st); err != nil || st.Hosts[0].Status != "disabled" || st.Hosts[0].State != "up" {
		t.Errorf("after host disable: %+v %v", st.Hosts, err)
	}
	post("/v1/relayd/redirect/www/disable", true, "")
	if !poolIs(n.sys, "relayd/www")() {
		t.Errorf("redirect disable: the anchor still has rules")
	}
	post("/v1/relayd/redirect/1/enable", true, "")
	post(fmt.Sprintf("/v1/relayd/host/%d/enable", st.Hosts[0].ID), true, "")
	if !poolIs(n.sys, "relayd/www", "198.51.100.11", "198.51.100.12")() {
		t.Errorf("after enabling: the pool is not whole")
	}
	post("/v1/relayd/host/nosuch/disable", false, "host nosuch: no such ID or name")
	post("/v1/relayd/redirect/7/disable", false, "redirect 7: no such ID or name")

	// relayctl reload writes the anchors again even when nothing changed.
	loads := n.sys.count("load-anchor")
	post("/v1/relayd/reload", true, "")
	if got := n.sys.count("load-anchor"); got != loads+1 {
		t.Errorf("relayctl reload of an unchanged file: %d anchor loads, want 1", got-loads)
	}
	writeTestFile(t, file, strings.Replace(relaydConf, "198.51.100.12 }", "198.51.100.12, 198.51.100.13 }", 1))
	post("/v1/relayd/reload", true, "")
	until(t, clk, "the new host in the pool", poolIs(n.sys, "relayd/www", "198.51.100.11", "198.51.100.12", "198.51.100.13"))
	writeTestFile(t, file, "table <web> {\n")
	post("/v1/relayd/reload", false, file+":2:")
}

// relayd's host metrics: state, checks, transitions, check durations.
func TestRelaydMetrics(t *testing.T) {
	clk := clock.NewFake(epoch)
	p := &fakeProbe{clk: clk, took: 30 * time.Millisecond}
	n, _, err := relaydNode(t, clk, relaydConf, relaydPF, p, `pfcarp_metrics="127.0.0.1:0"`)
	if err != nil {
		t.Fatal(err)
	}
	until(t, clk, "both hosts in the pool", poolIs(n.sys, "relayd/www", "198.51.100.11", "198.51.100.12"))
	p.set("198.51.100.12", relayd.Down)
	until(t, clk, "198.51.100.12 out", poolIs(n.sys, "relayd/www", "198.51.100.11"))
	resp, err := http.Get("http://" + n.d.WebAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	tp := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := tp.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("the Prometheus text parser rejects /metrics: %v", err)
	}
	series := func(name string, labels map[string]string) *dto.Metric {
		t.Helper()
		f := fams[name]
		if f == nil {
			t.Fatalf("no %s", name)
		}
	next:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue next
				}
			}
			return m
		}
		t.Fatalf("no %s%v", name, labels)
		return nil
	}
	h12 := map[string]string{"table": "web", "port": "80", "host": "198.51.100.12"}
	with := func(k, v string) map[string]string {
		m := map[string]string{k: v}
		for a, b := range h12 {
			m[a] = b
		}
		return m
	}
	if v := series("pfcarp_relayd_host_state", with("state", "down")).GetGauge().GetValue(); v != 1 {
		t.Errorf("state down = %v", v)
	}
	if v := series("pfcarp_relayd_host_state", with("state", "up")).GetGauge().GetValue(); v != 0 {
		t.Errorf("state up = %v", v)
	}
	if v := series("pfcarp_relayd_host_transitions_total", with("to", "down")).GetCounter().GetValue(); v != 1 {
		t.Errorf("transitions to down = %v", v)
	}
	if v := series("pfcarp_relayd_host_transitions_total", with("to", "up")).GetCounter().GetValue(); v != 1 {
		t.Errorf("transitions to up = %v", v)
	}
	checks := series("pfcarp_relayd_host_checks_total", h12).GetCounter().GetValue()
	if checks < 2 {
		t.Errorf("checks = %v", checks)
	}
	hist := series("pfcarp_relayd_host_check_duration_seconds", h12).GetHistogram()
	if float64(hist.GetSampleCount()) != checks || hist.GetSampleSum() < 0.03*checks-1e-9 {
		t.Errorf("check durations: count %d sum %v for %v checks of 30ms", hist.GetSampleCount(), hist.GetSampleSum(), checks)
	}
	for _, b := range hist.GetBucket() {
		if b.GetUpperBound() == 0.025 && b.GetCumulativeCount() != 0 || b.GetUpperBound() == 0.05 && float64(b.GetCumulativeCount()) != checks {
			t.Errorf("bucket le=%v holds %d of %v checks of 30ms", b.GetUpperBound(), b.GetCumulativeCount(), checks)
		}
	}
	if v := series("pfcarp_relayd_syncs_total", nil).GetCounter().GetValue(); v < 2 {
		t.Errorf("syncs = %v", v)
	}
	// The status page shows the same pool: .12 down and out, .11 up and in.
	pr, err := http.Get("http://" + n.d.WebAddr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, err := io.ReadAll(pr.Body)
	pr.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`<td>198.51.100.12</td><td><span class="state down">down</span></td>`,
		`<td>198.51.100.11</td><td><span class="state master">up</span></td>`,
	} {
		if !strings.Contains(string(page), want) {
			t.Errorf("the status page lacks %s:\n%s", want, page)
		}
	}
	if strings.Contains(string(page), "not enabled") {
		t.Error("the status page says relayd is not enabled while it runs")
	}
}
