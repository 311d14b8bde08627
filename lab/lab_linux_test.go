package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pfcarp/pfcarp/internal/testenv"
	"github.com/vishvananda/netlink"
)

// testPrefix keeps test labs apart from a lab a person may have up.
const testPrefix = "pflt-"

// TestMain lets the test binary stand in for the pfcarp binary inside the
// lab: `<test binary> lab backend ...` serves a backend and
// `<test binary> lab fake-daemon` plays a daemon. So the lab's tests do not
// depend on the rest of pfcarp building.
func TestMain(m *testing.M) {
	if len(os.Args) >= 3 && os.Args[1] == "lab" {
		os.Exit(fakePfcarp(os.Args[2], os.Args[3:]))
	}
	os.Exit(m.Run())
}

func fakePfcarp(cmd string, args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	switch cmd {
	case "backend":
		index := 0
		var listen []string
		for i := 0; i+1 < len(args); i += 2 {
			switch args[i] {
			case "--index":
				index, _ = strconv.Atoi(args[i+1])
			case "--listen":
				listen = append(listen, args[i+1])
			}
		}
		if err := ServeBackend(ctx, index, listen, nil, nil); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	case "fake-daemon":
		// Prove the environment: the lab sets the control socket path.
		if err := os.WriteFile("daemon.env", []byte(os.Getenv(SocketEnv)), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		<-ctx.Done()
		return 0
	}
	fmt.Fprintf(os.Stderr, "fake pfcarp: unknown command lab %s\n", cmd)
	return 2
}

// hostSnapshot is what must be identical before Up and after Down.
type hostSnapshot struct {
	links  []string
	mounts []string
	netns  []string
}

func snapshotHost(t *testing.T) hostSnapshot {
	t.Helper()
	var s hostSnapshot
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		s.links = append(s.links, l.Attrs().Name)
	}
	sort.Strings(s.links)
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// Only this test's namespaces: other packages' tests run at the
		// same time (go test runs packages in parallel) with their own.
		if fs := strings.Fields(sc.Text()); len(fs) > 4 && strings.HasPrefix(fs[4], netnsDir+"/"+testPrefix) {
			s.mounts = append(s.mounts, fs[4])
		}
	}
	sort.Strings(s.mounts)
	s.netns, _ = listNS(testPrefix)
	return s
}

func (s hostSnapshot) String() string {
	return fmt.Sprintf("links %v\nmounts under %s %v\nnamespaces %v", s.links, netnsDir, s.mounts, s.netns)
}

// goroutineLeakCheck fails t when goroutines started during the test are
// still running after it, printing their stacks.
func goroutineLeakCheck(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				t.Errorf("goroutine leak: %d running, %d before the test\n%s", runtime.NumGoroutine(), before, buf[:n])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// upTestLab builds a lab with the test binary as pfcarp, and registers a
// cleanup that tears it down and asserts the host is as it was: no
// namespace, link, mount, process or directory left.
func upTestLab(t *testing.T, opts Options) *Lab {
	t.Helper()
	testenv.RequireRoot(t)
	goroutineLeakCheck(t)
	if err := Cleanup("", testPrefix, nil); err != nil { // a crashed earlier test run
		t.Fatal(err)
	}
	before := snapshotHost(t)
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if opts.Dir == "" {
		opts.Dir = filepath.Join(t.TempDir(), "lab")
	}
	opts.Prefix, opts.Bin = testPrefix, bin
	opts.Logf = t.Logf
	t0 := time.Now()
	l, err := Up(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("up: %v", time.Since(t0))
	t.Cleanup(func() {
		pids := labPIDs(l)
		t0 := time.Now()
		if err := l.Down(); err != nil {
			t.Errorf("down: %v", err)
		}
		t.Logf("down: %v", time.Since(t0))
		assertClean(t, before, opts.Dir, pids)
	})
	return l
}

func labPIDs(l *Lab) []procRef {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []procRef
	for _, n := range l.st.Nodes {
		for _, r := range []procRef{n.Backend, n.DaemonProc} {
			if r.PID != 0 {
				out = append(out, r)
			}
		}
	}
	for pid := range l.children {
		out = append(out, refOf(pid))
	}
	return out
}

func assertClean(t *testing.T, before hostSnapshot, dir string, pids []procRef) {
	t.Helper()
	after := snapshotHost(t)
	if after.String() != before.String() {
		t.Errorf("host changed by the lab:\nbefore: %v\nafter:  %v", before, after)
	}
	for _, n := range after.netns {
		if strings.HasPrefix(n, testPrefix) {
			t.Errorf("namespace %s left behind", n)
		}
	}
	for _, r := range pids {
		if r.alive() {
			t.Errorf("process %d left running", r.PID)
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", r.PID)); err == nil {
			if st, start, _ := procStat(r.PID); start == r.Start {
				t.Errorf("process %d left behind (state %c)", r.PID, st)
			}
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lab directory %s left behind (%v)", dir, err)
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestClientReachesEveryBackend is issue 3's acceptance test: through a
// balancer configured by hand, each client address reaches each backend,
// the backend sees the real client address, and /bytes verifies.
func TestClientReachesEveryBackend(t *testing.T) {
	l := upTestLab(t, Options{Backends: 3})
	ctx := ctxT(t, 30*time.Second)
	p := l.Plan()
	for _, lb := range []string{"lb1", "lb2"} {
		if err := l.StaticBalancer(lb); err != nil {
			t.Fatal(err)
		}
		for _, src := range p.ClientAddrs() {
			for _, s := range p.Servers() {
				addr, _ := p.Addr(s.Name, "eth0")
				body, err := l.Get(ctx, "client", src, fmt.Sprintf("http://%s/", addr))
				if err != nil {
					t.Fatalf("via %s from %s: %v", lb, src, err)
				}
				if body != Greeting(s.Index) {
					t.Errorf("via %s from %s to %s: %q, want %q", lb, src, s.Name, body, Greeting(s.Index))
				}
				who, err := l.Get(ctx, "client", src, fmt.Sprintf("http://%s/whoami", addr))
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(who, src.String()+":") {
					t.Errorf("%s sees the client as %q, want %s:port", s.Name, who, src)
				}
			}
		}
		for _, s := range p.Servers() {
			addr, _ := p.Addr(s.Name, "eth0")
			if err := l.VerifyBytes(ctx, "client", p.ClientAddrs()[1], "http://"+addr.String(), 3<<20+5); err != nil {
				t.Errorf("via %s: %v", lb, err)
			}
		}
		// Hand the balancer role over: flush the client's stale neighbour
		// entry for the VIP the way a gratuitous ARP would update it.
		if lb == "lb1" {
			flushNeigh(t, l, "client")
			for _, s := range p.Servers() {
				flushNeigh(t, l, s.Name)
			}
		}
	}
	// The backend also listens on 443 (the seed redirects 80 and 443).
	addr, _ := p.Addr("s1", "eth0")
	if body, err := l.Get(ctx, "client", p.ClientAddrs()[0], fmt.Sprintf("http://%s:443/", addr)); err != nil || body != Greeting(1) {
		t.Errorf("port 443: %q %v", body, err)
	}
}

func flushNeigh(t *testing.T, l *Lab, node string) {
	t.Helper()
	h, ns, err := l.nsHandle(node)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	defer h.Close()
	neighs, err := h.NeighList(0, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for i := range neighs {
		h.NeighDel(&neighs[i])
	}
}

func TestSeedAddressing(t *testing.T) {
	l := upTestLab(t, Options{Seed: true})
	if err := l.StaticBalancer("lb1"); err != nil {
		t.Fatal(err)
	}
	body, err := l.Get(ctxT(t, 10*time.Second), "client", netipMust("192.168.1.91"), "http://192.168.10.21/index.htm")
	if err != nil || body != "hi, this is No.2 server\n" {
		t.Fatalf("got %q %v", body, err)
	}
	st := l.Status()
	var lb1 *NodeStatus
	for i := range st.Nodes {
		if st.Nodes[i].Name == "lb1" {
			lb1 = &st.Nodes[i]
		}
	}
	if lb1 == nil || len(lb1.Ifaces) != 3 {
		t.Fatalf("lb1 status %+v", lb1)
	}
	want := map[string]string{"eth0": "192.168.1.52/24 192.168.1.51/24", "eth1": "192.168.10.10/24 192.168.10.100/24", "eth2": "10.10.10.250/24"}
	for _, ifc := range lb1.Ifaces {
		var as []string
		for _, a := range ifc.Addrs {
			if a.Addr().Is4() {
				as = append(as, a.String())
			}
		}
		if got := strings.Join(as, " "); got != want[ifc.Name] {
			t.Errorf("lb1 %s: %s, want %s", ifc.Name, got, want[ifc.Name])
		}
		if !ifc.Up || !ifc.Carrier || ifc.Cable != "plugged" {
			t.Errorf("lb1 %s: %+v, want up with carrier and cable plugged", ifc.Name, ifc)
		}
	}
}

func TestUpRefusesExistingLabAndLeftovers(t *testing.T) {
	l := upTestLab(t, Options{Backends: 1})
	bin, _ := os.Executable()
	_, err := Up(context.Background(), Options{Dir: l.Dir(), Prefix: testPrefix, Bin: bin, Backends: 1})
	if err == nil || !strings.Contains(err.Error(), "already up") {
		t.Fatalf("second Up in the same dir: %v, want 'already up'", err)
	}
	other := filepath.Join(t.TempDir(), "other")
	_, err = Up(context.Background(), Options{Dir: other, Prefix: testPrefix, Bin: bin, Backends: 1})
	if err == nil || !strings.Contains(err.Error(), "name clash") {
		t.Fatalf("Up over existing namespaces: %v, want a name clash", err)
	}
	if _, err := os.Stat(other); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed Up left %s behind", other)
	}
	// The first lab is untouched.
	if body, err := l.Get(ctxT(t, 5*time.Second), "s1", netipMust("127.0.0.1"), "http://127.0.0.1/"); err != nil || body != Greeting(1) {
		t.Errorf("lab damaged by the refused Up: %q %v", body, err)
	}
}

// A crash mid-build leaves namespaces and processes without a state file;
// Up refuses them and Cleanup removes them, processes included.
func TestCleanupAfterCrash(t *testing.T) {
	testenv.RequireRoot(t)
	goroutineLeakCheck(t)
	if err := Cleanup("", testPrefix, nil); err != nil {
		t.Fatal(err)
	}
	before := snapshotHost(t)
	dir := filepath.Join(t.TempDir(), "lab")
	if err := createNS(testPrefix + "lb1"); err != nil {
		t.Fatal(err)
	}
	if err := createNS(testPrefix + "s1"); err != nil {
		t.Fatal(err)
	}
	// A process the lab does not know about, as if its builder died.
	sleeper := execCommand("sleep", "600")
	if err := startIn(testPrefix+"s1", sleeper); err != nil {
		t.Fatal(err)
	}
	ref := refOf(sleeper.Process.Pid)
	bin, _ := os.Executable()
	_, err := Up(context.Background(), Options{Dir: dir, Prefix: testPrefix, Bin: bin})
	if err == nil || !strings.Contains(err.Error(), "pflt-lb1, pflt-s1") || !strings.Contains(err.Error(), "lab down") {
		t.Fatalf("Up over leftovers: %v", err)
	}
	if err := Cleanup(dir, testPrefix, t.Logf); err != nil {
		t.Fatal(err)
	}
	sleeper.Wait() // reap our child
	assertClean(t, before, dir, []procRef{ref})
}

// Up fails cleanly (nothing half-built) when a backend cannot start.
func TestUpRollsBackOnFailure(t *testing.T) {
	testenv.RequireRoot(t)
	goroutineLeakCheck(t)
	before := snapshotHost(t)
	dir := filepath.Join(t.TempDir(), "lab")
	// /bin/false is executable but is no backend.
	_, err := Up(context.Background(), Options{Dir: dir, Prefix: testPrefix, Bin: "/bin/false", Backends: 2})
	if err == nil || !strings.Contains(err.Error(), "backend in s1 exited") {
		t.Fatalf("Up with a broken backend: %v", err)
	}
	assertClean(t, before, dir, nil)
	_, err = Up(context.Background(), Options{Dir: dir, Prefix: "bad/prefix", Bin: "/bin/false"})
	if err == nil || !strings.Contains(err.Error(), "prefix") {
		t.Errorf("bad prefix: %v", err)
	}
	_, err = Up(context.Background(), Options{Dir: dir, Prefix: testPrefix, Bin: "/nonexistent/pfcarp"})
	if err == nil || !strings.Contains(err.Error(), "not an executable") {
		t.Errorf("missing binary: %v", err)
	}
	assertClean(t, before, dir, nil)
}

func TestFaults(t *testing.T) {
	l := upTestLab(t, Options{Backends: 1})
	if err := l.StaticBalancer("lb1"); err != nil {
		t.Fatal(err)
	}
	p := l.Plan()
	s1, _ := p.Addr("s1", "eth0")
	url := fmt.Sprintf("http://%s/", s1)
	src := p.ClientAddrs()[0]
	reach := func(timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		_, err := l.Get(ctx, "client", src, url)
		return err
	}
	waitReach := func(what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := reach(time.Second)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: s1 unreachable: %v", what, err)
			}
		}
	}
	waitReach("start")

	// Pull lb1's external cable: lb1 sees NO-CARRIER, the client cannot
	// reach s1; plug it back in and traffic flows again.
	if err := l.SetCable("lb1", "eth0", false); err != nil {
		t.Fatal(err)
	}
	ifc := ifaceStatus(t, l, "lb1", "eth0")
	if !ifc.Up || ifc.Carrier || ifc.Cable != "pulled" {
		t.Errorf("after link-down lb1 eth0 is %+v, want admin up, no carrier, cable pulled", ifc)
	}
	if err := reach(500 * time.Millisecond); err == nil {
		t.Error("s1 reachable with lb1's cable pulled")
	}
	if err := l.SetCable("lb1", "eth0", true); err != nil {
		t.Fatal(err)
	}
	waitReach("after link-up")
	if ifc := ifaceStatus(t, l, "lb1", "eth0"); !ifc.Carrier || ifc.Cable != "plugged" {
		t.Errorf("after link-up lb1 eth0 is %+v", ifc)
	}

	// Isolate s1: carrier stays, traffic does not.
	if err := l.Isolate("s1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Isolate("s1"); err != nil {
		t.Fatalf("isolating twice: %v", err)
	}
	if ifc := ifaceStatus(t, l, "s1", "eth0"); !ifc.Carrier {
		t.Errorf("isolate touched carrier: %+v", ifc)
	}
	if iso, err := l.Isolated("s1"); !iso || err != nil {
		t.Errorf("Isolated(s1) = %v, %v", iso, err)
	}
	if err := reach(500 * time.Millisecond); err == nil {
		t.Error("s1 reachable while isolated")
	}
	if err := l.Heal("s1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Heal("s1"); err != nil {
		t.Fatalf("healing twice: %v", err)
	}
	waitReach("after heal")

	// Cut the sync link: lb1 no longer reaches lb2's sync address. A
	// refused connection proves reachability (nothing listens there).
	lb2sync, _ := p.Addr("lb2", "eth2")
	syncReach := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		c, err := l.Dial(ctx, "lb1", "tcp", lb2sync.String()+":9")
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := syncReach(); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("sync link before cut: %v, want connection refused", err)
	}
	if err := l.CutSync(); err != nil {
		t.Fatal(err)
	}
	for _, lb := range []string{"lb1", "lb2"} {
		if ifc := ifaceStatus(t, l, lb, "eth2"); ifc.Carrier {
			t.Errorf("%s eth2 has carrier after sync cut", lb)
		}
	}
	if err := syncReach(); errors.Is(err, syscall.ECONNREFUSED) || err == nil {
		t.Errorf("sync link after cut: %v, want unreachable", err)
	}
	if err := reach(2 * time.Second); err != nil {
		t.Errorf("sync cut broke the data path: %v", err)
	}
	if err := l.HealSync(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for err := syncReach(); !errors.Is(err, syscall.ECONNREFUSED); err = syncReach() {
		if time.Now().After(deadline) {
			t.Fatalf("sync link after heal: %v", err)
		}
	}

	for _, tc := range []struct {
		err  error
		want string
	}{
		{l.SetCable("lb1", "eth9", false), `no interface "eth9"`},
		{l.SetCable("nosuch", "eth0", false), `no node "nosuch"`},
		{l.SetCable("sw-ext", "br0", false), "is a switch"},
		{l.Isolate("sw-int"), "is a switch"},
		{l.KillDaemon("lb1"), "no daemon configured"},
		{l.StartDaemon("s1"), "no daemon configured"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("error %v, want %q", tc.err, tc.want)
		}
	}
}

func ifaceStatus(t *testing.T, l *Lab, node, iface string) IfaceStatus {
	t.Helper()
	for _, n := range l.Status().Nodes {
		if n.Name != node {
			continue
		}
		for _, ifc := range n.Ifaces {
			if ifc.Name == iface {
				return ifc
			}
		}
	}
	t.Fatalf("no %s %s in status", node, iface)
	return IfaceStatus{}
}

func TestDaemonsAndExec(t *testing.T) {
	bin, _ := os.Executable()
	l := upTestLab(t, Options{
		Backends:     1,
		Daemons:      map[string][]string{"lb1": {"{bin}", "lab", "fake-daemon"}, "lb2": {bin, "lab", "fake-daemon"}},
		StartDaemons: true,
	})
	daemon := func(node string) *ProcStatus {
		for _, n := range l.Status().Nodes {
			if n.Name == node {
				return n.Daemon
			}
		}
		return nil
	}
	for _, lb := range []string{"lb1", "lb2"} {
		if d := daemon(lb); d == nil || d.State != "running" {
			t.Fatalf("%s daemon %+v, want running", lb, d)
		}
		envFile := filepath.Join(l.NodeDir(lb), "daemon.env")
		deadline := time.Now().Add(5 * time.Second)
		for {
			b, err := os.ReadFile(envFile)
			if err == nil && len(b) > 0 {
				if string(b) != l.SocketPath(lb) {
					t.Errorf("%s daemon sees %s=%q, want %q", lb, SocketEnv, b, l.SocketPath(lb))
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s daemon never wrote %s", lb, envFile)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := l.StartDaemon("lb1"); err == nil || !strings.Contains(err.Error(), "already runs") {
		t.Errorf("starting a running daemon: %v", err)
	}
	if err := l.KillDaemon("lb1"); err != nil {
		t.Fatal(err)
	}
	if d := daemon("lb1"); d.State != "stopped" {
		t.Errorf("after kill: %+v", d)
	}
	if err := l.KillDaemon("lb1"); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("killing a dead daemon: %v", err)
	}
	if err := l.StartDaemon("lb1"); err != nil {
		t.Fatal(err)
	}
	if d := daemon("lb1"); d.State != "running" {
		t.Errorf("after start: %+v", d)
	}
	// A reopened handle (another process's view) sees the same daemon.
	l2, err := Open(l.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if err := l2.KillDaemon("lb2"); err != nil {
		t.Fatal(err)
	}
	l.reap(l2.st.Nodes["lb2"].DaemonProc.PID)

	// Commands run in the node, with the socket variable set.
	var out strings.Builder
	cmd, err := l.Command(context.Background(), "lb2", "sh", "-c", "echo $"+SocketEnv+"; cat /proc/net/dev")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = &out
	if err := l.Run("lb2", cmd); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), l.SocketPath("lb2")+"\n") || !strings.Contains(out.String(), "eth2:") {
		t.Errorf("exec in lb2 printed %q", out.String())
	}
	// A process left running in a node is killed by Down (asserted by the
	// cleanup through the pid list).
	bg, _ := l.Command(context.Background(), "client", "sleep", "600")
	if err := l.Start("client", bg); err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	l.children[bg.Process.Pid] = bg
	l.mu.Unlock()
}

// TestUpDownTimes logs how long up and down take (issue 3 wants under 5 s
// each); it asserts nothing about time.
func TestUpDownTimes(t *testing.T) {
	testenv.RequireRoot(t)
	bin, _ := os.Executable()
	for _, n := range []int{2, 10} {
		dir := filepath.Join(t.TempDir(), "lab")
		t0 := time.Now()
		l, err := Up(context.Background(), Options{Dir: dir, Prefix: testPrefix, Bin: bin, Backends: n})
		if err != nil {
			t.Fatal(err)
		}
		up := time.Since(t0)
		t0 = time.Now()
		if err := l.Down(); err != nil {
			t.Fatal(err)
		}
		t.Logf("backends=%d: up %v, down %v", n, up.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	}
}

func netipMust(s string) netip.Addr { return netip.MustParseAddr(s) }

func execCommand(name string, args ...string) *exec.Cmd { return exec.Command(name, args...) }

// BenchmarkUpDown reports the time of one Up and one Down of the default
// lab (2 backends) as up-ms/op and down-ms/op.
func BenchmarkUpDown(b *testing.B) {
	testenv.RequireRoot(b)
	bin, _ := os.Executable()
	var up, down time.Duration
	for i := 0; i < b.N; i++ {
		dir := filepath.Join(b.TempDir(), "lab")
		t0 := time.Now()
		l, err := Up(context.Background(), Options{Dir: dir, Prefix: testPrefix, Bin: bin})
		if err != nil {
			b.Fatal(err)
		}
		up += time.Since(t0)
		t0 = time.Now()
		if err := l.Down(); err != nil {
			b.Fatal(err)
		}
		down += time.Since(t0)
	}
	b.ReportMetric(float64(up.Milliseconds())/float64(b.N), "up-ms/op")
	b.ReportMetric(float64(down.Milliseconds())/float64(b.N), "down-ms/op")
}
