package pfconf

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/pfcarp/pfcarp/internal/bsdhost"
	"github.com/pfcarp/pfcarp/internal/testenv"
)

// TestConformanceNamespace runs the real binary, `pfcarp pfctl -o none
// -nvf FILE` from inside the corpus directory, in a network namespace built
// to look like the corpus's FreeBSD host (loopback renamed lo0 with fe80::1,
// vlan1057..vlan1064 with the interface tests' addresses), so interface
// names resolve from the host's own interfaces, as pfctl's do, and not
// from a fixture.
func TestConformanceNamespace(t *testing.T) {
	testenv.RequireRoot(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("ip(8) not found: run scripts/deps.sh (installs iproute2): %v", err)
	}
	bin := filepath.Join(t.TempDir(), "pfcarp")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/pfcarp").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ns := bsdhost.Namespace(t)
	dir, err := filepath.Abs(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	run := func(name string, _ []byte) (string, string, bool) {
		cmd := exec.Command("ip", "netns", "exec", ns, bin, "pfctl", "-o", "none", "-nvf", name)
		cmd.Dir = dir
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("running %s: %v", name, err)
		}
		return stdout.String(), stderr.String(), err != nil
	}
	checkConformance(t, "conformance (binary in a FreeBSD-like namespace)", run)
}
