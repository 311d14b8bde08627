//go:build linux

package integration

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pfcarp/pfcarp/lab"
)

// Issue 4 item 6: pf on nftables, end to end, with one balancer (lb1)
// running the seed's pf.conf (interface names changed only) at the seed's
// addresses. lb2 exists (the lab's topology) but runs no daemon, so it holds
// no VIP and forwards nothing: every packet of the test crosses lb1's
// ruleset and nothing else (no pfsync peer injecting states, no CARP peer),
// which is the cleanest reading of "one balancer". lb1 still runs CARP on
// the seed's rc.conf, alone, so it becomes MASTER of both VIPs after the
// master-down interval.
func TestSeedPF(t *testing.T) {
	l := upPFLab(t)
	p := l.Plan()
	ext, _ := p.Segment(lab.SegExternal)
	vip := ext.VIP
	lb1Ext, _ := p.Addr("lb1", "eth0")
	clients := p.ClientAddrs()
	if len(clients) < 3 {
		t.Fatalf("lab has %d client addresses, want 3", len(clients))
	}
	servers := map[int]netip.Addr{} // backend index -> address
	var serverNames []string
	for _, s := range p.Servers() {
		a, _ := p.Addr(s.Name, "eth0")
		servers[s.Index] = a
		serverNames = append(serverNames, s.Name)
	}
	pf := &pfLab{l: l, vip: vip, servers: servers}

	t0 := time.Now()
	waitCARP(t, l, 10*time.Second, map[string]string{"lb1": "MASTER"})
	t.Logf("lb1 alone: MASTER of carp0 and carp1 %s after up", ms(time.Since(t0)))
	// The ruleset the daemon loaded at start, before it was MASTER.
	pf.wantNat(t, "after start")

	t.Run("round-robin sticky-address", func(t *testing.T) {
		// The daemon loaded the rules and nothing has reached the VIP
		// since, so the sticky map is empty. round-robin is `numgen inc mod
		// 2` (compile/translate.go), consulted only when the source has no
		// sticky entry, so consecutive NEW sources alternate whatever the
		// counter's start value: the first request of .89 and of .90 land
		// on different backends, .91 on .89's. Then 19 more rounds of one
		// request per client on new connections, interleaved: without
		// sticky-address each client would alternate.
		url := fmt.Sprintf("http://%s/", vip)
		first := map[netip.Addr]int{}
		for _, c := range clients[:3] {
			first[c] = pf.server(t, c, url)
		}
		a, b, c := first[clients[0]], first[clients[1]], first[clients[2]]
		if a == b || c != a {
			t.Errorf("first requests of %s, %s, %s went to No.%d, No.%d, No.%d: round-robin over two backends must alternate between new sources",
				clients[0], clients[1], clients[2], a, b, c)
		}
		count := map[int]int{}
		for range 19 {
			for _, c := range clients[:3] {
				n := pf.server(t, c, url)
				count[n]++
				if n != first[c] {
					t.Errorf("client %s: answer from No.%d, want its sticky No.%d", c, n, first[c])
				}
			}
		}
		t.Logf("first answers: %s -> No.%d, %s -> No.%d, %s -> No.%d; then 19 rounds of new connections: %v (backend -> answers)",
			clients[0], a, clients[1], b, clients[2], c, count)

		// rdr rewrites the destination only: the backend sees the client.
		body, err := l.Get(context.Background(), "client", clients[0], fmt.Sprintf("http://%s/whoami", vip))
		if err != nil {
			t.Fatal(err)
		}
		seen, err := netip.ParseAddrPort(strings.TrimSpace(body))
		if err != nil || seen.Addr() != clients[0] {
			t.Errorf("/whoami through the VIP from %s: backend saw %q, want the client's own address", clients[0], body)
		}
	})

	t.Run("states", func(t *testing.T) {
		// A redirected /stream connection, held open while pfctl -s states
		// runs: all tcp SERVER:80 <- VIP:80 <- CLIENT:PORT.
		c := clients[0]
		conn, err := l.DialFrom(context.Background(), "client", c, "tcp", netip.AddrPortFrom(vip, 80).String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		const secs, rate = 1, 20000
		fmt.Fprintf(conn, "GET /stream?seconds=%d&rate=%d HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", secs, rate, vip)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		n, err := strconv.Atoi(resp.Header.Get("X-Lab-Server"))
		if err != nil || !servers[n].IsValid() {
			t.Fatalf("/stream answered by %q", resp.Header.Get("X-Lab-Server"))
		}
		local := netip.MustParseAddrPort(conn.LocalAddr().String())
		states := pf.pfctl(t, "-s", "states")
		re := regexp.MustCompile(`(?m)^all tcp ` + regexp.QuoteMeta(netip.AddrPortFrom(servers[n], 80).String()) +
			` <- ` + regexp.QuoteMeta(netip.AddrPortFrom(vip, 80).String()) +
			` <- ` + regexp.QuoteMeta(local.String()) + ` +ESTABLISHED:ESTABLISHED$`)
		if m := re.FindString(states); m == "" {
			t.Errorf("pfctl -s states: no line matching %s:\n%s", re, states)
		} else {
			t.Logf("redirect state: %s", m)
		}
		if err := lab.VerifyContent(resp.Body, secs*rate); err != nil {
			t.Errorf("/stream via the VIP: %v", err)
		}
	})

	t.Run("outbound nat", func(t *testing.T) {
		// Backends connect out to a listener on the client segment; the
		// seed's `nat on $ext_if from $int_if:network to any -> $ext_if`
		// makes them arrive from lb1's eth0 address, and -s states shows
		// SERVER:P -> NAT:Q -> CLIENT:8081.
		pf.outbound(t, clients[0], serverNames, 2, true)
	})

	t.Run("port not redirected", func(t *testing.T) {
		pf.blocked(t, clients[1])
	})

	t.Run("reload under load", func(t *testing.T) {
		pf.reloadUnderLoad(t, clients[:3])
		// The reloads happened with lb1 MASTER (the VIPs on eth0 and
		// eth1): the loaded nat must still translate to eth0's own address.
		pf.wantNat(t, "after reloads as MASTER")
		pf.outbound(t, clients[0], serverNames, 2, false)
	})

	t.Run("counters", func(t *testing.T) {
		// Fresh counters: load again, then K redirected connections and M
		// outbound ones. Each kernel rule counts the first packet of a
		// connection (later ones pass by state), so the counts are exact.
		pf.pfctl(t, "-f", filepath.Join(l.NodeDir("lb1"), "pf.conf"))
		const k = 5
		url := fmt.Sprintf("http://%s/", vip)
		for range k {
			pf.server(t, clients[2], url)
		}
		m := pf.outbound(t, clients[0], serverNames, 2, false)
		out := pf.pfctl(t, "-s", "nat", "-v")
		check := func(ruleRE string, want int) {
			t.Helper()
			re := regexp.MustCompile(`(?m)^` + ruleRE + `\n +\[ Evaluations: (\d+) +Packets: (\d+) +Bytes: (\d+) `)
			sm := re.FindStringSubmatch(out)
			if sm == nil {
				t.Errorf("pfctl -s nat -v: no rule matching %s with counters:\n%s", re, out)
				return
			}
			ev, _ := strconv.Atoi(sm[1])
			pk, _ := strconv.Atoi(sm[2])
			by, _ := strconv.Atoi(sm[3])
			if pk != want || ev < pk || (want > 0) != (by > 0) {
				t.Errorf("pfctl -s nat -v: %s: evaluations %d, packets %d, bytes %d; want packets %d", ruleRE, ev, pk, by, want)
			}
		}
		check(`nat on eth0 inet from \S+ to any -> `+regexp.QuoteMeta(lb1Ext.String()), m)
		check(`rdr on eth0 inet proto tcp from any to `+regexp.QuoteMeta(vip.String())+` port = http -> .*`, k)
		check(`rdr on eth0 inet proto tcp from any to `+regexp.QuoteMeta(vip.String())+` port = https -> .*`, 0)
		t.Logf("pfctl -s nat -v after %d redirected and %d outbound connections:\n%s", k, m, strings.TrimSpace(out))
	})
}

// upPFLab brings up the seed cluster at the seed's addresses with only
// lb1's daemon.
func upPFLab(t *testing.T) *lab.Lab {
	t.Helper()
	o := lab.Options{Seed: true, Dir: filepath.Join(t.TempDir(), "lab")}
	o, err := lab.WithCluster(o)
	if err != nil {
		t.Fatal(err)
	}
	delete(o.Daemons, "lb2")
	delete(o.NodeFiles, "lb2")
	return upLab(t, o)
}

// pfLab drives lb1's pf in the lab.
type pfLab struct {
	l       *lab.Lab
	vip     netip.Addr
	servers map[int]netip.Addr
}

// pfctl runs `pfcarp pfctl args...` in lb1 (with the node's config, as
// `lab exec` does) and returns its standard output; a failure fails t.
func (pf *pfLab) pfctl(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd, err := pf.l.Command(ctx, "lb1", append([]string{pfcarpBin(t), "pfctl"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := pf.l.Run("lb1", cmd); err != nil {
		t.Fatalf("pfctl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

var greetingRE = regexp.MustCompile(`^hi, this is No\.(\d+) server\n$`)

// server GETs url from the client address src on a new connection and
// returns the number of the backend that answered.
func (pf *pfLab) server(t *testing.T, src netip.Addr, url string) int {
	t.Helper()
	n, err := pf.get(src, url)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (pf *pfLab) get(src netip.Addr, url string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	body, err := pf.l.Get(ctx, "client", src, url)
	if err != nil {
		return 0, fmt.Errorf("GET %s from %s: %w", url, src, err)
	}
	m := greetingRE.FindStringSubmatch(body)
	if m == nil {
		return 0, fmt.Errorf("GET %s from %s: body %q is no backend's greeting", url, src, body)
	}
	n, _ := strconv.Atoi(m[1])
	if !pf.servers[n].IsValid() {
		return 0, fmt.Errorf("GET %s from %s: answer from No.%d, which is not in the pool", url, src, n)
	}
	return n, nil
}

// wantNat checks that pfctl -s nat prints the seed's translation rules,
// resolved on lb1: nat to eth0's own address (not the VIP that Linux keeps
// on eth0 while MASTER), rdr of http and https to both backends.
func (pf *pfLab) wantNat(t *testing.T, when string) {
	t.Helper()
	p := pf.l.Plan()
	lb1Ext, _ := p.Addr("lb1", "eth0")
	in, _ := p.Segment(lab.SegInternal)
	var pool []string
	for i := 1; i <= len(pf.servers); i++ {
		pool = append(pool, pf.servers[i].String())
	}
	rdr := func(port string) string {
		return fmt.Sprintf("rdr on eth0 inet proto tcp from any to %s port = %s -> { %s } round-robin sticky-address",
			pf.vip, port, strings.Join(pool, ", "))
	}
	want := strings.Join([]string{
		fmt.Sprintf("nat on eth0 inet from %s to any -> %s", in.Prefix, lb1Ext),
		rdr("http"), rdr("https"),
	}, "\n") + "\n"
	if got := pf.pfctl(t, "-s", "nat"); got != want {
		t.Errorf("pfctl -s nat %s:\n%s\nwant:\n%s", when, got, want)
	}
}

// outbound connects perServer times from each named server to a listener on
// the client node at dst:8081 and checks the listener sees lb1's external
// address; with withStates it also finds each connection's state in pfctl
// -s states while it is open. It returns the number of connections made.
func (pf *pfLab) outbound(t *testing.T, dst netip.Addr, serverNames []string, perServer int, withStates bool) int {
	t.Helper()
	lb1Ext, _ := pf.l.Plan().Addr("lb1", "eth0")
	var ln net.Listener
	target := netip.AddrPortFrom(dst, 8081)
	if err := pf.l.InNode("client", func() error {
		var err error
		ln, err = net.Listen("tcp", target.String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	type accepted struct {
		remote netip.AddrPort
		conn   net.Conn
	}
	acc := make(chan accepted)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // owned here: ends when ln is closed
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				close(acc)
				return
			}
			acc <- accepted{netip.MustParseAddrPort(c.RemoteAddr().String()), c}
		}
	}()
	defer func() {
		ln.Close()
		for a := range acc {
			a.conn.Close()
		}
		wg.Wait()
	}()
	n := 0
	for _, s := range serverNames {
		sAddr, _ := pf.l.Plan().Addr(s, "eth0")
		for range perServer {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c, err := pf.l.DialFrom(ctx, s, netip.Addr{}, "tcp", target.String())
			cancel()
			if err != nil {
				t.Fatalf("%s: connecting out to %s: %v", s, target, err)
			}
			n++
			var a accepted
			select {
			case a = <-acc:
			case <-time.After(5 * time.Second):
				c.Close()
				t.Fatalf("%s: the listener at %s accepted nothing", s, target)
			}
			local := netip.MustParseAddrPort(c.LocalAddr().String())
			if local.Addr() != sAddr {
				t.Errorf("%s: connected from %s, want its address %s", s, local, sAddr)
			}
			if a.remote.Addr() != lb1Ext {
				t.Errorf("%s -> %s: the listener saw %s, want the nat address %s (lb1 eth0)", s, target, a.remote, lb1Ext)
			}
			if withStates {
				re := regexp.MustCompile(`(?m)^all tcp ` + regexp.QuoteMeta(local.String()) + ` -> ` +
					regexp.QuoteMeta(a.remote.String()) + ` -> ` + regexp.QuoteMeta(target.String()) + ` +ESTABLISHED:ESTABLISHED$`)
				states := pf.pfctl(t, "-s", "states")
				if m := re.FindString(states); m == "" {
					t.Errorf("pfctl -s states: no line matching %s:\n%s", re, states)
				} else {
					t.Logf("outbound nat state: %s", m)
				}
			}
			c.Close()
			a.conn.Close()
		}
	}
	return n
}

// blocked checks a port that is not redirected (8080 on the VIP, where
// lb1 itself listens): the seed's ruleset passes it; with a block rule
// added it is dropped under the seed's `set block-policy drop` and reset
// under `block return` or `set block-policy return`. The redirected port
// keeps working throughout. The daemon's SIGHUP restores the seed's rules.
func (pf *pfLab) blocked(t *testing.T, src netip.Addr) {
	t.Helper()
	var ln net.Listener
	if err := pf.l.InNode("lb1", func() error {
		var err error
		ln, err = net.Listen("tcp", ":8080")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // owned here: ends when ln is closed
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	defer func() { ln.Close(); wg.Wait() }()

	port := netip.AddrPortFrom(pf.vip, 8080).String()
	url := fmt.Sprintf("http://%s/", pf.vip)
	dial := func(timeout time.Duration) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		t0 := time.Now()
		c, err := pf.l.DialFrom(ctx, "client", src, "tcp", port)
		d := time.Since(t0)
		if err == nil {
			c.Close()
		}
		return d, err
	}
	if _, err := dial(3 * time.Second); err != nil {
		t.Fatalf("seed ruleset (no block rule): %s: %v, want a connection (pf's default is pass)", port, err)
	}

	seedConf, err := os.ReadFile(filepath.Join(pf.l.NodeDir("lb1"), "pf.conf"))
	if err != nil {
		t.Fatal(err)
	}
	const dropWait = 1500 * time.Millisecond
	for _, v := range []struct {
		name   string
		edit   func(string) string
		reset  bool
		ruleRE string
	}{
		{"block (set block-policy drop)", func(s string) string {
			return s + "block in on $ext_if proto tcp to $ext_carp\n"
		}, false, `block (?:drop )?in on eth0 inet proto tcp from any to ` + regexp.QuoteMeta(pf.vip.String())},
		{"block return", func(s string) string {
			return s + "block return in on $ext_if proto tcp to $ext_carp\n"
		}, true, `block return in on eth0 inet proto tcp from any to ` + regexp.QuoteMeta(pf.vip.String())},
		{"block (set block-policy return)", func(s string) string {
			return strings.Replace(s, "set block-policy drop", "set block-policy return", 1) +
				"block in on $ext_if proto tcp to $ext_carp\n"
		}, true, `block return in on eth0 inet proto tcp from any to ` + regexp.QuoteMeta(pf.vip.String())},
	} {
		text := v.edit(string(seedConf))
		if text == string(seedConf) {
			t.Fatalf("%s: the variant did not change the seed's pf.conf", v.name)
		}
		file := filepath.Join(pf.l.NodeDir("lb1"), "pf-variant.conf")
		if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		pf.pfctl(t, "-f", file)
		d, err := dial(dropWait)
		switch {
		case !v.reset && err == nil:
			t.Errorf("%s: %s answered, want it dropped", v.name, port)
		case !v.reset && !errors.Is(err, context.DeadlineExceeded):
			t.Errorf("%s: %s: %v after %s, want no answer (a timeout)", v.name, port, err, ms(d))
		case v.reset && !errors.Is(err, syscall.ECONNREFUSED):
			t.Errorf("%s: %s: %v after %s, want a reset (connection refused)", v.name, port, err, ms(d))
		case v.reset && d >= dropWait/2:
			t.Errorf("%s: %s: refused only after %s, want at once", v.name, port, ms(d))
		default:
			t.Logf("%s: %s: %v after %s", v.name, port, err, ms(d))
		}
		if _, err := pf.get(src, url); err != nil {
			t.Errorf("%s: the redirected port stopped working: %v", v.name, err)
		}
		// The block rule counted the attempt (drop: the SYN and its
		// retransmissions).
		rules := pf.pfctl(t, "-s", "rules", "-v")
		re := regexp.MustCompile(`(?m)^` + v.ruleRE + `\n +\[ Evaluations: (\d+) +Packets: (\d+) `)
		if sm := re.FindStringSubmatch(rules); sm == nil {
			t.Errorf("%s: pfctl -s rules -v: no rule matching %s:\n%s", v.name, re, rules)
		} else if pk, _ := strconv.Atoi(sm[2]); pk < 1 {
			t.Errorf("%s: pfctl -s rules -v: the block rule counted %s packets, want >= 1:\n%s", v.name, sm[2], rules)
		} else {
			t.Logf("%s: block rule evaluations %s, packets %s", v.name, sm[1], sm[2])
		}
	}

	// SIGHUP: the daemon reloads its pf_rules, the seed's file.
	pf.sighup(t)
	if _, err := dial(3 * time.Second); err != nil {
		t.Errorf("after SIGHUP (seed ruleset again): %s: %v, want a connection", port, err)
	}
}

// sighup sends SIGHUP to lb1's daemon and waits until it logs the reload.
func (pf *pfLab) sighup(t *testing.T) {
	t.Helper()
	var pid int
	for _, n := range pf.l.Status().Nodes {
		if n.Name == "lb1" && n.Daemon != nil && n.Daemon.State == "running" {
			pid = n.Daemon.PID
		}
	}
	if pid == 0 {
		t.Fatal("lb1's daemon is not running")
	}
	logPath := filepath.Join(pf.l.NodeDir("lb1"), "daemon.log")
	loads := func() (ok, failed int) {
		b, _ := os.ReadFile(logPath)
		return bytes.Count(b, []byte(`msg="pf rules loaded"`)), bytes.Count(b, []byte(`msg="reload failed`))
	}
	ok0, failed0 := loads()
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatalf("SIGHUP lb1's daemon (pid %d): %v", pid, err)
	}
	waitFor(t, 5*time.Second, "lb1's daemon to log the reload", func() bool {
		ok, failed := loads()
		if failed > failed0 {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("SIGHUP: the daemon's reload failed:\n%s", lastLines(string(b), 5))
		}
		return ok > ok0
	})
}

// reloadUnderLoad runs one long /stream per client and a loop of short
// requests per client (each on a new connection), reloads the ruleset six
// times (SIGHUP to the daemon and pfctl -f in turn) while they run, and
// checks that no request failed and every stream arrived whole.
func (pf *pfLab) reloadUnderLoad(t *testing.T, clients []netip.Addr) {
	t.Helper()
	const (
		streamSecs = 4
		streamRate = 100000
		reloads    = 6
	)
	type result struct {
		src   netip.Addr
		err   error
		start time.Time
		end   time.Time
	}
	streamURL := fmt.Sprintf("http://%s/stream?seconds=%d&rate=%d", pf.vip, streamSecs, streamRate)
	streams := make(chan result, len(clients))
	started := make(chan struct{}, len(clients))
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 3*streamSecs*time.Second)
	defer cancel()
	for _, c := range clients {
		wg.Add(1)
		go func() { // owned here: bounded by ctx, waited for below
			defer wg.Done()
			r := result{src: c, start: time.Now()}
			defer func() { r.end = time.Now(); streams <- r }()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, streamURL, nil)
			if err != nil {
				r.err = err
				return
			}
			hc := pf.l.HTTPClient("client", c)
			hc.Timeout = 0
			resp, err := hc.Do(req)
			if err != nil {
				r.err = err
				started <- struct{}{}
				return
			}
			defer resp.Body.Close()
			started <- struct{}{}
			if resp.StatusCode != http.StatusOK {
				r.err = fmt.Errorf("%s", resp.Status)
				return
			}
			r.err = lab.VerifyContent(resp.Body, streamSecs*streamRate)
		}()
	}

	// Short requests, checked down to the greeting, from every client.
	type tally struct {
		mu     sync.Mutex
		ok     int
		failed []error
	}
	var tl tally
	stop := make(chan struct{})
	url := fmt.Sprintf("http://%s/", pf.vip)
	var lwg sync.WaitGroup
	for _, c := range clients {
		lwg.Add(1)
		go func() { // owned here: ends when stop is closed
			defer lwg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, err := pf.get(c, url)
				tl.mu.Lock()
				if err != nil {
					tl.failed = append(tl.failed, err)
				} else {
					tl.ok++
				}
				tl.mu.Unlock()
				select {
				case <-stop:
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
		}()
	}
	stopLoops := sync.OnceFunc(func() { close(stop); lwg.Wait() })
	defer stopLoops()

	for range clients {
		select {
		case <-started:
		case <-ctx.Done():
			t.Fatal("the streams did not start")
		}
	}
	conf := filepath.Join(pf.l.NodeDir("lb1"), "pf.conf")
	tReload := time.Now()
	for i := range reloads {
		time.Sleep(200 * time.Millisecond) // let requests run between reloads
		if i%2 == 0 {
			pf.sighup(t)
		} else {
			pf.pfctl(t, "-f", conf)
		}
	}
	reloadTook := time.Since(tReload)
	time.Sleep(200 * time.Millisecond)
	wg.Wait()
	stopLoops()
	close(streams)
	for r := range streams {
		if r.err != nil {
			t.Errorf("stream from %s: %v", r.src, r.err)
			continue
		}
		if r.end.Before(tReload.Add(reloadTook)) {
			t.Errorf("stream from %s ended %s before the last reload: it did not span the reloads", r.src, ms(tReload.Add(reloadTook).Sub(r.end)))
		}
		t.Logf("stream from %s: %d bytes verified over %s", r.src, streamSecs*streamRate, ms(r.end.Sub(r.start)))
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	t.Logf("%d reloads (SIGHUP and pfctl -f in turn) in %s; %d short requests on new connections, %d failed",
		reloads, ms(reloadTook), tl.ok, len(tl.failed))
	for i, err := range tl.failed {
		if i == 5 {
			t.Errorf("... and %d more failed requests", len(tl.failed)-5)
			break
		}
		t.Errorf("request during reloads: %v", err)
	}
	if tl.ok < 3*len(clients) {
		t.Errorf("only %d short requests succeeded during the reloads", tl.ok)
	}
}
