package bsdhost

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/pfcarp/pfcarp/netdb"
)

func prefixes(a []netdb.IfAddr) []string {
	var s []string
	for _, x := range a {
		s = append(s, x.Prefix.String())
	}
	return s
}

func TestStatic(t *testing.T) {
	h := Static()
	lo, ok := h.InterfaceAddrs("lo0")
	if want := []string{"::1/128", "fe80::1/64", "127.0.0.1/8"}; !ok || !slices.Equal(prefixes(lo), want) {
		t.Errorf("lo0 = %v, %v; want %v", prefixes(lo), ok, want)
	}
	for n := VLANFirst; n <= VLANLast; n++ {
		a, ok := h.InterfaceAddrs(VLANName(n))
		if want := []string{"2001:db8::cb00:7105/126", "203.0.113.5/30"}; !ok || !slices.Equal(prefixes(a), want) {
			t.Errorf("%s = %v, %v; want %v", VLANName(n), prefixes(a), ok, want)
		}
	}
	for _, name := range []string{"vlan1056", "vlan1065", "em0", "lo1000000", "tun1000000"} {
		if a, ok := h.InterfaceAddrs(name); ok {
			t.Errorf("%s exists with %v; want unknown", name, a)
		}
	}
	if a, ok := h.InterfaceAddrs("vlan"); !ok || len(a) != 2*(VLANLast-VLANFirst+1) {
		t.Errorf("group vlan = %d addrs, %v", len(a), ok)
	}
	if a, ok := h.InterfaceAddrs(netdb.SelfName); !ok || len(a) != 3+2*(VLANLast-VLANFirst+1) {
		t.Errorf("self = %d addrs, %v", len(a), ok)
	}
	addrs, err := h.LookupHost("localhost")
	if want := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}; err != nil || !slices.Equal(addrs, want) {
		t.Errorf("localhost = %v, %v; want %v", addrs, err, want)
	}
	if _, err := h.LookupHost("no-such-host.invalid"); err == nil {
		t.Error("no-such-host.invalid resolved")
	}
	if id, ok := h.UserID("root"); !ok || id != 0 {
		t.Errorf("user root = %d, %v", id, ok)
	}
	if id, ok := h.UserID("www"); !ok || id != 80 {
		t.Errorf("user www = %d, %v", id, ok)
	}
	if id, ok := h.GroupID("wheel"); !ok || id != 0 {
		t.Errorf("group wheel = %d, %v", id, ok)
	}
	if _, ok := h.UserID("nosuchuser"); ok {
		t.Error("nosuchuser resolved")
	}
	// The fixture hands out copies: changing one answer must not change the next.
	lo[0].Prefix = netip.MustParsePrefix("192.0.2.1/32")
	if again, _ := h.InterfaceAddrs("lo0"); again[0].Prefix.String() != "::1/128" {
		t.Error("InterfaceAddrs returned shared storage")
	}
}
