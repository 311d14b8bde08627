package compile

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/pfcarp/pfcarp/netdb"
	"github.com/pfcarp/pfcarp/pfconf"
)

// testHost is the machine the test rulesets are expanded on: the seed's
// balancer with Linux names and documentation addresses.
var testHost = &netdb.Fixed{
	Interfaces: []netdb.Interface{
		{Name: "lo", Addrs: []netdb.IfAddr{{Prefix: netip.MustParsePrefix("127.0.0.1/8")}}},
		{Name: "eth0", Addrs: []netdb.IfAddr{{Prefix: netip.MustParsePrefix("192.0.2.1/24")}}},
		{Name: "eth1", Addrs: []netdb.IfAddr{{Prefix: netip.MustParsePrefix("198.51.100.1/24")}}},
		{Name: "eth2", Addrs: []netdb.IfAddr{{Prefix: netip.MustParsePrefix("203.0.113.1/24")}}},
		{Name: "carp0", Addrs: []netdb.IfAddr{{Prefix: netip.MustParsePrefix("192.0.2.51/24")}}},
	},
	Users:  map[string]uint32{"root": 0, "www": 80},
	Groups: map[string]uint32{"wheel": 0},
}

// ruleset parses and expands src; it fails t on any error.
func ruleset(t testing.TB, src string) *pfconf.Ruleset {
	t.Helper()
	f, err := pfconf.Parse("pf.conf", []byte(src), pfconf.ParseOptions{
		ReadFile: func(p string) ([]byte, error) { return nil, fmt.Errorf("no files in tests: %s", p) },
	})
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	rs, err := pfconf.Expand(f, testHost)
	if err != nil {
		t.Fatalf("expand: %v", err)
	}
	return rs
}
