//go:build linux

package cli

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/pfcarp/pfcarp/internal/testenv"
)

func TestLabBenchUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"bench", "--only", "bogus"}, `--only "bogus"`},
		{[]string{"bench", "--runs", "-1"}, "--runs -1"},
		{[]string{"bench", "extra"}, `unexpected argument "extra"`},
	} {
		_, _, err := runLabArgs(tc.args...)
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Code != 2 || ee.Err == nil || !strings.Contains(ee.Err.Error(), tc.msg) {
			t.Errorf("lab %v: %v, want exit 2 with %q", tc.args, err, tc.msg)
		}
	}
}

// TestLabBenchQuick runs `pfcarp lab bench --quick --only forwarding` (about
// 45 s) so CI exercises the bench; its numbers are printed, not asserted.
// It checks that every variant produced its new-connection figure.
func TestLabBenchQuick(t *testing.T) {
	if os.Getenv("PFCARP_BENCH_TEST") == "" {
		t.Skip("set PFCARP_BENCH_TEST=1 to run lab bench --quick (needs wrk, iperf3 and haproxy: scripts/bench-deps.sh); not yet part of CI")
	}
	testenv.RequireRoot(t)
	bin := buildPfcarp(t)
	cmd := exec.Command(bin, "lab", "bench", "--quick", "--only", "forwarding", "--deps", "",
		"--dir", t.TempDir()+"/bench", "--prefix", "pfbt-")
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("lab bench: %v", err)
	}
	for _, v := range []string{"(a) pfcarp rdr+pfsync", "(b) nftables by hand", "(c) plain routing", "(d) haproxy tcp"} {
		line := ""
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "forwarding  new conn/s "+v) {
				line = l
			}
		}
		if line == "" || strings.Contains(line, "   -  ") {
			t.Errorf("no new conn/s figure for %s: %q", v, line)
		}
	}
}
