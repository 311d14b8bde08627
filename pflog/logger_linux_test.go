package pflog

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/pfcarp/pfcarp/internal/testenv"
)

// enterNewNetns locks the test goroutine to its thread, moves the thread
// into a fresh network namespace (connected to nothing) with lo up, and
// undoes both in cleanup. The namespace dies with its last socket.
func enterNewNetns(t *testing.T) netns.NsHandle {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("current netns: %v", err)
	}
	ns, err := netns.New()
	if err != nil {
		orig.Close()
		runtime.UnlockOSThread()
		t.Fatalf("new netns: %v", err)
	}
	t.Cleanup(func() {
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: it dies with the goroutine
			// rather than serving others from the wrong namespace.
			t.Errorf("restoring netns: %v", err)
			return
		}
		orig.Close()
		ns.Close()
		runtime.UnlockOSThread()
	})
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	return ns
}

// checkGoroutines fails the test if goroutines started during it are still
// running at cleanup (after a grace period polled with a deadline).
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("%d goroutines leaked:\n%s", runtime.NumGoroutine()-before, buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// logRule is a udp-dport match that logs to an NFLOG group with a prefix.
type logRule struct {
	hook    *nftables.ChainHook
	dport   uint16
	prefix  string
	verdict expr.VerdictKind
}

// installLogRules installs, in the namespace ns, the kind of rules the
// compiler emits for pf `log` rules.
func installLogRules(t *testing.T, ns netns.NsHandle, group uint16, rules []logRule) {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	tbl := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "pfcarp_pflog_test"})
	chains := map[*nftables.ChainHook]*nftables.Chain{}
	for _, r := range rules {
		ch := chains[r.hook]
		if ch == nil {
			ch = c.AddChain(&nftables.Chain{
				Name: fmt.Sprintf("hook%d", *r.hook), Table: tbl, Type: nftables.ChainTypeFilter,
				Hooknum: r.hook, Priority: nftables.ChainPriorityFilter,
			})
			chains[r.hook] = ch
		}
		c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(r.dport)},
			&expr.Log{Key: 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_PREFIX, Group: group, Data: []byte(r.prefix)},
			&expr.Verdict{Kind: r.verdict},
		}})
	}
	if err := c.Flush(); err != nil {
		t.Fatalf("installing nftables log rules (needs nf_tables and nfnetlink_log, the NFLOG backend): %v", err)
	}
}

func sendUDP(t *testing.T, from, to netip.AddrPort, n int) {
	t.Helper()
	conn, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(from), net.UDPAddrFromAddrPort(to))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for range n {
		if _, err := conn.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func tcpdumpRead(t *testing.T, path string) string {
	t.Helper()
	tcpdump, err := exec.LookPath("tcpdump")
	if err != nil {
		t.Fatalf("tcpdump is not installed: run scripts/deps.sh (CI installs it): %v", err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(tcpdump, "-n", "-e", "-r", path)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("tcpdump -n -e -r %s: %v\n%s", path, err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "link-type PFLOG") {
		t.Errorf("tcpdump did not see link type PFLOG: %s", stderr.String())
	}
	return stdout.String()
}

// countMatches returns how many lines of out match re.
func countMatches(out string, re *regexp.Regexp) int {
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if re.MatchString(line) {
			n++
		}
	}
	return n
}

// TestLoggerTcpdump is the acceptance test: nftables log rules send
// packets to NFLOG, the Logger writes them as pflog, and the real tcpdump
// prints BSD pflog lines. It also rotates the file midway.
func TestLoggerTcpdump(t *testing.T) {
	testenv.RequireRoot(t)
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Fatalf("tcpdump is not installed: run scripts/deps.sh (CI installs it): %v", err)
	}
	checkGoroutines(t)
	ns := enterNewNetns(t)
	const group = 5
	installLogRules(t, ns, group, []logRule{
		{nftables.ChainHookInput, 9999, FormatPrefix(Meta{Rule: 3, Action: ActionBlock, Dir: DirIn}), expr.VerdictDrop},
		{nftables.ChainHookOutput, 9998, FormatPrefix(Meta{Rule: 4, Anchor: "web", SubRule: 1, Action: ActionPass, Dir: DirOut}), expr.VerdictAccept},
		{nftables.ChainHookOutput, 9997, "not-pfcarp", expr.VerdictAccept},
	})

	dir := t.TempDir()
	path := filepath.Join(dir, "pflog")
	var logs bytes.Buffer
	l, err := Open(path, group, Config{Logf: func(f string, a ...any) { fmt.Fprintf(&logs, f+"\n", a...) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })

	// A second listener on the same group is refused with a clear error.
	if r, err := Listen(group, ReaderConfig{}); err == nil {
		r.Close()
		t.Error("second Listen on a bound group succeeded")
	} else if !strings.Contains(err.Error(), "already bound") {
		t.Errorf("second Listen: %v", err)
	}

	lo4 := netip.MustParseAddr("127.0.0.1")
	lo6 := netip.IPv6Loopback()
	sendUDP(t, netip.AddrPortFrom(lo4, 40001), netip.AddrPortFrom(lo4, 9999), 3)
	sendUDP(t, netip.AddrPortFrom(lo6, 40002), netip.AddrPortFrom(lo6, 9999), 1)
	sendUDP(t, netip.AddrPortFrom(lo4, 40003), netip.AddrPortFrom(lo4, 9998), 1)
	sendUDP(t, netip.AddrPortFrom(lo4, 40004), netip.AddrPortFrom(lo4, 9997), 1)
	waitFor(t, "5 records and 1 foreign packet", func() bool {
		s := l.Stats()
		return s.Written >= 5 && s.Foreign >= 1
	})

	// Rotate as newsyslog would: move the file away, ask for a reopen.
	old := filepath.Join(dir, "pflog.0")
	if err := os.Rename(path, old); err != nil {
		t.Fatal(err)
	}
	if err := l.Rotate(); err != nil {
		t.Fatal(err)
	}
	sendUDP(t, netip.AddrPortFrom(lo4, 40005), netip.AddrPortFrom(lo4, 9999), 2)
	waitFor(t, "2 more records", func() bool { return l.Stats().Written >= 7 })
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	s := l.Stats()
	if s.Written != 7 || s.Foreign != 1 || s.QueueDrops != 0 || s.Malformed != 0 || s.WriteErrors != 0 || s.Unusable != 0 {
		t.Errorf("stats %+v; want 7 written, 1 foreign, nothing lost", s)
	}
	if err := l.Rotate(); err == nil {
		t.Error("Rotate after Close succeeded")
	}

	first := tcpdumpRead(t, old)
	t.Logf("tcpdump -n -e -r %s:\n%s", old, first)
	checks := []struct {
		re   string
		want int
	}{
		{`^\S+ rule 3/0\(match\): block in on lo: 127\.0\.0\.1\.40001 > 127\.0\.0\.1\.9999: UDP, length 5$`, 3},
		{`^\S+ rule 3/0\(match\): block in on lo: ::1\.40002 > ::1\.9999: UDP, length 5$`, 1},
		{`^\S+ rule 4\.web\.1/0\(match\): pass out on lo: 127\.0\.0\.1\.40003 > 127\.0\.0\.1\.9998: UDP, length 5$`, 1},
		{`9997`, 0}, // the foreign rule's packet is not in the pflog
	}
	for _, c := range checks {
		if got := countMatches(first, regexp.MustCompile(c.re)); got != c.want {
			t.Errorf("%d lines match %s, want %d", got, c.re, c.want)
		}
	}
	second := tcpdumpRead(t, path)
	t.Logf("tcpdump -n -e -r %s:\n%s", path, second)
	re := regexp.MustCompile(`^\S+ rule 3/0\(match\): block in on lo: 127\.0\.0\.1\.40005 > 127\.0\.0\.1\.9999: UDP, length 5$`)
	if got := countMatches(second, re); got != 2 || strings.Count(second, "\n") != 2 {
		t.Errorf("rotated file: %d matching lines of %d, want 2 of 2", got, strings.Count(second, "\n"))
	}
	if !strings.Contains(logs.String(), "not-pfcarp") {
		t.Errorf("foreign prefix not reported; logs:\n%s", logs.String())
	}
}

// TestReaderQueueDrops checks that a full queue drops packets and counts
// them instead of blocking the socket, and that Close ends the goroutine.
func TestReaderQueueDrops(t *testing.T) {
	testenv.RequireRoot(t)
	checkGoroutines(t)
	ns := enterNewNetns(t)
	const group = 6
	installLogRules(t, ns, group, []logRule{
		{nftables.ChainHookInput, 9999, FormatPrefix(Meta{Rule: 1, Action: ActionBlock, Dir: DirIn}), expr.VerdictDrop},
	})
	r, err := Listen(group, ReaderConfig{QueueLen: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	lo := netip.MustParseAddr("127.0.0.1")
	sendUDP(t, netip.AddrPortFrom(lo, 40000), netip.AddrPortFrom(lo, 9999), 20)
	waitFor(t, "20 packets received", func() bool { return r.Stats().Received == 20 })
	if s := r.Stats(); s.QueueDrops != 18 || s.Malformed != 0 {
		t.Fatalf("stats %+v; want 18 queue drops", s)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	n := 0
	for p := range r.Packets() { // drains the 2 queued, then ends: closed
		if p.Prefix != "pf:1/0:block:in" || p.InIfindex == 0 {
			t.Errorf("packet %+v", p)
		}
		n++
	}
	if n != 2 || r.Err() != nil {
		t.Fatalf("%d packets after Close, err %v; want 2, nil", n, r.Err())
	}
}

// TestWriterDiskFull fills a tiny tmpfs and checks that a failed write cuts
// the file back to its last complete record, so it stays readable.
func TestWriterDiskFull(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=16k"); err != nil {
		t.Fatalf("mounting a 16k tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
	path := filepath.Join(dir, "pflog")
	w, err := OpenWriter(path, WriterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var werr error
	for i := 0; i < 1000 && werr == nil; i++ {
		if werr = w.Write(testRecord(uint32(i), t0)); werr == nil && i%10 == 9 {
			werr = w.Flush()
		}
	}
	if werr == nil || !strings.Contains(werr.Error(), "no space left") {
		t.Fatalf("filling a 16k tmpfs: %v", werr)
	}
	w.Close()
	f := readPcap(t, path) // fails on any torn record
	if len(f.records) == 0 || len(f.records)%10 != 0 {
		t.Fatalf("%d records survived; want a positive multiple of the 10-record flushes", len(f.records))
	}
	t.Logf("%d records kept, error: %v", len(f.records), werr)
}

// BenchmarkLoggerEndToEnd sends b.N UDP packets over lo through an nftables
// log rule and waits until the Logger has written or dropped each of them.
// It reports packets per second and the fraction lost (queue drops plus
// kernel overruns); ns/op is the cost of one logged packet, kernel included.
func BenchmarkLoggerEndToEnd(b *testing.B) {
	testenv.RequireRoot(b)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		b.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		netns.Set(orig)
		ns.Close()
	}()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		b.Fatal(err)
	}
	lo, _ := h.LinkByName("lo")
	h.LinkSetUp(lo)
	h.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		b.Fatal(err)
	}
	tbl := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "pfcarp_pflog_bench"})
	ch := c.AddChain(&nftables.Chain{Name: "in", Table: tbl, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter})
	c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
		&expr.Log{Key: 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_PREFIX, Group: 9, Data: []byte(FormatPrefix(Meta{Rule: 3, Action: ActionBlock, Dir: DirIn}))},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}})
	if err := c.Flush(); err != nil {
		b.Fatal(err)
	}
	l, err := Open(filepath.Join(b.TempDir(), "pflog"), 9, Config{QueueLen: 4096})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	loAddr := netip.MustParseAddr("127.0.0.1")
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(loAddr, 9999)))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	payload := make([]byte, 64)
	accounted := func() uint64 {
		s := l.Stats()
		return s.Written + s.QueueDrops + s.WriteErrors
	}
	start := time.Now()
	b.ResetTimer()
	for range b.N {
		conn.Write(payload)
	}
	// Wait until every packet is written or dropped in user space; kernel
	// overruns lose packets without a per-packet count, so stop waiting
	// once nothing has moved for a while.
	last, lastMove := accounted(), time.Now()
	for accounted() < uint64(b.N) && time.Since(lastMove) < time.Second {
		time.Sleep(time.Millisecond)
		if n := accounted(); n != last {
			last, lastMove = n, time.Now()
		}
	}
	b.StopTimer()
	s := l.Stats()
	elapsed := time.Since(start)
	b.ReportMetric(float64(s.Written)/elapsed.Seconds(), "logged/s")
	b.ReportMetric(float64(uint64(b.N)-s.Written)/float64(b.N), "lost/op")
	b.ReportMetric(float64(s.Overruns), "overruns")
}
