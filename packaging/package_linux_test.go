package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pfcarp/pfcarp/internal/testenv"
)

// files the package installs (beside the directories).
var installed = []string{
	"/usr/sbin/pfcarp",
	"/usr/sbin/pfctl",
	"/usr/sbin/relayctl",
	"/usr/lib/systemd/system/pfcarp.service",
	"/etc/pfcarp/rc.conf",
	"/etc/pfcarp/pf.conf",
	"/usr/share/man/man8/pfcarp.8.gz",
	"/usr/share/man/man5/pfcarp.conf.5.gz",
	"/usr/share/doc/pfcarp/examples/seed/rc.conf.lb1",
	"/usr/share/doc/pfcarp/examples/seed/rc.conf.lb2",
	"/usr/share/doc/pfcarp/examples/seed/pf.conf",
	"/usr/share/doc/pfcarp/examples/seed/sysctl.conf",
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestDebianPackage builds the package, installs it, checks what it put
// where, runs the installed binary on the examples, verifies the unit and
// removes everything again.
func TestDebianPackage(t *testing.T) {
	testenv.RequireRoot(t)
	for _, tool := range []string{"dpkg", "dpkg-deb", "systemd-analyze"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (scripts/deps.sh installs it): %v", tool, err)
		}
	}
	if exec.Command("dpkg", "-s", "pfcarp").Run() == nil {
		// a crashed earlier run of this test left it: ours to remove
		run(t, "dpkg", "--purge", "pfcarp")
	}
	for _, f := range installed {
		if _, err := os.Lstat(f); err == nil {
			t.Fatalf("%s exists before the install: not installing over it", f)
		}
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(root, "scripts/package.sh"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "VERSION=0.0.0~test")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/package.sh: %v\n%s", err, out)
	}
	deb := filepath.Join(root, "dist", "pfcarp_0.0.0~test_"+goarch(t)+".deb")
	defer os.Remove(deb)
	t.Cleanup(func() { exec.Command("dpkg", "--purge", "pfcarp").Run() })
	run(t, "dpkg", "-i", deb)

	for _, f := range installed {
		if _, err := os.Lstat(f); err != nil {
			t.Errorf("not installed: %v", err)
		}
	}
	for _, link := range []string{"/usr/sbin/pfctl", "/usr/sbin/relayctl"} {
		if l, err := os.Readlink(link); err != nil || l != "/usr/sbin/pfcarp" {
			t.Errorf("%s -> %q, %v", link, l, err)
		}
	}
	// relayctl is the relayctl command (it says what it needs: a daemon).
	if out, _ := exec.Command("/usr/sbin/relayctl", "--help").CombinedOutput(); !strings.Contains(string(out), "show") {
		t.Errorf("relayctl --help:\n%s", out)
	}
	conff := run(t, "dpkg-query", "--showformat=${Conffiles}", "--show", "pfcarp")
	for _, f := range []string{"/etc/pfcarp/rc.conf", "/etc/pfcarp/pf.conf"} {
		if !strings.Contains(conff, f) {
			t.Errorf("%s is not a conffile: %q", f, conff)
		}
	}
	if v := run(t, "/usr/sbin/pfcarp", "version"); !strings.Contains(v, "0.0.0~test") {
		t.Errorf("pfcarp version: %q", v)
	}
	// The examples check (findings are warnings, not errors) and the
	// pfctl link parses the seed's pf.conf for the master node.
	ex := "/usr/share/doc/pfcarp/examples/seed/"
	chk := run(t, "/usr/sbin/pfcarp", "check", "-c", ex+"rc.conf.lb1", "-c", ex+"rc.conf.lb2")
	if !strings.Contains(chk, "nat-to-own-address") {
		t.Errorf("pfcarp check on the seed examples:\n%s", chk)
	}
	run(t, "/usr/sbin/pfcarp", "check", "-c", "/etc/pfcarp/rc.conf")
	if p := run(t, "/usr/sbin/pfctl", "-nvf", ex+"pf.conf", "--node", ex+"rc.conf.lb1"); !strings.Contains(p, "rdr") {
		t.Errorf("pfctl -nvf of the seed:\n%s", p)
	}
	if v := run(t, "systemd-analyze", "verify", "/usr/lib/systemd/system/pfcarp.service"); strings.Contains(v, "pfcarp.service:") {
		t.Errorf("systemd-analyze verify:\n%s", v)
	}
	run(t, "man", "-l", "/usr/share/man/man8/pfcarp.8.gz")

	run(t, "dpkg", "-r", "pfcarp")
	for _, f := range installed {
		_, err := os.Lstat(f)
		conf := strings.HasPrefix(f, "/etc/")
		if conf && err != nil {
			t.Errorf("dpkg -r removed the conffile %s (only --purge should)", f)
		}
		if !conf && err == nil {
			t.Errorf("dpkg -r left %s", f)
		}
	}
	run(t, "dpkg", "--purge", "pfcarp")
	for _, f := range append(installed, "/etc/pfcarp", "/usr/share/doc/pfcarp") {
		if _, err := os.Lstat(f); err == nil {
			t.Errorf("dpkg --purge left %s", f)
		}
	}
}

func goarch(t *testing.T) string {
	out, err := exec.Command(filepath.Join(os.Getenv("GOROOT"), "bin", "go"), "env", "GOARCH").Output()
	if err != nil {
		out, err = exec.Command("go", "env", "GOARCH").Output()
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}
