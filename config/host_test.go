package config

import (
	"net/netip"
	"testing"

	"github.com/pfcarp/pfcarp/netdb"
)

func TestNodeHost(t *testing.T) {
	src := []byte(`cloned_interfaces="carp0"
ifconfig_em0="inet 192.168.1.52 netmask 255.255.255.0"
ifconfig_carp0="vhid 1 pass x 192.168.1.51/24 advskew 10"
`)
	n, diags := Load("rc.conf", src, nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	base := &netdb.Fixed{Interfaces: []netdb.Interface{
		{Name: "lo0", Addrs: []netdb.IfAddr{{Prefix: netip.MustParsePrefix("127.0.0.1/8")}}},
	}}
	h := n.Host(base)
	cases := []struct {
		name string
		want []string // prefixes; nil with ok=false for unknown
		ok   bool
	}{
		{"carp0", []string{"192.168.1.51/24"}, true},
		{"carp", []string{"192.168.1.51/24"}, true},
		{"em0", []string{"192.168.1.52/24"}, true}, // from the config: not on this host
		{"lo0", []string{"127.0.0.1/8"}, true},     // the host's own
		{"self", []string{"127.0.0.1/8", "192.168.1.51/24"}, true},
		{"em1", nil, false},
	}
	for _, c := range cases {
		got, ok := h.InterfaceAddrs(c.name)
		if ok != c.ok || len(got) != len(c.want) {
			t.Errorf("%s: got %v, %v; want %v, %v", c.name, got, ok, c.want, c.ok)
			continue
		}
		for i := range got {
			if got[i].Prefix.String() != c.want[i] {
				t.Errorf("%s[%d] = %v, want %v", c.name, i, got[i].Prefix, c.want[i])
			}
		}
	}
	if got, _ := h.InterfaceAddrs("em0"); got[0].Broadcast != netip.MustParseAddr("192.168.1.255") {
		t.Errorf("em0 broadcast = %v, want 192.168.1.255", got[0].Broadcast)
	}
}

// On a Linux MASTER the VIP sits on the parent (em0 here); pf.conf's em0
// must still mean the interface's own address, as on BSD where the VIP is
// carp0's.
func TestNodeHostVIPOnParent(t *testing.T) {
	src := []byte(`cloned_interfaces="carp0"
ifconfig_em0="inet 192.168.1.52 netmask 255.255.255.0"
ifconfig_carp0="vhid 1 pass x 192.168.1.51/24 advskew 10"
`)
	n, diags := Load("rc.conf", src, nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	base := &netdb.Fixed{Interfaces: []netdb.Interface{{Name: "em0", Addrs: []netdb.IfAddr{
		{Prefix: netip.MustParsePrefix("192.168.1.52/24")},
		{Prefix: netip.MustParsePrefix("192.168.1.51/24")},
	}}}}
	h := n.Host(base)
	for name, want := range map[string]string{"em0": "192.168.1.52/24", "carp0": "192.168.1.51/24"} {
		got, ok := h.InterfaceAddrs(name)
		if !ok || len(got) != 1 || got[0].Prefix.String() != want {
			t.Errorf("%s: got %v, %v; want [%s]", name, got, ok, want)
		}
	}
	if got, _ := h.InterfaceAddrs("self"); len(got) != 2 {
		t.Errorf("self: got %v, want both addresses", got)
	}
}
