package pfconf

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pfcarp/pfcarp/internal/bsdhost"
)

// checkCase is one input that pfctl rejects and the line it prints for it,
// "LINE: message" (pfctl's "file:LINE: message" without the file name).
type checkCase struct {
	name, src, want string
}

func runCheckCases(t *testing.T, cases []checkCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, serr, failed := runPfctl("checks.conf", []byte(c.src), bsdhost.Static(), nil)
			if !failed {
				t.Fatalf("accepted, want %q; output:\n%s", c.want, out)
			}
			want := "checks.conf:" + c.want + "\n"
			if !strings.Contains(serr, want) {
				t.Fatalf("stderr:\n%swant the line %q", serr, strings.TrimSuffix(want, "\n"))
			}
		})
	}
}

// TestChecksTableNamesTests: every test CHECKS.md names, with its case,
// exists, so the table cannot point at a test that was renamed or dropped.
func TestChecksTableNamesTests(t *testing.T) {
	table, err := os.ReadFile("CHECKS.md")
	if err != nil {
		t.Fatal(err)
	}
	var src strings.Builder
	files, _ := filepath.Glob("*_test.go")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src.Write(b)
	}
	code := src.String()
	// The test column of the table rows (other packages' tests are
	// named with their package, "netdb TestX", and skipped).
	var refs [][]string
	re := regexp.MustCompile(`(?:^|[ ;])(Test[A-Za-z]+)(?: \(([^)]*)\))?`)
	for _, line := range strings.Split(string(table), "\n") {
		cols := strings.Split(line, " | ")
		if !strings.HasPrefix(line, "| ") || len(cols) < 4 || strings.Contains(cols[len(cols)-1], "netdb") {
			continue
		}
		refs = append(refs, re.FindAllStringSubmatch(cols[len(cols)-1], -1)...)
	}
	if len(refs) < 200 {
		t.Fatalf("only %d test references in CHECKS.md", len(refs))
	}
	for _, m := range refs {
		if !strings.Contains(code, "func "+m[1]+"(t *testing.T)") {
			t.Errorf("CHECKS.md names %s, which does not exist", m[1])
			continue
		}
		if strings.HasPrefix(m[1], "TestChecks") && m[2] != "" && !strings.Contains(code, "{\""+m[2]+"\",") {
			t.Errorf("CHECKS.md names case %q of %s, which does not exist", m[2], m[1])
		}
	}
}
