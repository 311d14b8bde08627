package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pfcarp/pfcarp/internal/bsdhost"
)

func pfctlRun(t *testing.T, dir, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Dir: dir}
	err := runPfctl(env, args, bsdhost.Static())
	code = 0
	if err != nil {
		var ee *ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("runPfctl: %v", err)
		}
		code = ee.Code
	}
	return out.String(), errb.String(), code
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPfctlCorpusFile(t *testing.T) {
	dir := filepath.Join("..", "pfconf", "testdata", "conformance")
	for _, name := range []string{"pf0002", "pf0091", "pf1005", "pf1020"} {
		want, err := os.ReadFile(filepath.Join(dir, name+".ok"))
		if err != nil {
			t.Fatal(err)
		}
		out, serr, code := pfctlRun(t, dir, "", "-o", "none", "-nvf", name+".in")
		if code != 0 || out+serr != string(want) {
			t.Errorf("%s: exit %d\nstdout:\n%s\nstderr:\n%s\nwant:\n%s", name, code, out, serr, want)
		}
	}
}

func TestPfctlErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "bad.conf", "pass in\nblock out on\npass proto tcp from any port nosuchport\n")
	out, serr, code := pfctlRun(t, dir, "", "-nvf", "bad.conf")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if out != "" {
		t.Errorf("stdout = %q, want nothing on error", out)
	}
	want := "bad.conf:2: syntax error\n\tblock out on\n\t            ^\n" +
		"bad.conf:3: unknown port nosuchport\n\tpass proto tcp from any port nosuchport\n\t                             ^\n"
	if serr != want {
		t.Errorf("stderr = %q, want %q", serr, want)
	}
	// Included file errors name the included file and its line.
	dir2 := filepath.Join("..", "pfconf", "testdata", "conformance")
	_, serr, code = pfctlRun(t, dir2, "", "-nvf", "pf1070.in")
	if code != 1 || !strings.Contains(serr, "pf1070.include:2: syntax error") {
		t.Errorf("pf1070: exit %d, stderr %q", code, serr)
	}
}

func TestPfctlStdinDefinesAndVerbosity(t *testing.T) {
	src := "pass in on $ifs proto tcp to port $p\n"
	out, serr, code := pfctlRun(t, "", src, "-D", "ifs={ lo0 em0 }", "-D", "p=ssh", "-nvf", "-")
	want := "pass in on lo0 proto tcp from any to any port = ssh flags S/SA keep state\n" +
		"pass in on em0 proto tcp from any to any port = ssh flags S/SA keep state\n"
	if code != 0 || out != want || serr != "" {
		t.Errorf("exit %d\nstdout %q\nstderr %q\nwant %q", code, out, serr, want)
	}
	out, _, code = pfctlRun(t, "", "pass\nblock\n", "-nvvf", "-")
	if want := "@0 pass all flags S/SA keep state\n@1 block drop all\n"; code != 0 || out != want {
		t.Errorf("-vv: exit %d, stdout %q, want %q", code, out, want)
	}
	out, serr, code = pfctlRun(t, "", "pass\n", "-nf", "-")
	if code != 0 || out != "" || serr != "" {
		t.Errorf("-nf: exit %d, stdout %q, stderr %q; want silence", code, out, serr)
	}
	_, serr, code = pfctlRun(t, "", "pass in from $nope\n", "-nf", "-")
	if code != 1 || !strings.Contains(serr, "stdin:1: macro 'nope' not defined") {
		t.Errorf("undefined macro: exit %d, stderr %q", code, serr)
	}
}

func TestPfctlFlags(t *testing.T) {
	// Loading (no -n) touches the kernel: it is tested inside a namespace
	// in pfctl_load_linux_test.go, never here.
	_, serr, code := pfctlRun(t, "", "", "-x")
	if code != 1 || !strings.Contains(serr, "usage: pfctl") {
		t.Errorf("bad flag: exit %d, stderr %q", code, serr)
	}
	_, serr, code = pfctlRun(t, "", "pass\n", "-o", "fancy", "-nf", "-")
	if code != 1 || !strings.Contains(serr, "unknown optimization level") {
		t.Errorf("-o fancy: exit %d, stderr %q", code, serr)
	}
	out, serr, code := pfctlRun(t, "", "pass\n", "-o", "basic", "-nvf", "-")
	if code != 0 || out != "pass all flags S/SA keep state\n" || !strings.Contains(serr, "not implemented") {
		t.Errorf("-o basic: exit %d, stdout %q, stderr %q", code, out, serr)
	}
	_, serr, code = pfctlRun(t, t.TempDir(), "", "-nf", "missing.conf")
	if code != 1 || !strings.Contains(serr, "missing.conf: no such file or directory") {
		t.Errorf("missing file: exit %d, stderr %q", code, serr)
	}
}

// TestPfctlThroughRun checks the command is wired into the tree (it uses
// the running host, so the input names no interface).
func TestPfctlThroughRun(t *testing.T) {
	var out, errb bytes.Buffer
	env := &Env{Stdin: strings.NewReader("set block-policy return\nblock in proto tcp\n"), Stdout: &out, Stderr: &errb}
	if err := Run(context.Background(), env, []string{"pfctl", "-nvf", "-"}); err != nil {
		t.Fatalf("Run: %v (stderr %q)", err, errb.String())
	}
	if want := "set block-policy return\nblock return in proto tcp all\n"; out.String() != want {
		t.Errorf("stdout %q, want %q", out.String(), want)
	}
}
