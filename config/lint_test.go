package config

import (
	"slices"
	"strings"
	"testing"
)

// seedSlave is seedMaster as the seed's rc.conf.slave differs from it.
var seedSlave = strings.NewReplacer(
	"master.cluster", "slave.cluster",
	"192.168.1.52", "192.168.1.53",
	"192.168.10.10 ", "192.168.10.11 ",
	"10.10.10.250", "10.10.10.251",
	"advskew 10", "advskew 20",
).Replace(seedMaster)

// edit applies old->new replacements to src and fails if one is missing.
func edit(t *testing.T, src string, pairs ...string) string {
	t.Helper()
	for i := 0; i < len(pairs); i += 2 {
		if pairs[i] != "" && !strings.Contains(src, pairs[i]) {
			t.Fatalf("edit: %q not in source", pairs[i])
		}
		if pairs[i] == "" {
			src += pairs[i+1] + "\n"
			continue
		}
		src = strings.Replace(src, pairs[i], pairs[i+1], 1)
	}
	return src
}

var seedFiles = map[string]string{"sysctl.conf": "net.inet.carp.preempt=1\n", "/etc/pf.conf": "pass\n"}

func checkIDs(t *testing.T, srcs []string, files map[string]string, rules []RulesLinter) []string {
	t.Helper()
	var nodes []*Node
	for i, s := range srcs {
		n, d := Load([]string{"a.conf", "b.conf"}[i], []byte(s), &Options{ReadFile: memFS(files)})
		if d.HasErrors() {
			t.Fatalf("node %d: %v", i, d)
		}
		nodes = append(nodes, n)
	}
	var out []string
	for _, d := range Check(nodes, CheckOptions{Rules: rules, ReadFile: memFS(files)}) {
		out = append(out, d.ID)
	}
	return slices.Compact(out)
}

// The seed pair: what an operator should be told about it, and no more.
func TestCheckSeedPair(t *testing.T) {
	got := checkIDs(t, []string{seedMaster, seedSlave}, seedFiles, nil)
	slices.Sort(got)
	want := []string{"carp-weak-pass", "pf-not-linted", "pfsync-no-auth"}
	if !slices.Equal(slices.Compact(got), want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestLints(t *testing.T) {
	strong := func(s string) string {
		return strings.NewReplacer("pass 11111", "pass Zq8vR2kLm4xWp", "pass 22222", "pass Hc7tN3bYs9fDj").Replace(s)
	}
	m, s := strong(seedMaster), strong(seedSlave)
	key := `pfsync_key="k3y-k3y-k3y-k3y"`
	m, s = edit(t, m, "", key), edit(t, s, "", key)
	tests := []struct {
		name string
		a, b string // b empty: one node
		want []string
	}{
		{"clean pair", m, s, nil},
		{"clean node", m, "", nil},
		{"no pass", edit(t, m, "pass Zq8vR2kLm4xWp ", ""), "", []string{"carp-no-pass"}},
		{"weak pass", edit(t, m, "Zq8vR2kLm4xWp", "abc"), "", []string{"carp-weak-pass"}},
		{"shared pass", edit(t, m, "Hc7tN3bYs9fDj", "Zq8vR2kLm4xWp"), "", []string{"carp-shared-pass"}},
		{"preempt off", m, "", []string{"carp-preempt-off"}},
		{"dhcp parent", edit(t, m, "ifconfig_eth1=\"inet 192.168.10.10 netmask 255.255.255.0\"", "ifconfig_eth1=\"DHCP\"", "192.168.10.100/24 advskew", "192.168.10.100/24 carpdev eth1 advskew"), "", []string{"carp-dhcp-parent"}},
		{"no pfsync", edit(t, m, "ifconfig_pfsync0=\"up syncif eth2\"", ""), "", []string{"pfsync-missing"}},
		{"pfsync nowhere", edit(t, m, "up syncif eth2", "up"), "", []string{"pfsync-no-syncdev"}},
		{"pfsync down", edit(t, m, "up syncif eth2", "syncif eth2"), "", []string{"pfsync-down"}},
		{"pfsync no address", edit(t, m, "syncif eth2", "syncif eth3"), "", []string{"pfsync-syncdev-no-addr"}},
		{"pfsync shared", edit(t, m, "syncif eth2", "syncif eth1"), "", []string{"pfsync-syncdev-shared"}},
		{"pfsync no auth", edit(t, m, key, ""), "", []string{"pfsync-no-auth"}},
		{"pf off", edit(t, m, `pf_enable="YES"`, `pf_enable="NO"`), "", []string{"pf-disabled", "pflog-without-pf"}},
		{"pf rules missing", edit(t, m, `/etc/pf.conf`, `/etc/nope.conf`), "", []string{"pf-rules-missing"}},
		{"no forwarding", edit(t, m, `gateway_enable="YES"`, `gateway_enable="NO"`), "", []string{"gateway-disabled"}},
		{"router off-link", edit(t, m, "192.168.1.1\"", "203.0.113.1\""), "", []string{"defaultrouter-unreachable"}},
		{"router is VIP", edit(t, m, "192.168.1.1\"", "192.168.1.51\""), "", []string{"defaultrouter-is-self"}},
		{"router is self", edit(t, m, "192.168.1.1\"", "192.168.1.52\""), "", []string{"defaultrouter-is-self"}},
		{"group missing", m, edit(t, s, `ifconfig_carp1="vhid 1 pass Hc7tN3bYs9fDj 192.168.10.100/24 advskew 20"`, "", "carp0 carp1", "carp0"), []string{"pair-group-missing"}},
		{"vhid mismatch", m, edit(t, s, "vhid 1 pass Zq8", "vhid 2 pass Zq8"), []string{"pair-vhid-mismatch"}},
		{"pass mismatch", m, edit(t, s, "Zq8vR2kLm4xWp", "Zq8vR2kLm4xWq"), []string{"pair-pass-mismatch"}},
		{"vip mismatch", m, edit(t, s, "", `ifconfig_carp0_alias0="192.168.1.54/32"`), []string{"pair-vip-mismatch"}},
		{"advbase mismatch", m, edit(t, s, "advskew 20", "advbase 2 advskew 20"), []string{"pair-advbase-mismatch"}},
		{"equal skew", m, strings.ReplaceAll(s, "advskew 20", "advskew 10"), []string{"pair-equal-skew"}},
		{"roles split", m, edit(t, s, "100/24 advskew 20", "100/24 advskew 5"), []string{"pair-roles-split"}},
		{"roles vs hostname", m, strings.ReplaceAll(s, "advskew 20", "advskew 5"), []string{"pair-roles-hostname"}},
		{"preempt mismatch", edit(t, m, "", `carp_preempt="YES"`), s, []string{"pair-preempt-mismatch", "carp-preempt-off"}},
		{"default router mismatch", m, edit(t, s, "192.168.1.1\"", "192.168.1.2\""), []string{"pair-defaultrouter-mismatch"}},
		{"address conflict", m, edit(t, s, "192.168.1.53", "192.168.1.52"), []string{"pair-addr-conflict"}},
		{"same hostname", m, edit(t, s, "slave.cluster", "master.cluster"), []string{"pair-hostname-same"}},
		{"pfsync on one", m, edit(t, s, "ifconfig_pfsync0=\"up syncif eth2\"", ""), []string{"pair-pfsync-missing", "pfsync-missing"}},
		{"pfsync subnets", m, edit(t, s, "10.10.10.251", "10.10.11.251"), []string{"pair-pfsync-unreachable"}},
		{"syncpeer wrong", edit(t, m, "syncif eth2", "syncif eth2 syncpeer 10.10.10.99"), s, []string{"pair-syncpeer-wrong"}},
		{"syncpeer right", edit(t, m, "syncif eth2", "syncif eth2 syncpeer 10.10.10.251"), s, nil},
		{"pfsync key mismatch", m, edit(t, s, "k3y-k3y-k3y-k3y", "other-key-other"), []string{"pair-pfsync-key-mismatch"}},
		{"vmac mismatch", edit(t, m, "", `carp_vmac="YES"`), s, []string{"pair-vmac-mismatch"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srcs := []string{tt.a}
			if tt.b != "" {
				srcs = append(srcs, tt.b)
			}
			// Preemption on (in rc.conf: no sysctl.conf here) unless the
			// case is about it.
			for i := range srcs {
				if tt.name != "preempt off" && tt.name != "preempt mismatch" || i == 0 && tt.name == "preempt mismatch" {
					if !strings.Contains(srcs[i], "carp_preempt") {
						srcs[i] += "carp_preempt=\"YES\"\n"
					}
				}
			}
			got := checkIDs(t, srcs, map[string]string{"/etc/pf.conf": "pass\n"}, []RulesLinter{RulesLinterFunc(func(*Node, []byte) Diags { return nil })})
			slices.Sort(got)
			want := slices.Clone(tt.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

// Every lint ID is exercised by TestLints or TestCheckSeedPair, or, for the
// pf.conf lints, by package pflint's tests.
func TestLintsCovered(t *testing.T) {
	src := mustRead(t, "lint_test.go") + mustRead(t, "pflint/pflint_test.go")
	for _, l := range Lints {
		if !strings.Contains(src, `"`+l.ID+`"`) {
			t.Errorf("lint %s has no test", l.ID)
		}
	}
}

func TestRulesLinterHook(t *testing.T) {
	var saw []string
	lint := RulesLinterFunc(func(n *Node, src []byte) Diags {
		saw = append(saw, n.name()+":"+string(src))
		return Diags{{Pos: Pos{File: n.PF.RulesPath, Line: 1, Col: 1}, Severity: Warning, ID: "pf-nat-own-addr", Msg: "x"}}
	})
	n, _ := Load("a.conf", []byte(seedMaster), &Options{ReadFile: memFS(seedFiles)})
	d := Check([]*Node{n}, CheckOptions{Rules: []RulesLinter{lint}, ReadFile: memFS(seedFiles)})
	if !slices.Equal(saw, []string{"master:pass\n"}) {
		t.Errorf("linter saw %q", saw)
	}
	found := false
	for _, x := range d {
		found = found || x.ID == "pf-nat-own-addr" && x.Pos.File == "/etc/pf.conf"
		if x.ID == "pf-not-linted" {
			t.Error("pf-not-linted despite a linter")
		}
	}
	if !found {
		t.Errorf("linter finding missing: %v", d)
	}
}

type pairLinter struct {
	RulesLinterFunc
	saw []string
}

func (p *pairLinter) LintRulesPair(a, b *Node, srcA, srcB []byte) Diags {
	p.saw = append(p.saw, a.name()+":"+string(srcA)+"|"+b.name()+":"+string(srcB))
	return Diags{{Pos: Pos{File: b.PF.RulesPath, Line: 2, Col: 1}, Severity: Warning, ID: "pair-rules-differ", Msg: "y"}}
}

// A RulesLinter that is a PairRulesLinter also sees each pair's two
// pf.conf, once, and its findings are Check's.
func TestPairRulesLinterHook(t *testing.T) {
	files := map[string]string{"sysctl.conf": "net.inet.carp.preempt=1\n", "/etc/pf.conf": "pass\n", "/etc/pf2.conf": "block\n"}
	l := &pairLinter{RulesLinterFunc: func(*Node, []byte) Diags { return nil }}
	a, _ := Load("a.conf", []byte(seedMaster), &Options{ReadFile: memFS(files)})
	b, _ := Load("b.conf", []byte(strings.Replace(seedSlave, `pf_rules="/etc/pf.conf"`, `pf_rules="/etc/pf2.conf"`, 1)), &Options{ReadFile: memFS(files)})
	if b.PF.RulesPath != "/etc/pf2.conf" {
		t.Fatalf("slave's pf_rules: %q", b.PF.RulesPath)
	}
	d := Check([]*Node{a, b}, CheckOptions{Rules: []RulesLinter{l}, ReadFile: memFS(files)})
	if !slices.Equal(l.saw, []string{"master:pass\n|slave:block\n"}) {
		t.Errorf("pair linter saw %q", l.saw)
	}
	if !slices.ContainsFunc(d, func(x Diag) bool { return x.ID == "pair-rules-differ" && x.Pos.File == "/etc/pf2.conf" }) {
		t.Errorf("pair finding missing: %v", d)
	}
	// A node whose pf_rules cannot be read is not compared.
	l.saw = nil
	Check([]*Node{a, b}, CheckOptions{Rules: []RulesLinter{l}, ReadFile: memFS(map[string]string{"/etc/pf.conf": "pass\n"})})
	if len(l.saw) != 0 {
		t.Errorf("pair linter ran without b's pf.conf: %q", l.saw)
	}
}
