package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/check/*.golden")

func runCheckArgs(t *testing.T, dir string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &errb, Dir: dir}
	err := Run(context.Background(), env, append([]string{"check"}, args...))
	code := 0
	if err != nil {
		var ee *ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("error %v", err)
		}
		code = ee.Code
	}
	return out.String(), errb.String(), code
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "check", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run with -update to accept):\n--- got\n%s--- want\n%s", name, got, want)
	}
}

// The shipped seed example, both nodes: what pfcarp tells the seed's author.
func TestCheckSeedGolden(t *testing.T) {
	seed := filepath.Join("..", "examples", "seed")
	for _, tt := range []struct {
		golden string
		args   []string
	}{
		{"seed-pair.golden", []string{"-c", "rc.conf.lb1", "-c", "rc.conf.lb2"}},
		{"seed-lb1.golden", []string{"-c", "rc.conf.lb1"}},
		{"seed-pair.json.golden", []string{"--json", "-c", "rc.conf.lb1", "-c", "rc.conf.lb2"}},
	} {
		t.Run(tt.golden, func(t *testing.T) {
			out, errs, code := runCheckArgs(t, seed, tt.args...)
			if code != 0 || errs != "" {
				t.Errorf("exit %d, stderr %q", code, errs)
			}
			golden(t, tt.golden, out)
		})
	}
}

func TestCheckJSONShape(t *testing.T) {
	out, _, _ := runCheckArgs(t, filepath.Join("..", "examples", "seed"), "--json", "-c", "rc.conf.lb1")
	var v struct {
		Files    []string
		Findings []struct {
			File, Severity, ID, Message string
			Line, Col                   int
		}
		Warnings int
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Findings) == 0 || v.Findings[0].ID == "" || v.Findings[0].Line == 0 || v.Findings[0].Severity == "" || v.Warnings == 0 {
		t.Errorf("%+v", v)
	}
}

func TestCheckErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("bad.conf", "pf_enabel=YES\nifconfig_carp0=\"vhid 300\"\n")
	write("a.conf", "ifconfig_eth0=\"192.0.2.2/24\"\ncloned_interfaces=carp0\nifconfig_carp0=\"vhid 1 pass Zq8vR2kLm4xWpQ 192.0.2.1/24\"\n")
	write("b.conf", "ifconfig_eth0=\"192.0.2.3/24\"\ncloned_interfaces=carp0\nifconfig_carp0=\"vhid 2 pass Zq8vR2kLm4xWpQ 192.0.2.1/24\"\n")
	out, _, code := runCheckArgs(t, dir, "-c", "bad.conf")
	golden(t, "bad.golden", out)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	out, _, code = runCheckArgs(t, dir, "-c", "a.conf", "-c", "b.conf")
	golden(t, "mismatch.golden", out)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if _, errs, code := runCheckArgs(t, dir); code != 2 || errs == "" {
		t.Errorf("no -c: exit %d, stderr %q", code, errs)
	}
	if out, _, code := runCheckArgs(t, dir, "-c", "missing.conf"); code != 1 || !bytes.Contains([]byte(out), []byte("missing.conf: error:")) {
		t.Errorf("missing file: exit %d, %q", code, out)
	}
}
