//go:build linux

package integration

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pfcarp/pfcarp/daemon"
	"github.com/pfcarp/pfcarp/internal/testenv"
	"github.com/pfcarp/pfcarp/lab"
)

// labPrefix names the namespaces of these tests' labs, apart from a
// person's `pfcarp lab` (pfl-) and the lab package's own tests.
const labPrefix = "pfit-"

// The pfcarp binary is built once per test binary run, on first use.
var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// pfcarpBin returns the pfcarp binary, building it on first use with the go
// command of the toolchain running the tests.
func pfcarpBin(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "pfcarp-integration-")
		if build.err != nil {
			return
		}
		build.bin = filepath.Join(build.dir, "pfcarp")
		// go test puts its toolchain's bin first in PATH.
		goBin, err := exec.LookPath("go")
		if err != nil {
			build.err = err
			return
		}
		out, err := exec.Command(goBin, "build", "-o", build.bin, "github.com/pfcarp/pfcarp/cmd/pfcarp").CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.bin
}

// upLab brings up a lab with o (Dir, Prefix and Bin are filled in) and
// removes it when the test ends, checking that nothing is left behind.
func upLab(t *testing.T, o lab.Options) *lab.Lab {
	t.Helper()
	return upLabPrefix(t, o, labPrefix)
}

// upLabPrefix is upLab with the namespaces named prefix*, for a test that
// keeps its labs apart from the others'.
func upLabPrefix(t *testing.T, o lab.Options, prefix string) *lab.Lab {
	t.Helper()
	testenv.RequireRoot(t)
	if err := lab.CheckRoot(); err != nil {
		t.Fatal(err)
	}
	o.Bin = pfcarpBin(t)
	if o.Dir == "" {
		o.Dir = filepath.Join(t.TempDir(), "lab")
	}
	o.Prefix = prefix
	o.Logf = t.Logf
	// A crashed earlier run of these tests may have left namespaces with
	// our prefix: they are ours to remove.
	if err := lab.Cleanup(filepath.Join(t.TempDir(), "stale"), prefix, t.Logf); err != nil {
		t.Fatalf("removing leftovers of an earlier run: %v", err)
	}
	var err error
	if o.Daemons == nil {
		if o, err = lab.WithCluster(o); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := lab.Up(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range []string{"lb1", "lb2"} {
				if b, err := os.ReadFile(filepath.Join(l.NodeDir(n), "daemon.log")); err == nil {
					t.Logf("%s daemon.log:\n%s", n, lastLines(string(b), 40))
				}
			}
		}
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
		if left, _ := filepath.Glob("/run/netns/" + prefix + "*"); len(left) > 0 {
			t.Errorf("namespaces left behind: %v", left)
		}
	})
	return l
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// status reads node's daemon status or fails the test.
func status(t *testing.T, l *lab.Lab, node string) daemon.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := l.DaemonStatus(ctx, node)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// group returns the named CARP group (carp0, carp1) of a status.
func group(t *testing.T, st daemon.Status, name string) daemon.CARPStatus {
	t.Helper()
	for _, g := range st.CARP {
		if g.Name == name {
			return g
		}
	}
	t.Fatalf("daemon (pid %d) has no group %s", st.PID, name)
	return daemon.CARPStatus{}
}

// waitCARP waits up to d for the wanted roles and returns when they held.
func waitCARP(t *testing.T, l *lab.Lab, d time.Duration, want map[string]string) time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if _, err := l.WaitCARP(ctx, want); err != nil {
		t.Fatalf("after %v: %v", d, err)
	}
	return time.Now()
}

// hasAddr reports whether node's iface carries addr, read from the kernel.
func hasAddr(t *testing.T, l *lab.Lab, node, iface string, addr netip.Addr) bool {
	t.Helper()
	for _, n := range l.Status().Nodes {
		if n.Name != node {
			continue
		}
		for _, ifc := range n.Ifaces {
			if ifc.Name != iface {
				continue
			}
			for _, p := range ifc.Addrs {
				if p.Addr() == addr {
					return true
				}
			}
		}
	}
	return false
}

// ms prints a duration in milliseconds.
func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
