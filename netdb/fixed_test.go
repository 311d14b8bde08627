package netdb

import (
	"net/netip"
	"slices"
	"testing"
)

// TestFixedIfname checks that every answer names the interface of each
// address, for an interface, a group and "self", whether or not the
// fixture's data named it, and that the fixture's data is not changed.
func TestFixedIfname(t *testing.T) {
	pfx := netip.MustParsePrefix
	f := &Fixed{Interfaces: []Interface{
		{Name: "eth0", Groups: []string{"all", "eth"}, Addrs: []IfAddr{{Prefix: pfx("fe80::1/64")}, {Prefix: pfx("192.0.2.1/24")}}},
		{Name: "eth1", Groups: []string{"all", "eth"}, Addrs: []IfAddr{{Prefix: pfx("fe80::1/64"), Ifname: "eth1"}}},
	}}
	type got struct {
		p      netip.Prefix
		ifname string
	}
	ask := func(name string) []got {
		addrs, ok := f.InterfaceAddrs(name)
		if !ok {
			t.Fatalf("InterfaceAddrs(%q): no such interface", name)
		}
		var out []got
		for _, a := range addrs {
			out = append(out, got{a.Prefix, a.Ifname})
		}
		return out
	}
	all := []got{{pfx("fe80::1/64"), "eth0"}, {pfx("192.0.2.1/24"), "eth0"}, {pfx("fe80::1/64"), "eth1"}}
	for _, tc := range []struct {
		name string
		want []got
	}{{"eth0", all[:2]}, {"eth1", all[2:]}, {"eth", all}, {SelfName, all}} {
		if g := ask(tc.name); !slices.Equal(g, tc.want) {
			t.Errorf("InterfaceAddrs(%q) = %v, want %v", tc.name, g, tc.want)
		}
	}
	if f.Interfaces[0].Addrs[0].Ifname != "" {
		t.Errorf("lookup changed the fixture: %+v", f.Interfaces[0].Addrs[0])
	}
}
