package config

import (
	"strings"
	"testing"
)

func TestParseRC(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want map[string]string // name -> value in effect
		errs []string          // "line:col id" of each finding, in order
	}{
		{name: "double", src: `a="x y"`, want: map[string]string{"a": "x y"}},
		{name: "single", src: `a='x $y "z"'`, want: map[string]string{"a": `x $y "z"`}},
		{name: "bare", src: "a=b#c # comment\n", want: map[string]string{"a": "b#c"}},
		{name: "empty", src: "a=\nb=\"\"", want: map[string]string{"a": "", "b": ""}},
		{name: "comment and blanks", src: "# x\n\n   \n\t# y\na=1\n", want: map[string]string{"a": "1"}},
		{name: "two on a line", src: `a=1 b="2";c=3`, want: map[string]string{"a": "1", "b": "2", "c": "3"}},
		{name: "escapes", src: `a="q\"\$\\\x"`, want: map[string]string{"a": `q"$\\x`}},
		{name: "continuation", src: "a=\"x \\\ny\"\nb=1\\\n2", want: map[string]string{"a": "x y", "b": "12"}},
		{name: "newline in quotes", src: "a=\"x\ny\"", want: map[string]string{"a": "x\ny"}},
		{name: "expansion", src: "x=eth0\na=\"up $x ${x}!\"\nb=$x", want: map[string]string{"x": "eth0", "a": "up eth0 eth0!", "b": "eth0"}},
		{name: "literal dollar", src: `a="5$"`, want: map[string]string{"a": "5$"}},
		{name: "mixed quoting", src: `a=x"y"'z'`, want: map[string]string{"a": "xyz"}},
		{name: "override", src: "a=1\na=2", want: map[string]string{"a": "2"}, errs: []string{"2:1 duplicate-key"}},
		{name: "undefined", src: `a="$nope"`, want: map[string]string{"a": ""}, errs: []string{"1:4 undefined-variable"}},
		{name: "unterminated double", src: "a=\"x\nb=2", errs: []string{"1:3 syntax"}},
		{name: "unterminated single", src: "a='x", errs: []string{"1:3 syntax"}},
		{name: "command", src: "echo hi\na=1", want: map[string]string{"a": "1"}, errs: []string{"1:1 syntax"}},
		{name: "space before =", src: "a =1", errs: []string{"1:2 syntax"}},
		{name: "space after =", src: "a= b", want: map[string]string{"a": ""}, errs: []string{"1:4 syntax"}},
		{name: "command substitution", src: "a=\"`id`\"\nb=$(id)", errs: []string{"1:4 syntax", "2:3 syntax"}},
		{name: "param expansion", src: `a="${b:-c}"`, errs: []string{"1:4 syntax"}},
		{name: "pipe", src: "a=b|c\nd=1", want: map[string]string{"d": "1"}, errs: []string{"1:4 syntax"}},
		{name: "bad start", src: "1a=2\n=3", errs: []string{"1:1 syntax", "2:1 syntax"}},
		{name: "binary", src: "\x00\xff", errs: []string{"1:1 syntax"}},
		{name: "expansion bomb", src: "a=xxxxxxxxxxxxxxxx\n" + strings.Repeat("a=$a$a$a$a\n", 12), errs: []string{"2:1 duplicate-key", "3:1 duplicate-key", "4:1 duplicate-key", "5:1 duplicate-key", "6:1 duplicate-key", "7:1 duplicate-key", "8:5 syntax", "9:5 syntax", "10:5 syntax", "11:5 syntax", "12:5 syntax", "13:5 syntax"}},
		{name: "errors collected", src: "a='x\n", errs: []string{"1:3 syntax"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, d := ParseRC("rc.conf", []byte(tt.src))
			var got []string
			for _, x := range d {
				got = append(got, itoaPos(x.Pos)+" "+x.ID)
				if x.Pos.File != "rc.conf" {
					t.Errorf("finding without the file name: %v", x)
				}
			}
			if strings.Join(got, "; ") != strings.Join(tt.errs, "; ") {
				t.Errorf("findings = %q, want %q\n%v", got, tt.errs, d)
			}
			for k, v := range tt.want {
				a := f.Lookup(k)
				if a == nil {
					t.Errorf("%s not set", k)
					continue
				}
				if a.Value != v {
					t.Errorf("%s = %q, want %q", k, a.Value, v)
				}
			}
			if tt.want != nil && len(f.Effective()) != len(tt.want) {
				t.Errorf("%d assignments in effect, want %d", len(f.Effective()), len(tt.want))
			}
		})
	}
}

func itoaPos(p Pos) string {
	return strings.TrimPrefix(p.String(), p.File+":")
}

// PosAt must map value bytes back to the source, through quotes and
// expansions, so ifconfig errors point at the right word.
func TestAssignPosAt(t *testing.T) {
	f, _ := ParseRC("f", []byte("x=ab\n y=\"1 $x 2\"\n"))
	a := f.Lookup("y")
	for i, want := range map[int]string{0: "2:5", 2: "2:7", 3: "2:7", 5: "2:10", len(a.Value): "2:12"} {
		if got := itoaPos(a.PosAt(i)); got != want {
			t.Errorf("PosAt(%d) = %s, want %s", i, got, want)
		}
	}
}

func TestDiagString(t *testing.T) {
	d := Diag{Pos: Pos{"a", 3, 7}, Severity: Warning, ID: "x-y", Msg: "m", Related: []Pos{{"b", 1, 2}}}
	if got, want := d.String(), "a:3:7: warning: m (see b:1:2) [x-y]"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	var l Diags
	if l.HasErrors() || l.Err() != nil {
		t.Error("empty list has errors")
	}
	l = append(l, d, Diag{Pos: Pos{"a", 1, 1}, Severity: Error, Msg: "e"})
	if l.Err() == nil || l.Error() != "a:1:1: error: e" {
		t.Errorf("Err = %v", l.Err())
	}
	l.Sort()
	if l[0].Pos.Line != 1 {
		t.Errorf("not sorted: %v", l)
	}
}

func TestErrorCap(t *testing.T) {
	src := strings.Repeat("!\n", 500)
	_, d := ParseRC("f", []byte(src))
	if n := d.Count(Error); n != maxErrors+1 || d[len(d)-1].ID != "too-many-errors" {
		t.Errorf("%d errors, last %v", n, d[len(d)-1])
	}
}

func FuzzParse(f *testing.F) {
	// Seed corpus: the seed's lines, every quoting form, and broken input.
	for _, s := range []string{
		`ifconfig_carp0="vhid 1 pass 11111 192.168.1.51/24 advskew 10"`,
		"cloned_interfaces=\"carp0 carp1\"\nifconfig_em0=\"inet 192.168.1.52 netmask 255.255.255.0\"\n",
		`ifconfig_pfsync0="up syncif vr0"`,
		`ifconfig_eth0_alias0="inet vhid 1 pass x alias 192.0.2.9/32"`,
		`ifconfig_eth0_ipv6="inet6 2001:db8::1 prefixlen 64"`,
		"a='x'b\"y\"$c${d}\\\n",
		"x=\"${",
		"a=\"$(",
		"pfsync_enable=YES\npfsync_syncdev=eth2\npfsync_ifconfig=\"maxupd 64 defer\"",
		"\x00=\"\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		rc, d := ParseRC("f", src)
		for _, x := range d {
			if !x.Pos.IsValid() || x.Pos.Line > strings.Count(string(src), "\n")+1 {
				t.Fatalf("finding with a bad position: %v", x)
			}
		}
		for _, a := range rc.Assigns {
			for i := 0; i <= len(a.Value); i++ {
				if p := a.PosAt(i); !p.IsValid() {
					t.Fatalf("PosAt(%d) invalid", i)
				}
			}
		}
		// Load runs every later pass; it must not panic either. The
		// file system is never touched: sysctl.conf reads fail.
		n, _ := Load("f", src, &Options{ReadFile: func(string) ([]byte, error) { return nil, errNoFS }})
		if n == nil {
			t.Fatal("Load returned no node")
		}
		Check([]*Node{n, n}, CheckOptions{ReadFile: func(string) ([]byte, error) { return nil, errNoFS }})
	})
}
