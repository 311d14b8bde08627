//go:build linux

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pfcarp/pfcarp/internal/testenv"
	"github.com/pfcarp/pfcarp/lab"
)

// ucarp (Debian package ucarp, from OpenBSD's carp) is an independent
// CARP implementation. For a group with exactly one IPv4 virtual address its
// advertisements are BSD CARP's: the same header, and HMAC-SHA1 keyed with
// the NUL-padded password over version, type, vhid, the address and the
// counter (ucarp src/carp.c carp_hmac_prepare/carp_hmac_generate). So the
// two must accept each other's advertisements, agree on the master and
// take over from each other.
//
// lb1 runs pfcarp (advskew 10, no preempt) for the external VIP only; lb2
// runs ucarp (advskew 20, -P). Without preempt on lb1, who is master
// depends on who came first, which lets each side be seen as master and
// as backup:
//
//  1. ucarp alone becomes MASTER.
//  2. pfcarp starts and stays BACKUP for longer than the master-down
//     interval: it accepts ucarp's advertisements (a rejected one would
//     not reset its timer, and it would take over after 3 s).
//  3. kill -9 ucarp: pfcarp takes over.
//  4. ucarp restarts and stays BACKUP, with -P, for longer than its
//     master-down interval: it accepts pfcarp's advertisements.
//  5. pfcarp stops (SIGTERM: it bows out): ucarp takes over at once.
func TestUcarpInterop(t *testing.T) {
	testenv.RequireRoot(t)
	ucarp, err := exec.LookPath("ucarp")
	if err != nil {
		// Debian installs it in /usr/sbin, which a user's PATH may lack.
		ucarp, err = exec.LookPath("/usr/sbin/ucarp")
	}
	if err != nil {
		if os.Getenv(testenv.RequireRootEnv) == "1" {
			t.Fatalf("ucarp is not installed (scripts/deps.sh installs it): %v", err)
		}
		t.Skipf("ucarp is not installed (scripts/deps.sh installs it): %v", err)
	}
	plan, err := lab.NewPlan(false, 1)
	if err != nil {
		t.Fatal(err)
	}
	ext, _ := plan.Segment(lab.SegExternal)
	lb1, _ := plan.Addr("lb1", "eth0")
	lb2, _ := plan.Addr("lb2", "eth0")
	const pass = "11111"
	bits := ext.Prefix.Bits()
	rc := fmt.Sprintf(`# pfcarp side of the ucarp interop test: the external VIP only.
hostname="lb1"
ifconfig_eth0="inet %s/%d"
cloned_interfaces="carp0"
ifconfig_carp0="vhid 1 pass %s %s/%d advskew 10"
pfcarp_sysctl_conf="NO"
`, lb1, bits, pass, ext.VIP, bits)
	// ucarp's scripts get the interface and the address as $1 and $2.
	scripts := t.TempDir()
	up, down := filepath.Join(scripts, "vip-up.sh"), filepath.Join(scripts, "vip-down.sh")
	for path, verb := range map[string]string{up: "add", down: "del"} {
		script := fmt.Sprintf("#!/bin/sh\nexec ip addr %s \"$2/%d\" dev \"$1\"\n", verb, bits)
		if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	l := upLab(t, lab.Options{
		Backends: 1,
		Daemons: map[string][]string{
			"lb1": lab.DefaultDaemon(),
			"lb2": {ucarp, "-i", "eth0", "-s", lb2.String(), "-v", "1", "-p", pass, "-a", ext.VIP.String(),
				"-u", up, "-d", down, "-b", "1", "-k", "20", "-P"},
		},
		NodeFiles: map[string]map[string][]byte{"lb1": {"pfcarp.conf": []byte(rc)}},
	})
	const advbase = 1
	bound := 3*advbase*time.Second + time.Second
	// Longer than either side's master-down interval (3*advbase + skew/256).
	window := 3*advbase*time.Second + 20*time.Second/256 + 700*time.Millisecond
	ulog := filepath.Join(l.NodeDir("lb2"), "daemon.log")

	// 1. ucarp alone.
	if err := l.StartDaemon("lb2"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, bound+time.Second, "ucarp to become MASTER", func() bool { return ucarpState(t, ulog, 0) == "MASTER" })
	waitFor(t, time.Second, "ucarp's up script to add the VIP", func() bool { return hasAddr(t, l, "lb2", "eth0", ext.VIP) })
	t.Logf("1. ucarp alone: MASTER, VIP on lb2")

	// 2. pfcarp joins as BACKUP and stays so.
	if err := l.StartDaemon("lb1"); err != nil {
		t.Fatal(err)
	}
	waitCARP(t, l, 3*time.Second, map[string]string{"lb1": "BACKUP"})
	tJoin := time.Now()
	for time.Since(tJoin) < window {
		st := status(t, l, "lb1")
		if g := group(t, st, "carp0"); g.State != "BACKUP" {
			t.Fatalf("2. pfcarp left BACKUP while ucarp is MASTER (%s, last %+v): it does not accept ucarp's advertisements", g.State, g.Last)
		}
		if s := ucarpState(t, ulog, 0); s != "MASTER" {
			t.Fatalf("2. ucarp is %s, want MASTER", s)
		}
		time.Sleep(50 * time.Millisecond)
	}
	g := group(t, status(t, l, "lb1"), "carp0")
	st := status(t, l, "lb1")
	if g.Received < 3 || g.Rejects["bad hmac"] != 0 || st.CARPRejects["bad hmac"] != 0 || st.CARPRejects["bad ttl"] != 0 {
		t.Fatalf("2. pfcarp: received %d, rejects %v (node %v): want ucarp's advertisements received and none rejected",
			g.Received, g.Rejects, st.CARPRejects)
	}
	if hasAddr(t, l, "lb1", "eth0", ext.VIP) {
		t.Errorf("2. VIP on lb1 too while pfcarp is BACKUP")
	}
	t.Logf("2. pfcarp BACKUP for %s with ucarp MASTER: received %d ucarp advertisements, rejects %v", ms(window), g.Received, st.CARPRejects)

	// 3. kill -9 ucarp: pfcarp takes over.
	tKill := time.Now()
	if err := l.KillDaemon("lb2"); err != nil {
		t.Fatal(err)
	}
	tMaster := waitCARP(t, l, bound, map[string]string{"lb1": "MASTER"})
	if !hasAddr(t, l, "lb1", "eth0", ext.VIP) {
		t.Errorf("3. pfcarp MASTER but VIP not on lb1")
	}
	t.Logf("3. kill -9 ucarp: pfcarp MASTER %s later", ms(tMaster.Sub(tKill)))

	// 4. ucarp restarts (its down script removes the VIP the killed
	// ucarp left behind) and stays BACKUP despite -P.
	fi, err := os.Stat(ulog)
	if err != nil {
		t.Fatal(err)
	}
	off := fi.Size()
	if err := l.StartDaemon("lb2"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "the restarted ucarp to be BACKUP", func() bool { return ucarpState(t, ulog, off) == "BACKUP" })
	waitFor(t, 2*time.Second, "ucarp's down script to remove the stale VIP", func() bool { return !hasAddr(t, l, "lb2", "eth0", ext.VIP) })
	tJoin = time.Now()
	for time.Since(tJoin) < window {
		if s := ucarpState(t, ulog, off); s != "BACKUP" {
			t.Fatalf("4. ucarp became %s while pfcarp is MASTER: it does not accept pfcarp's advertisements\n%s", s, readFrom(t, ulog, off))
		}
		if g := group(t, status(t, l, "lb1"), "carp0"); g.State != "MASTER" {
			t.Fatalf("4. pfcarp is %s, want MASTER", g.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("4. ucarp (-P, advskew 20) BACKUP for %s with pfcarp (advskew 10) MASTER", ms(window))

	// 5. pfcarp stops cleanly: it bows out, ucarp takes over at once.
	tStop := time.Now()
	if err := l.StopDaemon("lb1", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, bound, "ucarp to take over from the stopped pfcarp", func() bool { return ucarpState(t, ulog, off) == "MASTER" })
	tTook := time.Now()
	waitFor(t, time.Second, "the VIP to move to lb2", func() bool {
		return hasAddr(t, l, "lb2", "eth0", ext.VIP) && !hasAddr(t, l, "lb1", "eth0", ext.VIP)
	})
	t.Logf("5. pfcarp stopped (bow-out): ucarp MASTER %s after SIGTERM (its master-down interval would be %s)",
		ms(tTook.Sub(tStop)), ms(3*time.Second+20*time.Second/256))
	if d := tTook.Sub(tStop); d > 2*time.Second {
		t.Errorf("5. ucarp took %v: it did not act on pfcarp's bow-out advertisement", d)
	}

	// ucarp never complained about pfcarp's packets.
	all, err := os.ReadFile(ulog)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"Bad digest", "Bad TTL", "Bad version", "Bad IP checksum", "Bogus size"} {
		if strings.Contains(string(all), bad) {
			t.Errorf("ucarp log has %q:\n%s", bad, all)
		}
	}
}

var ucarpSwitch = regexp.MustCompile(`Switching to state: (INIT|BACKUP|MASTER)`)

// ucarpState is ucarp's latest state as its log (from byte off) says, or
// "" before it said any.
func ucarpState(t *testing.T, path string, off int64) string {
	t.Helper()
	m := ucarpSwitch.FindAllStringSubmatch(readFrom(t, path, off), -1)
	if len(m) == 0 {
		return ""
	}
	return m[len(m)-1][1]
}

func readFrom(t *testing.T, path string, off int64) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if int64(len(b)) < off {
		return ""
	}
	return string(b[off:])
}
