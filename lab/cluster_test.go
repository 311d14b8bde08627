package lab

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pfcarp/pfcarp/config"
	"github.com/pfcarp/pfcarp/examples/seed"
)

func TestTranslateAddrs(t *testing.T) {
	from, to := AddressingFor(true), AddressingFor(false)
	for _, tc := range []struct{ in, want string }{
		{`ifconfig_carp0="vhid 1 pass 11111 192.168.1.51/24 advskew 10"`, `ifconfig_carp0="vhid 1 pass 11111 198.51.100.51/24 advskew 10"`},
		{`inet 192.168.10.11 netmask 255.255.255.0`, `inet 192.0.2.11 netmask 255.255.255.0`},
		{`ifconfig_eth2="10.10.10.250 netmask 255.255.255.0"`, `ifconfig_eth2="203.0.113.250 netmask 255.255.255.0"`},
		{`web_servers = "{ 192.168.10.20, 192.168.10.21 }"`, `web_servers = "{ 192.0.2.20, 192.0.2.21 }"`},
		{`defaultrouter="192.168.1.1"`, `defaultrouter="198.51.100.1"`},
		// Not in a seed network, not one address, or not an address: kept.
		{`192.168.2.1 10.10.1.1 130.104.5.67`, `192.168.2.1 10.10.1.1 130.104.5.67`},
		{`1.192.168.1.5 192.168.1.5.1 192.168.1.256 ucarp 1.5.2`, `1.192.168.1.5 192.168.1.5.1 192.168.1.256 ucarp 1.5.2`},
		{`x192.168.1.7y/32`, `x198.51.100.7y/32`},
	} {
		if got := string(TranslateAddrs([]byte(tc.in), from, to)); got != tc.want {
			t.Errorf("TranslateAddrs(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
	// Same addressing both ways: nothing changes.
	for _, name := range seed.Names() {
		b, _ := seed.ReadFile(name)
		if got := TranslateAddrs(b, from, from); !bytes.Equal(got, b) {
			t.Errorf("%s: translating seed->seed changed it", name)
		}
	}
}

func TestSetPflogFile(t *testing.T) {
	got, err := setPflogFile([]byte("a=1\npflog_logfile=\"/var/log/pflog\"\nb=2\n"), "/run/x/lb1/pflog")
	if err != nil || string(got) != "a=1\npflog_logfile=\"/run/x/lb1/pflog\"\nb=2\n" {
		t.Errorf("replace: %q, %v", got, err)
	}
	got, err = setPflogFile([]byte("a=1"), "/d/pflog")
	if err != nil || string(got) != "a=1\npflog_logfile=\"/d/pflog\"\n" {
		t.Errorf("append: %q, %v", got, err)
	}
	for _, bad := range []string{`/a"b`, "/a$b", "/a`b", `/a\b`, "/a\nb"} {
		if _, err := setPflogFile(nil, bad); err == nil {
			t.Errorf("path %q accepted", bad)
		}
	}
}

// The cluster's files load without errors in both addressings, with the
// seed's roles and the lab's addresses, and nothing outside the lab dir.
func TestClusterFiles(t *testing.T) {
	for _, seedAddrs := range []bool{false, true} {
		dir := t.TempDir()
		files, err := ClusterFiles(dir, seedAddrs)
		if err != nil {
			t.Fatal(err)
		}
		plan, err := NewPlan(seedAddrs, 2)
		if err != nil {
			t.Fatal(err)
		}
		ext, _ := plan.Segment(SegExternal)
		in, _ := plan.Segment(SegInternal)
		for node, skew := range map[string]int{"lb1": 10, "lb2": 20} {
			nd := filepath.Join(dir, node)
			if err := os.MkdirAll(nd, 0o755); err != nil {
				t.Fatal(err)
			}
			for f, b := range files[node] {
				if err := os.WriteFile(filepath.Join(nd, f), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			n, diags := config.LoadFile(filepath.Join(nd, "pfcarp.conf"), nil)
			if err := diags.Err(); err != nil {
				t.Fatalf("seed=%v %s: %v", seedAddrs, node, err)
			}
			if !n.Preempt {
				t.Errorf("seed=%v %s: preempt off (sysctl.conf not read?)", seedAddrs, node)
			}
			if want := filepath.Join(nd, "pflog"); n.Pflog.Logfile != want {
				t.Errorf("seed=%v %s: pflog_logfile %q, want %q", seedAddrs, node, n.Pflog.Logfile, want)
			}
			want := map[string]struct {
				dev string
				vip netip.Addr
			}{"carp0": {"eth0", ext.VIP}, "carp1": {"eth1", in.VIP}}
			if len(n.CARP) != 2 {
				t.Fatalf("seed=%v %s: %d CARP groups, want 2", seedAddrs, node, len(n.CARP))
			}
			for _, g := range n.CARP {
				w := want[g.Name]
				if g.Dev != w.dev || len(g.VIPs) != 1 || g.VIPs[0].Prefix.Addr() != w.vip || g.AdvSkew != skew || g.VHID != 1 {
					t.Errorf("seed=%v %s: %s on %q vips %v advskew %d, want on %s vip %s advskew %d",
						seedAddrs, node, g.Name, g.Dev, g.VIPs, g.AdvSkew, w.dev, w.vip, skew)
				}
			}
			ownExt, _ := plan.Addr(node, "eth0")
			if !bytes.Contains(files[node]["pfcarp.conf"], []byte("inet "+ownExt.String()+" ")) {
				t.Errorf("seed=%v %s: rc.conf lacks its external address %s", seedAddrs, node, ownExt)
			}
			if !seedAddrs {
				for f, b := range files[node] {
					for _, old := range []string{"192.168.1.", "192.168.10.", "10.10.10."} {
						if bytes.Contains(b, []byte(old)) {
							t.Errorf("%s/%s still has %s", node, f, old)
						}
					}
				}
			} else {
				// Verbatim but for pflog_logfile and the two lines of the
				// lab's pfcarp_nice at the end.
				orig, _ := seed.ReadFile("rc.conf." + node)
				o := strings.Split(string(orig), "\n")
				got := string(files[node]["pfcarp.conf"])
				tail := fmt.Sprintf("pfcarp_nice=\"%d\"\n", LabNice)
				if !strings.HasSuffix(got, tail) {
					t.Fatalf("%s: rc.conf does not end with %q", node, tail)
				}
				g := strings.Split(got, "\n")
				g = append(g[:len(g)-3], g[len(g)-1])
				if len(o) != len(g) {
					t.Fatalf("%s: line count changed", node)
				}
				for i := range o {
					if o[i] != g[i] && !strings.HasPrefix(o[i], "pflog_logfile=") {
						t.Errorf("%s line %d changed: %q -> %q", node, i+1, o[i], g[i])
					}
				}
			}
		}
	}
}

func TestWithCluster(t *testing.T) {
	o, err := WithCluster(Options{Dir: "rel", Daemons: map[string][]string{"lb2": {"/usr/sbin/ucarp"}},
		NodeFiles: map[string]map[string][]byte{"lb1": {"pfcarp.conf": []byte("mine")}}})
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(o.Dir) || !o.StartDaemons {
		t.Errorf("dir %q start %v", o.Dir, o.StartDaemons)
	}
	if got := strings.Join(o.Daemons["lb1"], " "); got != strings.Join(DefaultDaemon(), " ") {
		t.Errorf("lb1 daemon %q", got)
	}
	if got := o.Daemons["lb2"]; len(got) != 1 || got[0] != "/usr/sbin/ucarp" {
		t.Errorf("lb2 daemon replaced: %q", got)
	}
	if string(o.NodeFiles["lb1"]["pfcarp.conf"]) != "mine" || o.NodeFiles["lb1"]["pf.conf"] == nil {
		t.Errorf("lb1 files: caller's pfcarp.conf must win, cluster's pf.conf added")
	}
	if o.NodeFiles["lb2"]["sysctl.conf"] == nil {
		t.Errorf("lb2 files missing")
	}
}
