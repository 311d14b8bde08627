package lab

import (
	"bytes"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestStats(t *testing.T) {
	for _, tc := range []struct {
		in          []float64
		med, lo, hi float64
	}{
		{[]float64{3}, 3, 3, 3},
		{[]float64{5, 1, 3}, 3, 1, 5},
		{[]float64{4, 1, 3, 2}, 2.5, 1, 4},
		{[]float64{2, 2, 9}, 2, 2, 9},
	} {
		in := append([]float64(nil), tc.in...)
		m, lo, hi := Stats(tc.in)
		if m != tc.med || lo != tc.lo || hi != tc.hi {
			t.Errorf("Stats(%v) = %v, %v, %v; want %v, %v, %v", in, m, lo, hi, tc.med, tc.lo, tc.hi)
		}
		for i := range in {
			if in[i] != tc.in[i] {
				t.Fatalf("Stats reordered its input: %v", tc.in)
			}
		}
	}
	if m, _, _ := Stats(nil); !math.IsNaN(m) {
		t.Errorf("Stats(nil) median = %v, want NaN", m)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 99: 99 * time.Millisecond, 100: 100 * time.Millisecond, 0: time.Millisecond} {
		if got := Percentile(d, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if Percentile(nil, 50) != 0 {
		t.Error("p50 of nothing is not 0")
	}
}

// wrkReport is wrk 4.1.0's output with --latency (Debian bookworm), with
// socket errors and non-2xx answers.
const wrkReport = `Running 3s test @ http://198.51.100.51:80/
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    10.61ms    9.86ms  71.33ms   87.40%
    Req/Sec   655.68    119.23     0.96k    68.33%
  Latency Distribution
     50%    8.76ms
     75%   13.27ms
     90%   21.58ms
     99%   52.70ms
  3923 requests in 3.00s, 582.34KB read
  Socket errors: connect 0, read 3923, write 0, timeout 2
  Non-2xx or 3xx responses: 5
Requests/sec:   1306.44
Transfer/sec:    193.94KB
`

func TestParseWrk(t *testing.T) {
	w, err := ParseWrk(strings.NewReader(wrkReport))
	if err != nil {
		t.Fatal(err)
	}
	if w.Requests != 3923 || w.Seconds != 3 || w.RPS != 1306.44 {
		t.Errorf("requests %d in %v s, %v/s", w.Requests, w.Seconds, w.RPS)
	}
	if w.P50 != 8760*time.Microsecond || w.P99 != 52700*time.Microsecond {
		t.Errorf("p50 %v, p99 %v", w.P50, w.P99)
	}
	if w.Errors != 3923+2+5 {
		t.Errorf("errors %d, want %d", w.Errors, 3923+2+5)
	}
	// Units: us, s and minutes.
	w, err = ParseWrk(strings.NewReader("  10 requests in 1.50m, 1KB read\n  Latency Distribution\n     50%  750.00us\n     99%    1.20s\nRequests/sec:      0.11\n"))
	if err != nil {
		t.Fatal(err)
	}
	if w.Seconds != 90 || w.P50 != 750*time.Microsecond || w.P99 != 1200*time.Millisecond {
		t.Errorf("units: %v s, p50 %v, p99 %v", w.Seconds, w.P50, w.P99)
	}
	// Without --latency the report lacks the percentiles: an error.
	noLat := strings.Replace(wrkReport, "  Latency Distribution\n", "", 1)
	noLat = strings.NewReplacer("     50%    8.76ms\n", "", "     99%   52.70ms\n", "").Replace(noLat)
	if _, err := ParseWrk(strings.NewReader(noLat)); err == nil || !strings.Contains(err.Error(), "--latency") {
		t.Errorf("without percentiles: %v", err)
	}
	if _, err := ParseWrk(strings.NewReader("unable to connect to 198.51.100.51:80 Connection refused\n")); err == nil {
		t.Error("a failed run parsed")
	}
}

func TestParseIperf3(t *testing.T) {
	ok := []byte(`{"start":{},"intervals":[],"end":{"sum_sent":{"bytes":1,"bits_per_second":5.1e9,"retransmits":12},
		"sum_received":{"bytes":1,"bits_per_second":4.8e9}}}`)
	r, err := ParseIperf3(ok)
	if err != nil || r.BitsPerSecond != 4.8e9 || r.Retransmits != 12 {
		t.Errorf("%+v, %v", r, err)
	}
	if _, err := ParseIperf3([]byte(`{"start":{},"intervals":[],"end":{},"error":"unable to connect to server: Connection refused"}`)); err == nil || !strings.Contains(err.Error(), "Connection refused") {
		t.Errorf("error report: %v", err)
	}
	if _, err := ParseIperf3([]byte(`{"end":{}}`)); err == nil {
		t.Error("no throughput parsed")
	}
	if _, err := ParseIperf3([]byte(`iperf3: error`)); err == nil {
		t.Error("non-JSON parsed")
	}
}

func testReport() *Report {
	r := &Report{
		Machine: Machine{Cores: 2, CPU: "Test CPU", Kernel: "6.1.0", Date: time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC), Note: "provisional"},
		Command: "pfcarp lab bench --quick",
	}
	add(r, "forwarding", "new conn/s (a) pfcarp rdr+pfsync", "conn/s", 1000)
	add(r, "forwarding", "new conn/s (a) pfcarp rdr+pfsync", "conn/s", 1200)
	add(r, "forwarding", "new conn/s (a) pfcarp rdr+pfsync", "conn/s", 900)
	add(r, "forwarding", "new conn/s (b) nftables by hand", "conn/s", 1000)
	add(r, "forwarding", "new conn/s (d) haproxy tcp", "conn/s", 400)
	note(r, "forwarding", "iperf3 (d) haproxy tcp", "Gbit/s", "iperf3 not installed | twice")
	add(r, "control", "10000 rules: parse+compile+load", "ms", 1500)
	add(r, "sync", "sync lag p99 at saturation", "ms", 90)
	add(r, "sync", "sync lag p99 at the highest sustained rate", "ms", 0.5)
	add(r, "sync", "highest sustained rate (open loop, 0 failed)", "conn/s", 1500)
	add(r, "failover", failName("pfcarp", "cable pull", 300, "failed"), "conns", 0)
	add(r, "failover", failName("keepalived", "cable pull", 300, "failed"), "conns", 6)
	add(r, "failover", failName("pfcarp", "SIGKILL", 300, "failed"), "conns", 3)
	add(r, "failover", failName("keepalived", "SIGKILL", 300, "failed"), "conns", 3)
	r.Goals = evalGoals(r)
	return r
}

func TestGoals(t *testing.T) {
	got := map[string]string{}
	for _, g := range testReport().Goals {
		got[g.What] = g.Result + " " + g.Detail
	}
	for what, want := range map[string]string{
		"(a) >= 0.95 x (b) new conn/s":                                             "met a/b = 1x (1000 / 1000)",
		"(a) >= 2 x (d) new conn/s":                                                "met a/d = 2.50x (1000 / 400)",
		"10,000 rules load <= 1 s":                                                 "MISSED 1500 ms",
		"sync lag p99 <= 5 ms at the highest sustained rate":                       "met 0.5 ms at 1500 new conn/s",
		"fewer connections failed than keepalived+conntrackd: cable pull at 300/s": "met pfcarp 0, keepalived 6",
		"fewer connections failed than keepalived+conntrackd: SIGKILL at 300/s":    "MISSED pfcarp 3, keepalived 3",
	} {
		if got[what] != want {
			t.Errorf("goal %q: %q, want %q", what, got[what], want)
		}
	}
	if _, ok := got["fewer connections failed than keepalived+conntrackd: graceful stop at 300/s"]; ok {
		t.Error("a goal for a fault that was not measured")
	}
}

func TestReportText(t *testing.T) {
	var b bytes.Buffer
	if err := testReport().WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"machine: 2026-12-02 07:00 UTC, 2 cores (Test CPU), kernel 6.1.0; provisional\n",
		"command: pfcarp lab bench --quick\n",
		"forwarding  new conn/s (a) pfcarp rdr+pfsync              conn/s    1000   900  1200     3\n",
		"iperf3 not installed | twice",
		"  MISSED  10,000 rules load <= 1 s: 1500 ms\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	if err := testReport().WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"Machine: 2026-12-02 07:00 UTC, 2 cores (Test CPU), kernel 6.1.0; provisional.\n",
		"Command: `pfcarp lab bench --quick`\n",
		"| forwarding | new conn/s (a) pfcarp rdr+pfsync | conn/s | 1000 | 900 | 1200 | 3 |  |\n",
		"| forwarding | iperf3 (d) haproxy tcp | Gbit/s | - | - | - | 0 | iperf3 not installed \\| twice |\n",
		"| 10,000 rules load <= 1 s | MISSED | 1500 ms |\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestConfigsOfPeers(t *testing.T) {
	plan, err := NewPlan(false, 2)
	if err != nil {
		t.Fatal(err)
	}
	l := &Lab{dir: "/run/x", plan: plan}
	ka := string(keepalivedConf(l, "lb1", 246))
	for _, want := range []string{"interface eth0", "interface eth1", "priority 246", "advert_int 1",
		"198.51.100.51/24 dev eth0", "192.0.2.100/24 dev eth1", `notify_master "/run/x/lb1/primary-backup.sh primary"`} {
		if !strings.Contains(ka, want) {
			t.Errorf("keepalived.conf lacks %q:\n%s", want, ka)
		}
	}
	cd := string(conntrackdConf(l, "lb2"))
	for _, want := range []string{"Mode FTFW", "IPv4_interface 203.0.113.251", "Interface eth2", "Path /run/x/lb2/conntrackd.ctl", "IPv4_address 198.51.100.53"} {
		if !strings.Contains(cd, want) {
			t.Errorf("conntrackd.conf lacks %q:\n%s", want, cd)
		}
	}
	if strings.Contains(cd, "198.51.100.51") {
		t.Errorf("conntrackd ignores the VIP, the service address:\n%s", cd)
	}
	hc := string(haproxyConfig(plan.Segments[0].VIP, []netipAddr{mustAddr("192.0.2.20"), mustAddr("192.0.2.21")}))
	for _, want := range []string{"mode tcp", "bind 198.51.100.51:80", "bind 198.51.100.51:5201", "stick on src", "server s2 192.0.2.21\n"} {
		if !strings.Contains(hc, want) {
			t.Errorf("haproxy.cfg lacks %q:\n%s", want, hc)
		}
	}
	pf, err := benchPfConf()
	if err != nil || !bytes.Contains(pf, []byte(`web_ports = "{ 80, 443, 5201 }"`)) {
		t.Errorf("bench pf.conf: %v\n%s", err, pf)
	}
}

type netipAddr = netip.Addr

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
