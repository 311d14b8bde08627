//go:build linux

package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pfcarp/pfcarp/internal/testenv"
	"github.com/pfcarp/pfcarp/lab"
)

func runLabArgs(args ...string) (stdout, stderr string, err error) {
	var o, e bytes.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: &o, Stderr: &e}
	err = Run(context.Background(), env, append([]string{"lab"}, args...))
	return o.String(), e.String(), err
}

// Usage errors are reported before anything touches the system, so these
// run without root.
func TestLabUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{nil, 2, ""},
		{[]string{"bogus"}, 2, `unknown command "bogus"`},
		{[]string{"up", "--backends", "0"}, 2, "--backends 0: want 1..80"},
		{[]string{"up", "--backends", "81"}, 2, "want 1..80"},
		{[]string{"up", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"up", "--daemon-config", "lb1"}, 2, "want NODE=FILE"},
		{[]string{"up", "--no-daemons", "--daemon-config", "lb1=x"}, 2, "contradict"},
		{[]string{"up", "--nosuchflag"}, 2, ""},
		{[]string{"exec", "lb1"}, 2, "want NODE -- CMD"},
		{[]string{"exec", "lb1", "ip", "a"}, 2, "want NODE -- CMD"},
		{[]string{"fault"}, 2, "want NODE ACTION"},
		{[]string{"fault", "lb1", "link-down"}, 2, "needs the interface"},
		{[]string{"fault", "lb1", "kill", "now"}, 2, `unexpected argument "now"`},
		{[]string{"backend"}, 2, "--index 0: want 1 or more"},
		{[]string{"demo", "--backends", "-1"}, 2, "want 1..80"},
	} {
		_, stderr, err := runLabArgs(tc.args...)
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Code != tc.code {
			t.Errorf("lab %v: %v, want exit %d", tc.args, err, tc.code)
			continue
		}
		if tc.msg != "" && (ee.Err == nil || !strings.Contains(ee.Err.Error(), tc.msg)) {
			t.Errorf("lab %v: %v, want %q (stderr %q)", tc.args, ee.Err, tc.msg, stderr)
		}
	}
	if _, _, err := runLabArgs("fault", "--dir", t.TempDir(), "lb1", "kill"); err == nil ||
		!strings.Contains(err.Error(), "no lab is up") && !strings.Contains(err.Error(), "needs root") {
		t.Errorf("fault without a lab: %v", err)
	}
}

// buildPfcarp builds the real binary, since `lab up` runs backends as
// `<pfcarp> lab backend` and the test binary is not pfcarp.
func buildPfcarp(t *testing.T) string {
	t.Helper()
	// go test puts its toolchain's bin first in PATH.
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "pfcarp")
	out, err := exec.Command(goBin, "build", "-o", bin, "github.com/pfcarp/pfcarp/cmd/pfcarp").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestLabCommands drives the real binary as a user would: up, status,
// exec, faults, down; then the demo. It logs (does not assert) the wall
// time of `lab up` and `lab down` as processes.
func TestLabCommands(t *testing.T) {
	testenv.RequireRoot(t)
	if names, _ := filepath.Glob("/run/netns/" + lab.DefaultPrefix + "*"); len(names) > 0 {
		t.Fatalf("a lab is up on this host (%v); run `pfcarp lab down` first", names)
	}
	bin := buildPfcarp(t)
	dir := filepath.Join(t.TempDir(), "lab")
	pf := func(args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"lab"}, args...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if err != nil {
			return out.String() + errb.String(), err
		}
		return out.String(), nil
	}
	t.Cleanup(func() {
		pf("down", "--dir", dir)
		if names, _ := filepath.Glob("/run/netns/" + lab.DefaultPrefix + "*"); len(names) > 0 {
			t.Errorf("namespaces left: %v", names)
		}
	})
	t0 := time.Now()
	if out, err := pf("up", "--dir", dir, "--backends", "3"); err != nil {
		t.Fatalf("lab up: %v\n%s", err, out)
	}
	t.Logf("`pfcarp lab up --backends 3`: %v", time.Since(t0).Round(time.Millisecond))
	if out, err := pf("up", "--dir", dir); err == nil || !strings.Contains(out, "already up") {
		t.Errorf("second lab up: %v %s", err, out)
	}
	out, err := pf("status", "--json", "--dir", dir)
	if err != nil {
		t.Fatalf("status: %v %s", err, out)
	}
	var st lab.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if len(st.Nodes) != 9 {
		t.Errorf("status lists %d nodes, want 9", len(st.Nodes))
	}
	out, err = pf("exec", "--dir", dir, "s3", "--", "sh", "-c", "echo $PFCARP_SOCKET; exit 3")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(out, filepath.Join(dir, "s3", "pfcarp.sock")) {
		t.Errorf("exec: %v %q", err, out)
	}
	for _, f := range [][]string{
		{"lb1", "link-down", "eth0"}, {"lb1", "link-up", "eth0"},
		{"sync", "cut"}, {"sync", "heal"},
		{"s1", "isolate"}, {"s1", "heal"},
	} {
		if out, err := pf(append([]string{"fault", "--dir", dir}, f...)...); err != nil {
			t.Errorf("fault %v: %v %s", f, err, out)
		}
	}
	// `lab up` started lb1's and lb2's daemons on the seed's configs.
	for _, n := range st.Nodes {
		if (n.Name == "lb1" || n.Name == "lb2") && (n.Daemon == nil || n.Daemon.State != "running") {
			t.Errorf("%s: daemon %+v, want running", n.Name, n.Daemon)
		}
	}
	for _, f := range [][]string{{"lb1", "kill"}, {"lb1", "start"}} {
		if out, err := pf(append([]string{"fault", "--dir", dir}, f...)...); err != nil {
			t.Errorf("fault %v: %v %s", f, err, out)
		}
	}
	if out, err := pf("fault", "--dir", dir, "s1", "kill"); err == nil || !strings.Contains(out, "no daemon configured") {
		t.Errorf("fault s1 kill without a daemon: %v %s", err, out)
	}
	if out, err := pf("fault", "--dir", dir, "lb1", "link-down", "eth7"); err == nil || !strings.Contains(out, `no interface "eth7"`) {
		t.Errorf("fault on a missing interface: %v %s", err, out)
	}
	t0 = time.Now()
	if out, err := pf("down", "--dir", dir); err != nil {
		t.Fatalf("down: %v %s", err, out)
	}
	t.Logf("`pfcarp lab down`: %v", time.Since(t0).Round(time.Millisecond))
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lab dir left behind: %v", err)
	}

	if out, err := pf("up", "--dir", dir, "--no-daemons"); err != nil {
		t.Fatalf("lab up --no-daemons: %v\n%s", err, out)
	}
	if out, err := pf("fault", "--dir", dir, "lb1", "kill"); err == nil || !strings.Contains(out, "no daemon configured") {
		t.Errorf("fault lb1 kill after up --no-daemons: %v %s", err, out)
	}
	if out, err := pf("down", "--dir", dir); err != nil {
		t.Fatalf("down: %v %s", err, out)
	}

	out, err = pf("demo", "--dir", filepath.Join(t.TempDir(), "demo"))
	if err != nil || !strings.Contains(out, "demo passed") || !strings.Contains(out, `"hi, this is No.2 server" (server sees 192.168.1.91:`) ||
		!strings.Contains(out, "takeover time (last advertisement from lb1 -> 192.168.1.51 answers on lb2)") ||
		!strings.Contains(out, "s1's server stopped: out of lb1's pool after") || !strings.Contains(out, "relayd demotes it (demotion 1)") {
		t.Errorf("demo: %v\n%s", err, out)
	}
}
