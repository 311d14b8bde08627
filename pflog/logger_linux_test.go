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
