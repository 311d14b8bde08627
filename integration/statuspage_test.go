//go:build linux

package integration

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/net/html"

	"github.com/pfcarp/pfcarp/internal/testenv"
	"github.com/pfcarp/pfcarp/lab"
)

// ArtifactsEnv names a directory where tests keep files for a person to
// look at after the run (CI uploads it); unset, they go to t.TempDir().
const ArtifactsEnv = "PFCARP_ARTIFACTS"

// statusPort is where the status page test's daemons serve pfcarp_metrics.
const statusPort = 9412

// Issue 12, item 4: the status page in a real browser. The seed cluster
// runs with pfcarp_metrics on each balancer's sync address and
// pfcarp_peer_status pointing at the other's; after some traffic through
// the external VIP, headless Chromium inside lb1's namespace loads lb1's
// page, and the test reads what the browser rendered (its DOM after load):
// both nodes, each VIP's state, pfsync's health and lag, pf's rule
// counters and table sizes. The screenshot is kept. The same node's
// /metrics gives the table's size too (pfcarp_pf_table_entries).
func TestStatusPageInBrowser(t *testing.T) {
	testenv.RequireRoot(t)
	chromium := lookChromium(t)
	plan, err := lab.NewPlan(false, lab.DefaultBackends)
	if err != nil {
		t.Fatal(err)
	}
	web := map[string]netip.AddrPort{}
	for _, n := range []string{"lb1", "lb2"} {
		a, ok := plan.Addr(n, "eth2")
		if !ok {
			t.Fatalf("the plan has no %s eth2", n)
		}
		web[n] = netip.AddrPortFrom(a, statusPort)
	}
	dir := filepath.Join(t.TempDir(), "lab")
	files, err := lab.ClusterFiles(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	for n, peer := range map[string]string{"lb1": "lb2", "lb2": "lb1"} {
		files[n]["pfcarp.conf"] = fmt.Appendf(files[n]["pfcarp.conf"],
			"pfcarp_metrics=%q\npfcarp_peer_status=%q\n", web[n], web[peer])
		// A table beside the seed's rules, for the table size metric and
		// the page's table list: 203.0.113.99 and a /30 are two entries.
		files[n]["pf.conf"] = append(files[n]["pf.conf"],
			"table <blocked> persist { 203.0.113.99, 198.51.100.200/30 }\nblock in quick on $ext_if from <blocked>\n"...)
	}
	l := upLabPrefix(t, lab.Options{Dir: dir, NodeFiles: files}, "pd-")
	ext, _ := plan.Segment(lab.SegExternal)
	in, _ := plan.Segment(lab.SegInternal)

	waitCARP(t, l, 15*time.Second, map[string]string{"lb1": "MASTER", "lb2": "BACKUP"})
	for _, n := range []string{"lb1", "lb2"} {
		waitFor(t, 10*time.Second, n+"'s first bulk update", func() bool {
			ps := status(t, l, n).Pfsync
			return ps != nil && ps.BulkDone >= 1 && ps.Bulk == "idle"
		})
	}
	// Traffic through lb1: rdr counters on lb1, state updates (and their
	// lag) on lb2.
	const requests = 6
	clients := plan.ClientAddrs()
	for i := range requests {
		greeting(t, l, clients[i%len(clients)], fmt.Sprintf("http://%s", ext.VIP))
	}
	waitFor(t, 5*time.Second, "lb2 to receive state updates outside a bulk update", func() bool {
		ps := status(t, l, "lb2").Pfsync
		return ps != nil && ps.SyncLag.Count > 0
	})

	art := os.Getenv(ArtifactsEnv)
	if art == "" {
		art = t.TempDir()
	} else if err := os.MkdirAll(art, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(art, "status-page-lb1.png")
	url := fmt.Sprintf("http://%s/", web["lb1"])
	browse(t, l, chromium, "lb1", "--window-size=1280,1400", "--screenshot="+shot, url)
	if fi, err := os.Stat(shot); err != nil || fi.Size() == 0 {
		t.Fatalf("chromium wrote no screenshot at %s: %v", shot, err)
	}
	t.Logf("screenshot of lb1's status page: %s", shot)
	dom := browse(t, l, chromium, "lb1", "--dump-dom", url)
	if err := os.WriteFile(filepath.Join(art, "status-page-lb1.html"), dom, 0o644); err != nil {
		t.Fatal(err)
	}
	page, err := readPage(dom)
	if err != nil {
		t.Fatalf("the rendered page: %v", err)
	}

	// Both nodes, with their groups in the state their daemons report.
	hosts := map[string]string{"lb1": "master.cluster.org", "lb2": "slave.cluster.org"}
	for n, want := range map[string]string{"lb1": "MASTER", "lb2": "BACKUP"} {
		node := page.nodes[hosts[n]]
		if node == nil {
			t.Errorf("the page shows no section for %s (%s); it has %v", n, hosts[n], page.nodeNames())
			continue
		}
		if role := map[string]string{"lb1": "this node", "lb2": "peer"}[n]; node.role != role {
			t.Errorf("%s's section is marked %q, want %q", n, node.role, role)
		}
		for _, g := range []struct {
			name string
			vip  netip.Addr
		}{{"carp0", ext.VIP}, {"carp1", in.VIP}} {
			row := node.row(g.name)
			vip := netip.PrefixFrom(g.vip, ext.Prefix.Bits()).String()
			if len(row) < 3 || row[1] != want || !strings.Contains(row[2], vip) {
				t.Errorf("%s, group %s: row %q, want state %s and VIP %s", n, g.name, row, want, vip)
			}
		}
		if h := node.row("health"); len(h) < 2 || !strings.HasPrefix(h[1], "healthy") {
			t.Errorf("%s: pfsync health row %q, want healthy", n, h)
		}
		if bulk := node.row("bulk"); len(bulk) < 2 || !strings.Contains(bulk[1], "idle") {
			t.Errorf("%s: pfsync bulk row %q, want idle", n, bulk)
		}
	}
	if lb2 := page.nodes[hosts["lb2"]]; lb2 != nil {
		lag := lb2.row("lag")
		if len(lag) < 2 || !lagRE(lag[1]) {
			t.Errorf("lb2's sync lag row %q: want the updates counted and their median and 99th percentile", lag)
		}
	}
	// pf's rule counters: the http rdr rule took every request (its
	// counters count a connection's first packet).
	col := map[string]int{}
	if len(page.rules) > 0 {
		for i, h := range page.rules[0] {
			col[h] = i
		}
	}
	pi, okp := col["packets"]
	bi, okb := col["bytes"]
	ti, okt := col["text"]
	if !okp || !okb || !okt {
		t.Fatalf("the pf rules table has no packets, bytes and text columns: %q", page.rules)
	}
	var rdr []string
	for _, r := range page.rules[1:] {
		if len(r) == len(page.rules[0]) && strings.HasPrefix(r[0], "rdr") && strings.Contains(r[ti], "port = http ") {
			rdr = r
		}
	}
	if rdr == nil {
		t.Fatalf("no http rdr rule in the page's pf rules: %q", page.rules)
	}
	pkts, err1 := strconv.ParseUint(rdr[pi], 10, 64)
	byts, err2 := strconv.ParseUint(rdr[bi], 10, 64)
	if err1 != nil || err2 != nil || pkts < requests || byts == 0 {
		t.Errorf("rdr rule counters %q: want at least %d packets and some bytes", rdr, requests)
	}
	if got := fmt.Sprint(page.tables); got != "[[anchor table entries] [main <blocked> 2]]" {
		t.Errorf("the page's pf tables: %s, want <blocked> in the main ruleset with 2 entries", got)
	}

	// The same kernel's table, scraped: pfcarp_pf_table_entries.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	body, err := l.Get(ctx, "lb1", netip.Addr{}, fmt.Sprintf("http://%s/metrics", web["lb1"]))
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("the Prometheus text parser rejects lb1's /metrics: %v", err)
	}
	var tables []string
	for _, m := range fams["pfcarp_pf_table_entries"].GetMetric() {
		l := map[string]string{}
		for _, lp := range m.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		tables = append(tables, fmt.Sprintf("%q/%s=%v", l["anchor"], l["table"], m.GetGauge().GetValue()))
	}
	if got := strings.Join(tables, " "); got != `""/blocked=2` {
		t.Errorf("pfcarp_pf_table_entries on lb1: %s, want \"\"/blocked=2", got)
	}

	// A failover, scraped (issue 12: "the metrics scraped from a lab node
	// during a failover"): lb1's external cable is pulled; lb2's /metrics
	// (over the sync link, still up) shows its groups MASTER, their
	// transitions counted, and the states pfsync brought it.
	before := scrapeFamilies(t, l, "lb1", web["lb2"])
	if err := l.SetCable("lb1", "eth0", false); err != nil {
		t.Fatal(err)
	}
	var after map[string]*dto.MetricFamily
	waitFor(t, 15*time.Second, "lb2's /metrics to show both groups MASTER", func() bool {
		after = scrapeFamilies(t, l, "lb1", web["lb2"])
		n := 0
		for _, m := range after["pfcarp_carp_state"].GetMetric() {
			if labels(m)["state"] == "master" && m.GetGauge().GetValue() == 1 {
				n++
			}
		}
		return n == 2
	})
	trans := func(f map[string]*dto.MetricFamily) (sum float64) {
		for _, m := range f["pfcarp_carp_transitions_total"].GetMetric() {
			sum += m.GetCounter().GetValue()
		}
		return sum
	}
	if b, a := trans(before), trans(after); a < b+2 {
		t.Errorf("lb2's pfcarp_carp_transitions_total %v before the pull, %v after: want both groups' takeovers counted", b, a)
	}
	if st := after["pfcarp_pfsync_states_received_total"].GetMetric(); len(st) != 1 || st[0].GetCounter().GetValue() == 0 {
		t.Errorf("lb2's pfcarp_pfsync_states_received_total: %v, want the states of the traffic above", st)
	}
}

// scrapeFamilies reads the Prometheus text of addr's /metrics from node's
// namespace, parsed.
func scrapeFamilies(t *testing.T, l *lab.Lab, node string, addr netip.AddrPort) map[string]*dto.MetricFamily {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	body, err := l.Get(ctx, node, netip.Addr{}, fmt.Sprintf("http://%s/metrics", addr))
	if err != nil {
		t.Fatalf("scraping %s from %s: %v", addr, node, err)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("the Prometheus text parser rejects %s's /metrics: %v", addr, err)
	}
	return fams
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, lp := range m.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

// lagRE reports whether s reads like "N updates: median ≤ D, 99th
// percentile ≤ D, mean D" with N > 0.
func lagRE(s string) bool {
	var n int
	if _, err := fmt.Sscanf(s, "%d updates", &n); err != nil || n <= 0 {
		return false
	}
	return strings.Contains(s, "median") && strings.Contains(s, "99th")
}

// lookChromium finds Debian's chromium; without it the test skips, or
// fails under PFCARP_REQUIRE_ROOT=1 (scripts/deps.sh installs it).
func lookChromium(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("chromium")
	if err == nil {
		return p
	}
	msg := "chromium not found (Debian package chromium; scripts/deps.sh installs it)"
	if os.Getenv(testenv.RequireRootEnv) == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// browse runs headless chromium with args inside node and returns its
// standard output. Its profile and home are a temporary directory, so it
// leaves nothing on the host; its processes are one group, killed at the
// end however it ends.
func browse(t *testing.T, l *lab.Lab, chromium, node string, args ...string) []byte {
	t.Helper()
	home := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	argv := append([]string{chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-extensions", "--hide-scrollbars", "--user-data-dir=" + filepath.Join(home, "profile")}, args...)
	cmd, err := l.Command(ctx, node, argv...)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(cmd.Env, "HOME="+home, "XDG_CONFIG_HOME="+home, "XDG_CACHE_HOME="+home)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	t0 := time.Now()
	err = l.Run(node, cmd)
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // any child left behind; ESRCH when none
	}
	if err != nil {
		t.Fatalf("chromium %s in %s: %v\n%s", strings.Join(args, " "), node, err, lastLines(errb.String(), 20))
	}
	t.Logf("chromium %s: %s", args[len(args)-2], ms(time.Since(t0)))
	return out.Bytes()
}

// statusPage is what the test reads from the rendered page: each node's
// section by host name and pf's rule table, as rows of cell texts.
type statusPage struct {
	nodes  map[string]*pageNode
	rules  [][]string
	tables [][]string
}

type pageNode struct {
	role string // data-role: "this node" or "peer"
	rows [][]string
}

// row returns the first row whose first cell is first.
func (n *pageNode) row(first string) []string {
	for _, r := range n.rows {
		if len(r) > 0 && r[0] == first {
			return r
		}
	}
	return nil
}

func (p *statusPage) nodeNames() []string {
	var out []string
	for h := range p.nodes {
		out = append(out, h)
	}
	return out
}

// readPage parses the DOM chromium dumped: sections are elements with class
// "node" and a data-host attribute, the rule table has class "rules".
func readPage(dom []byte) (*statusPage, error) {
	doc, err := html.Parse(bytes.NewReader(dom))
	if err != nil {
		return nil, err
	}
	p := &statusPage{nodes: map[string]*pageNode{}}
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			if hasClass(n, "node") && attr(n, "data-host") != "" {
				p.nodes[attr(n, "data-host")] = &pageNode{role: attr(n, "data-role"), rows: rows(n)}
				return
			}
			if n.Data == "table" && hasClass(n, "rules") {
				p.rules = rows(n)
				return
			}
			if n.Data == "table" && hasClass(n, "tables") {
				p.tables = rows(n)
				return
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if len(p.nodes) == 0 {
		return nil, fmt.Errorf("no node sections in %d bytes of DOM", len(dom))
	}
	return p, nil
}

// rows returns the cell texts of every table row under n.
func rows(n *html.Node) [][]string {
	var out [][]string
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "tr" {
			var cells []string
			for c := n.FirstChild; c != nil; c = c.NextSibling {
				if c.Type == html.ElementNode && (c.Data == "td" || c.Data == "th") {
					cells = append(cells, strings.Join(strings.Fields(text(c)), " "))
				}
			}
			out = append(out, cells)
			return
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return out
}

func text(n *html.Node) string {
	if n.Type == html.TextNode {
		return n.Data
	}
	if n.Type == html.ElementNode && (n.Data == "style" || n.Data == "script") {
		return ""
	}
	var b strings.Builder
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		b.WriteString(text(c))
	}
	return b.String()
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasClass(n *html.Node, class string) bool {
	return strings.Contains(" "+attr(n, "class")+" ", " "+class+" ")
}
