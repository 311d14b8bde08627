package pfconf

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/pfcarp/pfcarp/examples/seed"
	"github.com/pfcarp/pfcarp/netdb"
)

// TestSeedRuleset expands the seed's pf.conf (Linux interface names) on a
// host shaped like lb1 on Linux: every interface lists its IPv6 link-local
// first, as netdb.System does.
func TestSeedRuleset(t *testing.T) {
	src, err := seed.ReadFile("pf.conf")
	if err != nil {
		t.Fatal(err)
	}
	pfx := netip.MustParsePrefix
	host := &netdb.Fixed{Interfaces: []netdb.Interface{
		{Name: "lo", Addrs: []netdb.IfAddr{{Prefix: pfx("::1/128")}, {Prefix: pfx("127.0.0.1/8")}}},
		{Name: "eth0", Addrs: []netdb.IfAddr{{Prefix: pfx("fe80::1/64")}, {Prefix: pfx("192.168.1.52/24")}}},
		{Name: "eth1", Addrs: []netdb.IfAddr{{Prefix: pfx("fe80::2/64")}, {Prefix: pfx("192.168.10.10/24")}}},
		{Name: "eth2", Addrs: []netdb.IfAddr{{Prefix: pfx("fe80::3/64")}, {Prefix: pfx("10.10.10.250/24")}}},
		{Name: "carp0", Addrs: []netdb.IfAddr{{Prefix: pfx("192.168.1.51/24")}}},
	}}
	out, serr, failed := runPfctl("pf.conf", src, host, nil)
	if failed {
		t.Fatalf("seed pf.conf rejected:\n%s", serr)
	}
	want := `lop_if = "lo"
ext_if = "eth0"
int_if = "eth1"
sync_if = "eth2"
ext_carp = "carp0"
web_ports = "{ 80, 443 }"
web_servers = "{ 192.168.10.20, 192.168.10.21 }"
set block-policy drop
set skip on { lo }
scrub in all fragment reassemble
nat on eth0 inet from 192.168.10.0/24 to any -> 192.168.1.52
rdr on eth0 inet proto tcp from any to 192.168.1.51 port = http -> { 192.168.10.20, 192.168.10.21 } round-robin sticky-address
rdr on eth0 inet proto tcp from any to 192.168.1.51 port = https -> { 192.168.10.20, 192.168.10.21 } round-robin sticky-address
pass quick on eth2 proto pfsync all keep state (no-sync)
pass on eth0 proto carp all keep state
pass on eth1 proto carp all keep state
`
	if out != want {
		t.Errorf("seed ruleset:\n%s", diff(want, out))
	}
	// Without the interfaces, pfctl's own messages name what is missing.
	_, serr, failed = runPfctl("pf.conf", src, &netdb.Fixed{}, nil)
	if !failed || !strings.Contains(serr, "pf.conf:19: no IP address found for eth1:network") {
		t.Errorf("missing interfaces: failed=%v stderr:\n%s", failed, serr)
	}
}
