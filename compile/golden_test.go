package compile

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pfcarp/pfcarp/pfconf"
)

var update = flag.Bool("update", false, "rewrite the .golden files of testdata")

// TestGolden compiles testdata/*.pf and compares the program in nft's
// syntax (or the refusals) with testdata/*.golden.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.pf")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".pf")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			got := compileText(t, string(src))
			golden := strings.TrimSuffix(file, ".pf") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if got != string(want) {
				t.Errorf("%s: compiled program differs from %s:\n%s", file, golden, diffLines(string(want), got))
			}
		})
	}
}

// compileText is the program or the error list, as text.
func compileText(t *testing.T, src string) string {
	t.Helper()
	rs := ruleset(t, src)
	prog, err := Compile(rs, Options{RuleText: RuleTexts(rs), Host: testHost})
	if err != nil {
		el, ok := err.(*pfconf.ErrorList)
		if !ok {
			t.Fatalf("Compile error is %T, want *pfconf.ErrorList", err)
		}
		var b strings.Builder
		for _, e := range el.List {
			b.WriteString(e.Error() + "\n")
		}
		return b.String()
	}
	out := prog.String()
	for _, w := range prog.Warnings {
		out += "# warning: " + w + "\n"
	}
	return out
}

// diffLines shows the first differing lines.
func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			b.WriteString("line " + strconvItoa(i+1) + ":\n  want: " + wl + "\n  got:  " + gl + "\n")
		}
	}
	return b.String()
}

func strconvItoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return strconvItoa(i/10) + digits[i%10:i%10+1]
}
