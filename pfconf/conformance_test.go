package pfconf

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/pfcarp/pfcarp/internal/bsdhost"
	"github.com/pfcarp/pfcarp/netdb"
)

// conformanceRatchet is the number of conformance cases that passed when
// it was last raised. The test fails if fewer pass: raise it as the count
// climbs, never lower it.
const conformanceRatchet = 167

const corpusDir = "testdata/conformance"

// corpusReader reads files the way pfctl run from inside the corpus
// directory would: relative paths from the corpus, absolute ones as they are.
func corpusReader(dir string) func(string) ([]byte, error) {
	return func(p string) ([]byte, error) {
		if filepath.IsAbs(p) {
			return os.ReadFile(p)
		}
		return os.ReadFile(filepath.Join(dir, p))
	}
}

// runPfctl does what "pfctl -o none -nvf name" does in-process and returns
// stdout, stderr and whether it failed.
func runPfctl(name string, src []byte, host netdb.Host, read func(string) ([]byte, error)) (string, string, bool) {
	return runPfctlOpts(name, src, host, ParseOptions{ReadFile: read})
}

func runPfctlOpts(name string, src []byte, host netdb.Host, opts ParseOptions) (string, string, bool) {
	f, perr := Parse(name, src, opts)
	var errs ErrorList
	if el, ok := perr.(*ErrorList); ok {
		errs.List = append(errs.List, el.List...)
	}
	rs, eerr := Expand(f, host)
	if el, ok := eerr.(*ErrorList); ok {
		errs.List = append(errs.List, el.List...)
	}
	if errs.Len() > 0 {
		return "", errs.PfctlString(), true
	}
	var out bytes.Buffer
	rs.Print(&out, 1)
	return out.String(), "", false
}

// exceptions reads LINUX-EXCEPTIONS: "name<TAB>reason" lines of cases that
// cannot pass on Linux for a stated reason.
func exceptions(t *testing.T) map[string]string {
	m := map[string]string{}
	b, err := os.ReadFile(filepath.Join("testdata", "LINUX-EXCEPTIONS"))
	if err != nil {
		return m
	}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, reason, _ := strings.Cut(line, "\t")
		if strings.TrimSpace(reason) == "" {
			t.Errorf("LINUX-EXCEPTIONS: %s has no reason", name)
		}
		m[name] = reason
	}
	return m
}

type confCase struct {
	name string // e.g. pf0002, pf0002/self
	run  func() (ok bool, diag string)
}

// pfctlRunner runs "pfctl -o none -nvf name" from inside the corpus
// directory (src is the file's content) and returns its standard output,
// its standard error and whether it failed.
type pfctlRunner func(name string, src []byte) (stdout, stderr string, failed bool)

// inProcess runs pfctl's parse-and-print in this process with the corpus's
// FreeBSD host as a fixture.
func inProcess() pfctlRunner {
	host := bsdhost.Static()
	read := corpusReader(corpusDir)
	return func(name string, src []byte) (string, string, bool) { return runPfctl(name, src, host, read) }
}

func conformanceCases(t *testing.T, runPfctl pfctlRunner) []confCase {
	dir := corpusDir
	ins, err := filepath.Glob(filepath.Join(dir, "pf*.in"))
	if err != nil || len(ins) == 0 {
		t.Fatalf("no corpus in %s: %v", dir, err)
	}
	sort.Strings(ins)
	var cases []confCase
	for _, in := range ins {
		base := strings.TrimSuffix(filepath.Base(in), ".in")
		src, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := os.ReadFile(filepath.Join(dir, base+".ok")); err == nil {
			want := string(ok)
			cases = append(cases, confCase{base, func() (bool, string) {
				out, serr, _ := runPfctl(base+".in", src)
				got := out + serr
				return got == want, diff(want, got)
			}})
			if !interfaceTest(base) {
				cases = append(cases, confCase{base + "/self", func() (bool, string) {
					out, serr, _ := runPfctl(base+".ok", ok)
					got := out + serr
					return got == want, diff(want, got)
				}})
			}
			continue
		}
		if fail, err := os.ReadFile(filepath.Join(dir, base+".fail")); err == nil {
			pat := strings.TrimRight(string(fail), "\n")
			re, rerr := regexp.Compile(pat)
			cases = append(cases, confCase{base, func() (bool, string) {
				if rerr != nil {
					return false, "bad regexp: " + rerr.Error()
				}
				out, serr, failed := runPfctl(base+".in", src)
				if !failed {
					return false, "accepted; printed:\n" + out
				}
				if !re.MatchString(serr) {
					return false, fmt.Sprintf("stderr %q does not match %q", serr, pat)
				}
				return true, ""
			}})
		}
	}
	return cases
}

// interfaceTest reports whether base is one of the "Interface
// translation" tests, which have no self variant.
func interfaceTest(base string) bool {
	return base >= "pf1057" && base <= "pf1064"
}

func diff(want, got string) string {
	wl := strings.Split(want, "\n")
	gl := strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			fmt.Fprintf(&b, "line %d:\n  want %q\n  got  %q\n", i+1, w, g)
		}
	}
	return b.String()
}

// TestConformance runs every case of the pfctl corpus in-process with the
// corpus's FreeBSD host as a fixture (see testdata/conformance/README.md).
func TestConformance(t *testing.T) {
	checkConformance(t, "conformance", inProcess())
}

// checkConformance runs every corpus case with run, prints the count and
// fails if it is below the ratchet.
func checkConformance(t *testing.T, label string, run pfctlRunner) {
	exc := exceptions(t)
	passed, failed := 0, 0
	var failing []string
	for _, c := range conformanceCases(t, run) {
		ok, diag := c.run()
		if ok {
			passed++
			continue
		}
		failed++
		base, _, _ := strings.Cut(c.name, "/")
		if reason, isExc := exc[base]; isExc {
			failing = append(failing, c.name+" (Linux exception: "+reason+")")
		} else {
			failing = append(failing, c.name)
		}
		if testing.Verbose() {
			t.Logf("%s:\n%s", c.name, diag)
		}
	}
	t.Logf("%d passed, %d failed", passed, failed)
	fmt.Printf("%s: %d passed, %d failed\n", label, passed, failed)
	for _, f := range failing {
		fmt.Printf("  FAIL %s\n", f)
	}
	if passed < conformanceRatchet {
		t.Errorf("%s dropped: %d passed, the ratchet is %d", label, passed, conformanceRatchet)
	}
}
