package pflint

import (
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/pfcarp/pfcarp/config"
)

// lb1 is the seed's master with Linux interface names (examples/seed).
const lb1 = `gateway_enable="YES"
defaultrouter="192.168.1.1"
hostname="master.cluster.org"
cloned_interfaces="carp0 carp1"
ifconfig_eth0="inet 192.168.1.52 netmask 255.255.255.0"
ifconfig_carp0="vhid 1 pass 11111 192.168.1.51/24 advskew 10"
ifconfig_eth1="inet 192.168.10.10 netmask 255.255.255.0"
ifconfig_carp1="vhid 1 pass 22222 192.168.10.100/24 advskew 10"
ifconfig_eth2="10.10.10.250 netmask 255.255.255.0"
ifconfig_pfsync0="up syncif eth2"
pf_enable="YES"
pf_rules="/etc/pf.conf"
carp_preempt="YES"
`

// seedPF is the seed's pf.conf with Linux interface names; the nat rule is
// on line 11.
const seedPF = `lop_if = "lo"
ext_if = "eth0"
int_if = "eth1"
sync_if= "eth2"
ext_carp = "carp0"
web_ports = "{ 80, 443 }"
web_servers = "{ 192.168.10.20, 192.168.10.21 }"
set block-policy drop
set skip on $lop_if
scrub in
nat on $ext_if from $int_if:network to any -> $ext_if
rdr on $ext_if proto tcp from any to $ext_carp port $web_ports -> $web_servers round-robin sticky-address
pass quick on { $sync_if } proto pfsync keep state (no-sync)
pass on { $ext_if,$int_if } proto carp keep state
`

func memFS(files map[string]string) func(string) ([]byte, error) {
	return func(name string) ([]byte, error) {
		if s, ok := files[name]; ok {
			return []byte(s), nil
		}
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
}

func node(t *testing.T, rc string) *config.Node {
	t.Helper()
	n, d := config.Load("lb1.conf", []byte(rc), &config.Options{ReadFile: memFS(nil)})
	if d.HasErrors() {
		t.Fatalf("rc.conf: %v", d)
	}
	return n
}

// edit applies old->new replacements ("" old appends a line) and fails if
// an old string is missing.
func edit(t *testing.T, src string, pairs ...string) string {
	t.Helper()
	for i := 0; i < len(pairs); i += 2 {
		switch {
		case pairs[i] == "":
			src += pairs[i+1] + "\n"
		case !strings.Contains(src, pairs[i]):
			t.Fatalf("edit: %q not in source", pairs[i])
		default:
			src = strings.Replace(src, pairs[i], pairs[i+1], 1)
		}
	}
	return src
}

func lint(t *testing.T, rc, pf string, files map[string]string) config.Diags {
	t.Helper()
	return (&Linter{ReadFile: memFS(files)}).LintRules(node(t, rc), []byte(pf))
}

func ids(d config.Diags) []string {
	var out []string
	for _, x := range d {
		out = append(out, x.ID)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// The seed's pf.conf problems, at their lines, with the fix in the
// message: nat to the node's own address, set block-policy without a block
// rule, CARP passed with keep state.
func TestSeed(t *testing.T) {
	d := lint(t, lb1, seedPF, nil)
	if got := ids(d); !slices.Equal(got, []string{"carp-keep-state", "nat-to-own-address", "pf-no-block"}) || len(d) != 3 {
		t.Fatalf("want three findings, got:\n%v", d)
	}
	for _, x := range d {
		switch x.ID {
		case "nat-to-own-address":
			if x.Severity != config.Warning || x.Pos.String() != "/etc/pf.conf:11:1" ||
				!strings.Contains(x.Msg, "192.168.1.52") || !strings.Contains(x.Msg, "-> carp0, 192.168.1.51") ||
				len(x.Related) != 1 || x.Related[0].File != "lb1.conf" {
				t.Errorf("got %v (related %v)", x, x.Related)
			}
		case "pf-no-block":
			if x.Severity != config.Warning || x.Pos.String() != "/etc/pf.conf:8:1" || !strings.HasPrefix(x.Msg, "set block-policy drop has no effect: no rule blocks anything") {
				t.Errorf("got %v", x)
			}
		case "carp-keep-state":
			if x.Severity != config.Note || x.Pos.String() != "/etc/pf.conf:14:1" || !strings.Contains(x.Msg, `write "no state"`) || !strings.Contains(x.Msg, "pfcarp_ha") {
				t.Errorf("got %v", x)
			}
		}
	}
}

// pf-no-block: only a ruleset without any block rule, whose anchors are
// all known, is reported: at its set block-policy, else at its first rule.
func TestNoBlock(t *testing.T) {
	const carp = "pass quick on eth0 proto carp no state\n"
	for _, tc := range []struct {
		name, pf, at, msg string // at "": not reported
	}{
		{"seed", seedPF, "/etc/pf.conf:8:1", "set block-policy drop has no effect"},
		{"block-policy return", "set block-policy return\n" + carp, "/etc/pf.conf:1:1", "set block-policy return has no effect"},
		{"no block-policy", "set skip on lo\n\n" + carp, "/etc/pf.conf:3:1", "no rule blocks anything"},
		{"nat only", "nat on eth0 from eth1:network -> carp0\n", "/etc/pf.conf:1:1", "no rule blocks anything"},
		{"inline anchor that passes", "anchor \"x\" {\n pass all\n}\n", "/etc/pf.conf:1:1", "no rule blocks anything"},
		{"empty", "", "/etc/pf.conf", "no rule blocks anything"},
		{"block", "set block-policy drop\nblock in all\n" + carp, "", ""},
		{"block return", "block return in on eth0 proto tcp to port 22\n" + carp, "", ""},
		{"antispoof", "set block-policy drop\nantispoof for eth1\n" + carp, "", ""},
		{"block in an inline anchor", "set block-policy drop\nanchor \"x\" {\n block in all\n}\n" + carp, "", ""},
		{"anchor loaded at run time", "set block-policy drop\nanchor \"ext\"\n" + carp, "", ""},
		// the files "load anchor" reads are checked too: ext.conf passes
		// everything, blk.conf blocks
		{"load anchor that passes", "set block-policy drop\nanchor \"ext\"\nload anchor \"ext\" from \"/etc/ext.conf\"\n" + carp, "/etc/pf.conf:1:1", "set block-policy drop has no effect"},
		{"load anchor that blocks", "set block-policy drop\nanchor \"ext\"\nload anchor \"ext\" from \"/etc/blk.conf\"\n" + carp, "", ""},
		{"loaded and run-time anchors", "set block-policy drop\nanchor \"ext\"\nload anchor \"ext\" from \"/etc/ext.conf\"\nanchor \"relayd/*\"\n" + carp, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []config.Diag
			for _, x := range lint(t, lb1, tc.pf, map[string]string{"/etc/ext.conf": "pass all\n", "/etc/blk.conf": "block in all\n"}) {
				switch x.ID {
				case "pf-no-block":
					got = append(got, x)
				case "pf-rules-error":
					t.Fatalf("%v", x)
				}
			}
			switch {
			case tc.at == "" && len(got) > 0:
				t.Errorf("reported: %v", got)
			case tc.at != "" && (len(got) != 1 || got[0].Pos.String() != tc.at || !strings.HasPrefix(got[0].Msg, tc.msg)):
				t.Errorf("got %v, want one at %s starting %q", got, tc.at, tc.msg)
			}
		})
	}
}

// carp-keep-state: a pass rule for CARP that keeps state, explicitly or by
// pass's default, on a node with CARP groups.
func TestCarpKeepState(t *testing.T) {
	noCARP := strings.NewReplacer(`ifconfig_carp0="vhid 1 pass 11111 192.168.1.51/24 advskew 10"`, "",
		`ifconfig_carp1="vhid 1 pass 22222 192.168.10.100/24 advskew 10"`, "", `cloned_interfaces="carp0 carp1"`, "").Replace(lb1)
	for _, tc := range []struct {
		name, rc, pf string
		lines        []int
	}{
		{"seed", lb1, seedPF, []int{14}},
		{"default keep state", lb1, "block all\npass on eth0 proto carp\npass on eth1 proto 112 keep state (no-sync)\n", []int{2, 3}},
		{"no state", lb1, "block all\npass on { eth0 eth1 } proto carp no state\n", nil},
		{"other protocols", lb1, "block all\npass quick proto carp no state\npass on eth0 proto tcp keep state\npass out all\n", nil},
		{"block carp", lb1, "block on eth9 proto carp\npass quick proto carp no state\n", nil},
		{"no CARP groups", noCARP, "block all\npass on eth0 proto carp keep state\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var lines []int
			for _, x := range lint(t, tc.rc, tc.pf, nil) {
				if x.ID == "carp-keep-state" {
					lines = append(lines, x.Pos.Line)
				}
			}
			if !slices.Equal(lines, tc.lines) {
				t.Errorf("reported at lines %v, want %v", lines, tc.lines)
			}
		})
	}
}

func TestLints(t *testing.T) {
	const natLine = "nat on $ext_if from $int_if:network to any -> $ext_if"
	const syncPass = "pass quick on { $sync_if } proto pfsync keep state (no-sync)"
	const carpPass = "pass on { $ext_if,$int_if } proto carp keep state"
	ok := edit(t, seedPF, natLine, "nat on $ext_if from $int_if:network to any -> $ext_carp", carpPass, "pass on { $ext_if,$int_if } proto carp no state")
	web := "pass in on $ext_if proto tcp to $web_servers port $web_ports\npass out on $int_if proto tcp to $web_servers port $web_ports"
	tests := []struct {
		name string
		rc   string // "" = lb1
		pf   string
		want []string
	}{
		{"fixed seed", "", ok, []string{"pf-no-block"}},
		{"nat to VIP address", "", edit(t, seedPF, "-> $ext_if", "-> 192.168.1.51"), []string{"pf-no-block", "carp-keep-state"}},
		{"nat to dynamic own", "", edit(t, seedPF, "-> $ext_if", "-> ($ext_if)"), []string{"nat-to-own-address", "pf-no-block", "carp-keep-state"}},
		{"nat-to own", "", edit(t, ok, "", "match out on $ext_if from $int_if:network nat-to $ext_if"), []string{"nat-to-own-address", "pf-no-block"}},
		{"binat own", "", edit(t, ok, "", "binat on $ext_if from 192.168.10.20 to any -> 192.168.1.52"), []string{"nat-to-own-address", "pf-no-block"}},
		{"nat own, no CARP there", "", edit(t, ok, "", "nat on $sync_if from $int_if:network to any -> $sync_if"), []string{"pf-no-block"}},
		{"nat own, no CARP at all", strings.NewReplacer(`ifconfig_carp0="vhid 1 pass 11111 192.168.1.51/24 advskew 10"`, "", `ifconfig_carp1="vhid 1 pass 22222 192.168.10.100/24 advskew 10"`, "", `cloned_interfaces="carp0 carp1"`, "").Replace(lb1),
			edit(t, seedPF, "to $ext_carp", "to 192.168.1.51", "proto carp", "proto tcp"), []string{"pf-no-block"}},
		{"rdr to own", "", edit(t, ok, "to $ext_carp", "to $ext_if"), []string{"rdr-to-own-address", "pf-no-block"}},
		{"rdr to any", "", edit(t, ok, "to $ext_carp", "to any"), []string{"rdr-not-to-vip", "pf-no-block"}},
		{"rdr to subnet", "", edit(t, ok, "to $ext_carp", "to $ext_if:network"), []string{"rdr-not-to-vip", "pf-no-block"}},
		{"rdr-to own", "", edit(t, ok, "", "pass in on $ext_if proto tcp to $ext_if port 22 rdr-to 192.168.10.20"), []string{"rdr-to-own-address", "pf-no-block"}},
		{"rdr off the CARP parents", "", edit(t, ok, "", "rdr on $sync_if proto tcp to any port 22 -> 192.168.10.20"), []string{"pf-no-block"}},
		{"block all first", "", edit(t, ok, syncPass, "block all\n"+syncPass, "", web), nil},
		{"block in all last", "", edit(t, ok, "", "block in all"), []string{"carp-blocked", "rdr-blocked"}},
		{"block in all last, carp quick", "", edit(t, ok, "pass on { $ext_if,$int_if } proto carp no state", "pass quick on { $ext_if,$int_if } proto carp no state", "", "block in all", "", web), nil},
		{"block quick first", "", "block quick all\n" + ok, []string{"carp-blocked", "pfsync-blocked", "rdr-blocked"}},
		{"block out", "", edit(t, ok, "", "block out on $int_if"), []string{"carp-blocked", "rdr-blocked"}},
		{"skip all", "", edit(t, ok, "set skip on $lop_if", "set skip on { $lop_if $ext_if $int_if }", "", "block all"), nil},
		{"skip one", "", edit(t, ok, "set skip on $lop_if", "set skip on { $lop_if $ext_if }", "", "block all"), []string{"carp-blocked", "rdr-blocked"}},
		{"antispoof", "", edit(t, ok, "", "antispoof for { $ext_if $int_if }"), nil},
		{"block banned", "", edit(t, ok, "", "block in on $ext_if from 198.51.100.0/24"), nil},
		{"block from own", "", edit(t, ok, "", "block in on $ext_if from 192.168.1.52"), nil},
		{"block not from subnet", "", edit(t, ok, "", "block in on $ext_if from ! $ext_if:network"), []string{"rdr-blocked"}},
		{"block not from elsewhere", "", edit(t, ok, "", "block in on $ext_if from ! 10.0.0.0/8"), []string{"carp-blocked", "rdr-blocked"}},
		{"block table", "", edit(t, ok, "", "table <bad> { 203.0.113.0/24 }\nblock in on $ext_if from <bad>"), nil},
		{"block not table", "", edit(t, ok, "", "table <good> { 192.0.2.0/24 }\nblock in on $ext_if from ! <good>"), []string{"carp-blocked", "rdr-blocked"}},
		{"block tcp", "", edit(t, ok, "", "block in on $ext_if proto tcp to port 22"), nil},
		{"block tcp web", "", edit(t, ok, "", "block in on $ext_if proto tcp to port 80"), []string{"rdr-blocked"}},
		{"block pfsync link", "", edit(t, ok, syncPass, "pass on { $sync_if } proto pfsync keep state (no-sync)\nblock on $sync_if"), []string{"pfsync-blocked"}},
		{"pfsync no-sync missing", "", edit(t, ok, "keep state (no-sync)", "keep state"), []string{"pfsync-state-synced", "pf-no-block"}},
		{"pfsync no state", "", edit(t, ok, "keep state (no-sync)", "no state"), []string{"pf-no-block"}},
		{"rdr pass", "", edit(t, ok, "rdr on", "rdr pass on", "", "block all", "", "pass quick proto carp no state"), nil},
		{"rdr blocked", "", edit(t, ok, "", "block all", "", "pass quick proto carp no state"), []string{"rdr-blocked"}},
		{"rdr passed", "", edit(t, ok, "", "block all", "", "pass quick proto carp no state", "", web), nil},
		{"rdr passed out only", "", edit(t, ok, "", "block all", "", "pass quick proto carp no state", "", "pass out on $int_if"), []string{"rdr-blocked"}},
		{"carp unicast peer", edit(t, lb1, "192.168.1.51/24 advskew 10", "carppeer 192.168.1.53 192.168.1.51/24 advskew 10"),
			edit(t, ok, "", "block in on $ext_if from ! 192.168.1.53"), []string{"rdr-blocked"}},
		{"carp unicast peer blocked", edit(t, lb1, "192.168.1.51/24 advskew 10", "carppeer 192.168.1.53 192.168.1.51/24 advskew 10"),
			edit(t, ok, "", "block in on $ext_if from 192.168.1.53"), []string{"carp-blocked"}},
		{"syntax error", "", "pass in on\n", []string{"pf-rules-error"}},
		{"expand error", "", "pass on eth9 from eth9:network\n", []string{"pf-rules-error"}},
		{"include", "", "include \"/etc/pf.d/nat.conf\"\n", []string{"nat-to-own-address", "pf-no-block"}},
		{"include missing", "", "include \"/etc/pf.d/none.conf\"\n", []string{"pf-rules-error"}},
		{"binary", "", "\x00\xff\x7fpass \x00 on {{{ -> ((\n", []string{"pf-rules-error"}},
	}
	files := map[string]string{"/etc/pf.d/nat.conf": "nat on eth0 from eth1:network -> eth0\n"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := tt.rc
			if rc == "" {
				rc = lb1
			}
			d := lint(t, rc, tt.pf, files)
			want := slices.Clone(tt.want)
			slices.Sort(want)
			if got := ids(d); !slices.Equal(got, want) {
				t.Errorf("got %q, want %q:\n%v", got, want, d)
			}
			for _, x := range d {
				if x.Pos.File == "" || x.ID != "pf-rules-error" && x.Pos.Line == 0 || x.Msg == "" {
					t.Errorf("finding without a position or message: %v", x)
				}
				if strings.Contains(x.Msg, "internal error") {
					t.Errorf("linter panicked: %v", x)
				}
			}
		})
	}
}

// Errors carry pf.conf's own positions, as pfctl reports them.
func TestErrorPositions(t *testing.T) {
	d := lint(t, lb1, "set skip on lo\n\npass in on\n", nil)
	if len(d) == 0 || d[0].ID != "pf-rules-error" || d[0].Severity != config.Error || d[0].Pos.File != "/etc/pf.conf" || d[0].Pos.Line != 3 {
		t.Errorf("got %v", d)
	}
	d = lint(t, lb1, "include \"/etc/pf.d/bad.conf\"\n", map[string]string{"/etc/pf.d/bad.conf": "\n\nblock in on eth9 from eth9:network\n"})
	if len(d) == 0 || d[0].Pos.File != "/etc/pf.d/bad.conf" || d[0].Pos.Line != 3 {
		t.Errorf("included file's error: got %v", d)
	}
}

// Every new lint ID in config.Lints is tested here; config's own test
// covers the rest.
func TestCovered(t *testing.T) {
	b, err := os.ReadFile("pflint_test.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"pf-rules-error", "nat-to-own-address", "rdr-to-own-address", "rdr-not-to-vip", "carp-blocked", "pfsync-blocked", "pfsync-state-synced", "rdr-blocked", "pf-no-block", "carp-keep-state"} {
		if severity(id) == config.Warning && !slices.ContainsFunc(config.Lints, func(l config.Lint) bool { return l.ID == id }) {
			t.Errorf("%s is not in config.Lints", id)
		}
		if strings.Count(string(b), `"`+id+`"`) < 2 {
			t.Errorf("%s has no test case", id)
		}
	}
}

// FuzzLintRules: no input makes the linter panic (the recover would turn a
// panic into an "internal error" finding).
func FuzzLintRules(f *testing.F) {
	f.Add(seedPF)
	f.Add("block quick all\n" + seedPF)                                     // every block analysis
	f.Add("pass in on eth0 proto tcp to eth0 port 22 rdr-to 192.168.10.20") // rdr-to
	f.Add("pass in on\n")                                                   // syntax error
	f.Add("nat on eth0 from ! <t> to (eth0:0) -> (eth0:network)\n")         // odd addresses
	n, d := config.Load("lb1.conf", []byte(lb1), &config.Options{ReadFile: memFS(nil)})
	if d.HasErrors() {
		f.Fatal(d)
	}
	l := &Linter{ReadFile: memFS(nil)}
	f.Fuzz(func(t *testing.T, src string) {
		for _, x := range l.LintRules(n, []byte(src)) {
			if strings.Contains(x.Msg, "internal error") {
				t.Fatalf("panic: %v", x)
			}
		}
	})
}

// The lints read load anchor files as pfctl and the daemon do: an anchor
// file that does not parse, or is missing, is a pf-rules-error at its line
// or at the statement.
func TestLoadAnchorErrors(t *testing.T) {
	const pf = "block all\nanchor \"ext\"\nload anchor \"ext\" from \"/etc/ext.conf\"\n"
	for _, tc := range []struct {
		name  string
		files map[string]string
		at    string
		msg   string
	}{
		{"bad file", map[string]string{"/etc/ext.conf": "pass all\npass in on\n"}, "/etc/ext.conf:2:", "syntax error"},
		{"missing", nil, "/etc/pf.conf:3:1", "cannot load anchor ext from /etc/ext.conf: file does not exist; pfctl would not load it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := lint(t, lb1, pf, tc.files)
			if len(d) == 0 || d[0].ID != "pf-rules-error" || !strings.HasPrefix(d[0].Pos.String(), tc.at) || !strings.Contains(d[0].Msg, tc.msg) {
				t.Fatalf("got %v, want pf-rules-error at %s: %s", d, tc.at, tc.msg)
			}
		})
	}
	if d := lint(t, lb1, pf, map[string]string{"/etc/ext.conf": "pass all\n"}); slices.ContainsFunc(d, func(x config.Diag) bool { return x.ID == "pf-rules-error" }) {
		t.Fatalf("good anchor file: %v", d)
	}
}
