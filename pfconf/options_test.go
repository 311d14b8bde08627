package pfconf

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// expandOpts parses and expands src, failing the test on any error.
func expandOpts(t *testing.T, src string) *Ruleset {
	t.Helper()
	read := func(name string) ([]byte, error) {
		if name == "pf.os" {
			return []byte{}, nil
		}
		return nil, fmt.Errorf("no file %s", name)
	}
	f, err := Parse("pf.conf", []byte(src), ParseOptions{ReadFile: read})
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	rs, err := Expand(f, linuxLikeHost())
	if err != nil {
		t.Fatalf("expand: %v", err)
	}
	return rs
}

// The expander fills Ruleset.Options from the statements' values: every
// option the parser knows, the last statement winning, set skip adding up.
func TestOptionsTyped(t *testing.T) {
	rs := expandOpts(t, `set timeout { tcp.first 10, src.track 30 }
set timeout interval 5
set timeout src.track 45
set limit { states 100, SRC-NODES 7 }
set limit table-entries 9000
set optimization aggressive
set ruleset-optimization basic
set block-policy return
set fail-policy return
set state-policy if-bound
set require-order no
set loginterface eth0
set hostid 42
set debug misc
set fingerprints "pf.os"
set skip on lo
set skip on { eth0 eth1 }
set keepcounters
set syncookies adaptive (start 30%, end 10%)
set reassemble yes no-df
set state-defaults no-sync, pflow
pass all
`)
	o := &rs.Options
	for tm, want := range map[int]uint32{TmTCPFirst: 10, TmSrcNode: 45, TmInterval: 5} {
		if v, ok := o.Timeout(tm); !ok || v != want {
			t.Errorf("timeout %s = %d, %v; want %d", TimeoutName(tm), v, ok, want)
		}
	}
	if _, ok := o.Timeout(TmUDPFirst); ok {
		t.Error("udp.first given")
	}
	for l, want := range map[Limit]uint32{LimitStates: 100, LimitSrcNodes: 7, LimitTableEntries: 9000} {
		if v, ok := o.Limit(l); !ok || v != want {
			t.Errorf("limit %s = %d, %v; want %d", l, v, ok, want)
		}
	}
	if _, ok := o.Limit(LimitFrags); ok {
		t.Error("frags given")
	}
	if o.Optimization != "aggressive" || o.RulesetOptimization != "basic" || !o.BlockPolicyReturn || !o.FailPolicyReturn ||
		!o.StatePolicyIfBound || o.RequireOrder || o.LogInterface != "eth0" || o.HostID != 0x2a || o.Debug != "misc" ||
		o.Fingerprints != "pf.os" || !o.KeepCounters || !o.Reassemble || !o.ReassembleNoDF {
		t.Errorf("options %+v", o)
	}
	if !slices.Equal(o.Skip, []string{"lo", "eth0", "eth1"}) {
		t.Errorf("skip %v", o.Skip)
	}
	if o.Syncookies != "adaptive" || o.SyncookiesStart != 30 || o.SyncookiesEnd != 10 {
		t.Errorf("syncookies %q %d %d", o.Syncookies, o.SyncookiesStart, o.SyncookiesEnd)
	}
	if !o.StateDefaults.NoSync || !o.StateDefaults.Pflow {
		t.Errorf("state-defaults %+v", o.StateDefaults)
	}
	if p, ok := o.Given["block-policy"]; !ok || rs.Sources.Position(p).Line != 8 {
		t.Errorf("block-policy given at %v, %v", rs.Sources.Position(p), ok)
	}
	if p := o.Given["timeout"]; rs.Sources.Position(p).Line != 3 {
		t.Errorf("last timeout statement at %v, want line 3", rs.Sources.Position(p))
	}
	// The printed text stays pfctl's.
	if got, want := rs.String(), "set skip on { eth0 eth1 }\n"; !strings.Contains("\n"+got, "\n"+want) {
		t.Errorf("printed:\n%s", got)
	}
}

// Later statements override earlier ones; unset options keep their zero
// values.
func TestOptionsOverride(t *testing.T) {
	rs := expandOpts(t, "set block-policy return\nset block-policy drop\nset state-policy if-bound\nset state-policy floating\nset skip on none\nset syncookies always\npass all\n")
	o := &rs.Options
	if o.BlockPolicyReturn || o.StatePolicyIfBound || len(o.Skip) != 0 || o.Syncookies != "always" {
		t.Errorf("options %+v", o)
	}
	if _, ok := o.Given["skip"]; !ok {
		t.Error("set skip on none not recorded as given")
	}
	rs = expandOpts(t, "pass all\n")
	if len(rs.Options.Given) != 0 || rs.Options.Optimization != "" {
		t.Errorf("no set statements: %+v", rs.Options)
	}
}

func TestSkipText(t *testing.T) {
	for ifs, want := range map[string]string{"": "set skip on none", "lo": "set skip on { lo }", "lo eth0": "set skip on { lo eth0 }"} {
		var list []string
		if ifs != "" {
			list = strings.Fields(ifs)
		}
		if got := SkipText(list); got != want {
			t.Errorf("SkipText(%q) = %q, want %q", ifs, got, want)
		}
	}
}

// RuleText prints a rule as the -nvv listing does, without "@N".
func TestRuleText(t *testing.T) {
	rs := expandOpts(t, "block in on eth0 proto tcp to port 22\nanchor \"foo\" {\n pass out all\n}\n")
	var b strings.Builder
	if err := rs.Print(&b, 2); err != nil {
		t.Fatal(err)
	}
	want := []string{"block drop in on eth0 proto tcp from any to any port = ssh", "anchor \"foo\" all", "pass out all flags S/SA keep state"}
	got := []string{RuleText(rs.Main.Filter[0]), RuleText(rs.Main.Filter[1]), RuleText(rs.Main.Filter[1].Anchor.Filter[0])}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, w := range want {
		if !strings.Contains(b.String(), w) {
			t.Errorf("-nvv listing lacks %q:\n%s", w, b.String())
		}
	}
}
