package pflint

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/pfcarp/pfcarp/config"
)

// lb2BSD is the seed's backup with its FreeBSD interface names (em0, em1,
// fxp0) and its own addresses, its pf_rules beside it.
const lb2BSD = `gateway_enable="YES"
defaultrouter="192.168.1.1"
hostname="slave.cluster.org"
cloned_interfaces="carp0 carp1"
ifconfig_em0="inet 192.168.1.53 netmask 255.255.255.0"
ifconfig_carp0="vhid 1 pass 11111 192.168.1.51/24 advskew 20"
ifconfig_em1="inet 192.168.10.11 netmask 255.255.255.0"
ifconfig_carp1="vhid 1 pass 22222 192.168.10.100/24 advskew 20"
ifconfig_fxp0="10.10.10.251 netmask 255.255.255.0"
ifconfig_pfsync0="up syncif fxp0"
pf_enable="YES"
pf_rules="/etc/pf.lb2.conf"
carp_preempt="YES"
`

// seedPFBSD is seedPF with lb2BSD's interface names.
var seedPFBSD = strings.NewReplacer(`"eth0"`, `"em0"`, `"eth1"`, `"em1"`, `"eth2"`, `"fxp0"`).Replace(seedPF)

func pairLint(t *testing.T, pfA, pfB string) config.Diags {
	t.Helper()
	a := node(t, lb1)
	b, d := config.Load("lb2.conf", []byte(lb2BSD), &config.Options{ReadFile: memFS(nil)})
	if d.HasErrors() {
		t.Fatalf("rc.conf: %v", d)
	}
	return (&Linter{ReadFile: memFS(nil)}).LintRulesPair(a, b, []byte(pfA), []byte(pfB))
}

func TestPairRules(t *testing.T) {
	for _, tc := range []struct {
		name, a, b string
		want       []string // "file:line: text" of each finding's position and quoted rule
	}{
		// The seed on both: other interface names, own addresses (nat ->
		// $ext_if is each node's own address) are what a pair differs in.
		{"seed", seedPF, seedPFBSD, nil},
		// A rule naming the peer names the other node on each.
		{"peer and own addresses", seedPF + "pass quick on $sync_if from 10.10.10.251\ntable <me> { $ext_if $int_if }\n",
			seedPFBSD + "pass quick on $sync_if from 10.10.10.250\ntable <me> { $ext_if $int_if }\n", nil},
		{"skip", edit(t, seedPF, "set skip on $lop_if", "set skip on { $lop_if $sync_if }"),
			edit(t, seedPFBSD, "set skip on $lop_if", "set skip on { $lop_if $sync_if }"), nil},
		{"extra rule on b", seedPF, seedPFBSD + "pass in on $ext_if proto tcp to port 22\n",
			[]string{`/etc/pf.lb2.conf:15: "pass in on em0 proto tcp from any to any port = ssh flags S/SA keep state"`}},
		{"extra rule on a", seedPF + "block in on $int_if from 10.0.0.0/8\n", seedPFBSD,
			[]string{`/etc/pf.conf:15: "block drop in on eth1 inet from 10.0.0.0/8 to any"`}},
		{"other port", seedPF, edit(t, seedPFBSD, "{ 80, 443 }", "{ 80, 8443 }"),
			[]string{`/etc/pf.conf:12: "rdr on eth0 inet proto tcp from any to 192.168.1.51 port = https -> { 192.168.10.20, 192.168.10.21 } round-robin sticky-address"`,
				`/etc/pf.lb2.conf:12: "rdr on em0 inet proto tcp from any to 192.168.1.51 port = 8443 -> { 192.168.10.20, 192.168.10.21 } round-robin sticky-address"`}},
		{"other network", seedPF, edit(t, seedPFBSD, "from $int_if:network", "from 192.168.0.0/16"),
			[]string{`/etc/pf.conf:11: "nat on eth0 inet from 192.168.10.0/24 to any -> 192.168.1.52"`,
				`/etc/pf.lb2.conf:11: "nat on em0 inet from 192.168.0.0/16 to any -> 192.168.1.53"`}},
		{"order", seedPF + "pass in all\nblock in on $ext_if proto udp\n", seedPFBSD + "block in on $ext_if proto udp\npass in all\n",
			[]string{`/etc/pf.conf:15: "pass in all flags S/SA keep state"`, `/etc/pf.lb2.conf:16: "pass in all flags S/SA keep state"`}},
		{"option", seedPF, edit(t, seedPFBSD, "set block-policy drop", "set block-policy return"),
			[]string{`/etc/pf.conf:8: "set block-policy drop"`, `/etc/pf.lb2.conf:8: "set block-policy return"`}},
		{"table", seedPF + "table <bad> { 203.0.113.0/24 }\n", seedPFBSD + "table <bad> { 203.0.113.0/25 }\n",
			[]string{`/etc/pf.conf:15: "table <bad> { 203.0.113.0/24 }"`, `/etc/pf.lb2.conf:15: "table <bad> { 203.0.113.0/25 }"`}},
		{"b does not parse", seedPF, "pass in on\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, x := range pairLint(t, tc.a, tc.b) {
				if x.ID != "pair-rules-differ" || x.Severity != config.Warning {
					t.Errorf("unexpected finding %v", x)
					continue
				}
				q := x.Msg[strings.Index(x.Msg, `"`):]
				q = q[:strings.Index(q, `", `)+1]
				got = append(got, fmt.Sprintf("%s:%d: %s", x.Pos.File, x.Pos.Line, strings.ReplaceAll(q, `\"`, `"`)))
				if x.Pos.File == "/etc/pf.lb2.conf" && !strings.Contains(x.Msg, "(reading slave's em0 as eth0, em1 as eth1, fxp0 as eth2)") {
					t.Errorf("message does not say how names were read: %s", x.Msg)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// Many differences: the first ones, then a count of the rest.
func TestPairRulesCap(t *testing.T) {
	var extra strings.Builder
	for i := 0; i < 15; i++ {
		fmt.Fprintf(&extra, "pass in on $ext_if proto tcp to port %d\n", 1000+i)
	}
	d := pairLint(t, seedPF, seedPFBSD+extra.String())
	if len(d) != maxPairDiffs || !strings.HasPrefix(d[len(d)-1].Msg, "6 more differences between the rulesets of master and slave") {
		t.Errorf("%d findings, last %v", len(d), d[len(d)-1])
	}
}
