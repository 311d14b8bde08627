package tc

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/pfcarp/pfcarp/netdb"
	"github.com/pfcarp/pfcarp/pfconf"
)

var host = &netdb.Fixed{Interfaces: []netdb.Interface{
	{Name: "eth0", Addrs: []netdb.IfAddr{{Prefix: netip.MustParsePrefix("192.0.2.1/24")}}},
	{Name: "eth1", Addrs: []netdb.IfAddr{{Prefix: netip.MustParsePrefix("198.51.100.1/24")}}},
}}

func rulesetOf(t *testing.T, src string) *pfconf.Ruleset {
	t.Helper()
	f, err := pfconf.Parse("pf.conf", []byte(src), pfconf.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := pfconf.Expand(f, host)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// htbOnly is this kind of kernel: HTB and FIFO, no HFSC, no FQ-CoDel.
func htbOnly(k string) bool { return k == HTB || k == Pfifo }

func plan(t *testing.T, src string, has Features) *Plan {
	t.Helper()
	p, errs := Build(rulesetOf(t, src), has)
	if len(errs) > 0 {
		t.Fatalf("refused: %v", errs)
	}
	return p
}

func class(t *testing.T, p *Plan, ifname, name string) *Class {
	t.Helper()
	for _, ifc := range p.Ifaces {
		if ifc.Name != ifname {
			continue
		}
		for _, c := range ifc.Classes {
			if c.Name == name {
				return c
			}
		}
	}
	t.Fatalf("no class %s on %s", name, ifname)
	return nil
}

func TestOpenBSD(t *testing.T) {
	p := plan(t, `
queue rootq on eth0 bandwidth 10M max 8M
queue std parent rootq bandwidth 2M default
queue ssh parent rootq bandwidth 3M, min 1M qlimit 100
queue bulk parent rootq bandwidth 1M burst 2M for 100ms max 4M
`, htbOnly)
	if len(p.Ifaces) != 1 || p.Ifaces[0].Kind != HTB {
		t.Fatalf("ifaces %+v", p.Ifaces)
	}
	root, std, ssh, bulk := class(t, p, "eth0", "rootq"), class(t, p, "eth0", "std"), class(t, p, "eth0", "ssh"), class(t, p, "eth0", "bulk")
	if root.Rate != 10e6 || root.Ceil != 10e6 || root.Parent != 0 || root.Leaf != nil {
		// max below bandwidth: HTB's ceil cannot be below its rate
		t.Errorf("root %+v", root)
	}
	if std.Rate != 2e6 || std.Ceil != root.Ceil || std.Parent != root.Minor || p.Ifaces[0].Default != std.Minor {
		t.Errorf("std %+v, default %d", std, p.Ifaces[0].Default)
	}
	if std.Leaf == nil || std.Leaf.Kind != Pfifo || std.Leaf.Limit != DefaultQlimit {
		t.Errorf("std leaf %+v", std.Leaf)
	}
	if ssh.Rate != 1e6 || ssh.Quantum != quantumFor(3e6) || ssh.Leaf.Limit != 100 {
		t.Errorf("ssh (min 1M, bandwidth 3M): %+v", ssh)
	}
	if bulk.Rate != 1e6 || bulk.Ceil != 4e6 || bulk.Burst != 2e6/8/10 {
		t.Errorf("bulk %+v", bulk)
	}
	if id, ok := p.ClassID("ssh"); !ok || id != Handle(ssh.Minor) || id>>16 != uint32(Major) {
		t.Errorf("ClassID(ssh) = %x, %v", id, ok)
	}
}

func TestCBQ(t *testing.T) {
	p := plan(t, `
altq on eth0 cbq bandwidth 10Mb queue { std, http }
queue std bandwidth 10% cbq(default)
queue http bandwidth 60% priority 5 cbq(borrow red) { a, b }
queue  a bandwidth 50% cbq(borrow)
queue  b bandwidth 50%
`, htbOnly)
	std, http, a, b := class(t, p, "eth0", "std"), class(t, p, "eth0", "http"), class(t, p, "eth0", "a"), class(t, p, "eth0", "b")
	if std.Rate != 1e6 || std.Ceil != 1e6 || std.Parent != rootMinor || std.Prio != 6 {
		t.Errorf("std %+v", std)
	}
	if http.Rate != 6e6 || http.Ceil != 10e6 || http.Prio != 2 || http.Leaf != nil {
		t.Errorf("http %+v", http)
	}
	if a.Rate != 3e6 || a.Ceil != 10e6 || a.Parent != http.Minor {
		t.Errorf("a %+v", a)
	}
	if b.Rate != 3e6 || b.Ceil != 3e6 {
		t.Errorf("b (no borrow) %+v", b)
	}
	if len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], "cbq(red) is not applied") {
		t.Errorf("warnings %q", p.Warnings)
	}
}

func TestPRIQ(t *testing.T) {
	p := plan(t, `
altq on eth1 priq bandwidth 2Mb queue { low, mid, high }
queue low priority 1 priq(default)
queue mid priority 4
queue high priority 7
`, htbOnly)
	low, mid, high := class(t, p, "eth1", "low"), class(t, p, "eth1", "mid"), class(t, p, "eth1", "high")
	if high.Prio != 0 || mid.Prio != 1 || low.Prio != 2 {
		t.Errorf("prios high %d mid %d low %d, want 0 1 2", high.Prio, mid.Prio, low.Prio)
	}
	for _, c := range []*Class{low, mid, high} {
		if c.Ceil != 2e6 || c.Rate != 8 {
			t.Errorf("%s: rate %d ceil %d", c.Name, c.Rate, c.Ceil)
		}
	}
}

func TestHFSC(t *testing.T) {
	src := `
altq on eth0 bandwidth 16Mb hfsc queue { eng, law }
queue eng bandwidth 10Mb hfsc(realtime 4Mb upperlimit (12Mb 100 10Mb))
queue law bandwidth 50% hfsc(default linkshare 30%)
`
	_, errs := Build(rulesetOf(t, src), htbOnly)
	if len(errs) != 1 || errs[0].Msg != "hfsc queue needs the Linux HFSC qdisc (CONFIG_NET_SCH_HFSC), not in this kernel" {
		t.Fatalf("errors %v", errs)
	}
	p := plan(t, src, Mainline)
	eng, law := class(t, p, "eth0", "eng"), class(t, p, "eth0", "law")
	if p.Ifaces[0].Kind != HFSC || p.Ifaces[0].Default != law.Minor {
		t.Errorf("iface %+v", p.Ifaces[0])
	}
	if eng.RT.M2 != 4e6 || eng.LS.M2 != 10e6 || eng.UL != (pfconf.Curve{M1: 12e6, D: 100, M2: 10e6, Set: true}) {
		t.Errorf("eng %+v", eng)
	}
	if law.LS.M2 != 16e6*30/100 {
		t.Errorf("law linkshare %+v (30%% of the parent's 16Mb)", law.LS)
	}
}

func TestRefusals(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"queue q on eth0 flows 1024 bandwidth 10M default\n", "1:1: flows queue q needs the Linux FQ-CoDel qdisc (CONFIG_NET_SCH_FQ_CODEL), not in this kernel"},
		{"queue q on eth0 flows 1024 default\n", "1:1: flows queue q needs the Linux FQ-CoDel qdisc (CONFIG_NET_SCH_FQ_CODEL), not in this kernel"},
		{"queue r on eth0 bandwidth 10M\nqueue a parent r bandwidth 1M\n", "1:1: interface eth0 has no default queue"},
		{"altq on eth0 fairq bandwidth 1Mb queue { a }\nqueue a fairq(default)\n", "1:1: fairq queues are not supported: Linux has no FAIRQ scheduler"},
		{"queue r on eth0 bandwidth 10M\nqueue a parent r bandwidth 1M default\nqueue b parent r bandwidth 1M default\n", "3:1: queue b: eth0 already has the default queue a"},
		{"altq on eth0 cbq(default) bandwidth 100Kb queue q\nqueue q priority 4\n", "1:1: the default queue is the root queue of eth0, which has child queues: not supported (Linux HTB and HFSC queue packets in leaf classes only)"},
	} {
		rs := rulesetOf(t, tc.src)
		_, errs := Build(rs, htbOnly)
		var got []string
		for _, e := range errs {
			p := rs.Sources.Position(e.Pos)
			got = append(got, strings.TrimPrefix(p.String(), "pf.conf:")+": "+e.Msg)
		}
		if len(got) != 1 || got[0] != tc.want {
			t.Errorf("%q: %q, want %q", tc.src, got, tc.want)
		}
	}
}

func TestFlowsMainline(t *testing.T) {
	p := plan(t, "queue q on eth0 flows 1024 qlimit 300 default\nqueue r on eth1 flows 512 quantum 300 bandwidth 10M default\n", Mainline)
	if p.Ifaces[0].Kind != FqCodel || p.Ifaces[0].Leaf.Flows != 1024 || p.Ifaces[0].Leaf.Limit != 300 {
		t.Errorf("eth0 %+v", p.Ifaces[0])
	}
	r := class(t, p, "eth1", "r")
	if r.Leaf == nil || r.Leaf.Kind != FqCodel || r.Leaf.Flows != 512 || r.Leaf.Quantum != 300 {
		t.Errorf("r %+v", r.Leaf)
	}
}
