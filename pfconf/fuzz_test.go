package pfconf

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pfcarp/pfcarp/internal/bsdhost"
	"github.com/pfcarp/pfcarp/netdb"
)

// fuzzMaxInput bounds fuzz inputs: the parser is linear, but a rule's lists
// multiply, and MaxRuleExpansion rules take a while to print.
const fuzzMaxInput = 2048

// addCorpusSeeds seeds f with every corpus input and expected output, plus
// a few hand-written corner cases (comments say why they matter).
func addCorpusSeeds(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(corpusDir, "pf*"))
	for _, p := range files {
		if strings.HasSuffix(p, ".fail") {
			continue
		}
		b, err := os.ReadFile(p)
		if err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{
		"a = \"$b\"\n", // $ inside quotes is literal
		"a = \"x\"\nb = $a$a\npass on $a:network", // expansion joins what follows
		"pass \\\n in",                        // line continuation
		"\"unterminated",                      // EOF inside quotes
		"anchor {\n anchor {\n pass\n }\n",    // unclosed inline anchor
		"pass from 1.2.3.4 - 1.2.3",           // bad range
		"table <t> { 10/8 !lo0 fe80::1%lo0 }", // table forms
		"pass in from (lo0:network:peer)",     // illegal modifiers
		"block return-icmp(99999, x) in",      // bad codes
		"rdr on lo0 proto tcp to port 1:10 -> 1.2.3.4 port 5:*",
		"pass\x00in",
	} {
		f.Add([]byte(s))
	}
}

// FuzzScan checks the scanner ends on any input without panicking and
// always makes progress.
func FuzzScan(f *testing.F) {
	addCorpusSeeds(f)
	f.Fuzz(func(t *testing.T, src []byte) {
		var srcs Sources
		file := srcs.add("fuzz", src)
		var s Scanner
		s.Macro = func(name string) (string, bool) { return "$" + name + " x", name != "" && len(name) < 4 }
		s.Init(file, src, func(Pos, string) {}, ExpandMacros)
		for i := 0; ; i++ {
			_, tok, _ := s.Scan()
			if tok == EOF {
				break
			}
			if i > 8*len(src)+maxExpandedSize {
				t.Fatalf("scanner does not terminate")
			}
		}
	})
}

// FuzzParse parses, expands and prints arbitrary input: no panic, and
// whatever prints without error must print the same again when parsed
// back (the printed form is a fixed point, as the corpus's self tests
// require).
func FuzzParse(f *testing.F) {
	addCorpusSeeds(f)
	// The corpus host without interface groups: the scope of a link-local
	// address of a group member cannot be told from netdb.Host (a known
	// limitation), which would print "on lo" for lo0's fe80::1.
	ifs := bsdhost.Interfaces()
	for i := range ifs {
		ifs[i].Groups = nil
	}
	host := &netdb.Fixed{Interfaces: ifs, Hosts: map[string][]netip.Addr{
		"localhost": {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")},
	}, Users: map[string]uint32{"root": 0}, Groups: map[string]uint32{"wheel": 0}}
	noFiles := func(p string) ([]byte, error) {
		if p == "/dev/null" {
			return nil, nil
		}
		return nil, os.ErrNotExist
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		if len(src) > fuzzMaxInput {
			return
		}
		opts := ParseOptions{ReadFile: noFiles, MaxExpansion: 256}
		out1, _, failed := runPfctlOpts("fuzz", src, host, opts)
		if failed {
			return
		}
		if !roundTrippable(src) || !quotable(src, opts, host) || emptyAnonymousAnchor(out1) || subKilobit.MatchString(out1) || binatAll.MatchString(out1) {
			return
		}
		out2, serr, failed := runPfctlOpts("printed", []byte(out1), host, opts)
		if failed {
			t.Fatalf("printed form does not parse:\ninput %q\nprinted:\n%s\nerrors:\n%s", src, out1, serr)
		}
		if out1 != out2 {
			t.Fatalf("printed form is not a fixed point:\ninput %q\nfirst:\n%s\nsecond:\n%s", src, out1, out2)
		}
	})
}

// emptyAnonymousAnchor reports whether out has an unnamed inline anchor
// without rules: pfctl prints it as a bare "anchor ..." line, which does
// not parse again (anchors without rules need a name).
func emptyAnonymousAnchor(out string) bool {
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimLeft(line, " ")
		if strings.HasPrefix(line, "@") {
			_, line, _ = strings.Cut(line, " ")
		}
		line = strings.TrimPrefix(line, "ether ")
		for _, kw := range []string{"anchor", "nat-anchor", "rdr-anchor", "binat-anchor"} {
			if rest, ok := strings.CutPrefix(line, kw); ok && (rest == "" || rest[0] == ' ') &&
				!strings.HasPrefix(rest, " \"") && !strings.HasSuffix(rest, "{") {
				return true
			}
		}
	}
	return false
}

// binatAll matches a binat rule from any to any: pfctl's print_fromto
// prints it as "all", which binatrule (FROM ipspec is required) does not
// take back.
var binatAll = regexp.MustCompile(`(?m)^(no )?binat .*\ball\b`)

// subKilobit matches a bandwidth below 1Kb, which pfctl prints with a
// space before the unit ("500 b") that does not parse again.
var subKilobit = regexp.MustCompile(`[0-9] b `)

// roundTrippable reports whether every string in src can be printed back
// in quotes: pfctl prints labels, anchor and file names verbatim between
// double quotes, so a string holding a double quote or a backslash prints
// in a form that does not parse again (pfctl has the same limitation).
func roundTrippable(src []byte) bool {
	var srcs Sources
	file := srcs.add("rt", src)
	var s Scanner
	s.Init(file, src, nil, 0)
	for {
		_, tok, lit := s.Scan()
		if tok == EOF {
			return !bytes.ContainsAny(src, "\\")
		}
		if (tok == STRING || tok == WORD) && strings.ContainsAny(lit, "\"\\") {
			return false
		}
	}
}

// quotable reports whether every string the ruleset prints between double
// quotes (macro values, labels, anchor and file names) can be quoted:
// pfctl prints them verbatim, so one holding a double quote or a
// backslash prints in a form that does not parse again.
func quotable(src []byte, opts ParseOptions, host netdb.Host) bool {
	f, _ := Parse("q", src, opts)
	rs, _ := Expand(f, host)
	bad := func(s string) bool { return strings.ContainsAny(s, "\"\\") }
	for _, d := range rs.Decls {
		switch d := d.(type) {
		case *MacroDecl:
			if bad(d.Value) {
				return false
			}
		case *TableDecl:
			for _, ti := range d.Inits {
				if bad(ti.File) {
					return false
				}
			}
		}
	}
	var walk func(a *Anchor) bool
	walk = func(a *Anchor) bool {
		for _, l := range [][]*Rule{a.Scrub, a.NAT, a.RDR, a.BINAT, a.Filter} {
			for _, r := range l {
				if bad(r.AnchorCall) || bad(r.OS) {
					return false
				}
				for _, lb := range r.Labels {
					if bad(lb) {
						return false
					}
				}
				if r.Anchor != nil && !walk(r.Anchor) {
					return false
				}
			}
		}
		for _, r := range a.Ether {
			for _, lb := range r.Labels {
				if bad(lb) || bad(r.AnchorCall) {
					return false
				}
			}
			if r.Anchor != nil && !walk(r.Anchor) {
				return false
			}
		}
		return true
	}
	return walk(rs.Main)
}
