package netdb

import (
	"net/netip"
	"slices"
	"testing"
)

func TestIfaceGroups(t *testing.T) {
	for name, want := range map[string][]string{
		"vlan1058": {"all", "vlan"},
		"lo0":      {"all", "lo"},
		"eth0":     {"all", "eth"},
		"lo":       {"all"},
		"1234":     {"all"},
		"enp0s3":   {"all", "enp0s"},
	} {
		if got := ifaceGroups(name); !slices.Equal(got, want) {
			t.Errorf("ifaceGroups(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestOrderAddrs(t *testing.T) {
	in := []netip.Addr{
		netip.MustParseAddr("::1"), netip.MustParseAddr("::ffff:127.0.0.1"),
		netip.MustParseAddr("fe80::1%lo"), netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.0.2.1"),
	}
	got := orderAddrs(in)
	want := []netip.Addr{
		netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.0.2.1"),
		netip.MustParseAddr("::1"), netip.MustParseAddr("fe80::1"),
	}
	if !slices.Equal(got, want) {
		t.Errorf("orderAddrs = %v, want %v", got, want)
	}
}

func TestSystemLocalhost(t *testing.T) {
	h := System()
	for _, name := range []string{"localhost", "LOCALHOST.", "foo.localhost"} {
		addrs, err := h.LookupHost(name)
		if err != nil {
			t.Fatalf("LookupHost(%q): %v", name, err)
		}
		if len(addrs) < 2 || addrs[0] != netip.MustParseAddr("127.0.0.1") || !slices.Contains(addrs, netip.IPv6Loopback()) {
			t.Errorf("LookupHost(%q) = %v; want 127.0.0.1 first and ::1", name, addrs)
		}
	}
	if addrs, err := h.LookupHost("192.0.2.7"); err != nil || !slices.Equal(addrs, []netip.Addr{netip.MustParseAddr("192.0.2.7")}) {
		t.Errorf("LookupHost(literal) = %v, %v", addrs, err)
	}
	if _, err := h.LookupHost(""); err == nil {
		t.Error("empty host name resolved")
	}
}

func TestSystemUsers(t *testing.T) {
	h := System()
	if id, ok := h.UserID("root"); !ok || id != 0 {
		t.Errorf("UserID(root) = %d, %v", id, ok)
	}
	if id, ok := h.GroupID("root"); !ok || id != 0 {
		t.Errorf("GroupID(root) = %d, %v", id, ok)
	}
	if id, ok := h.UserID("no-such-user-pfcarp"); ok {
		t.Errorf("UserID(no-such-user-pfcarp) = %d", id)
	}
	if id, ok := h.GroupID("no-such-group-pfcarp"); ok {
		t.Errorf("GroupID(no-such-group-pfcarp) = %d", id)
	}
}

// TestSystemLoopback reads this machine's own namespace: every Linux
// namespace has a loopback with 127.0.0.1/8 (renamed or not), which must
// show up through both the interface name and "self".
func TestSystemLoopback(t *testing.T) {
	ifs, err := ReadInterfaces()
	if err != nil {
		t.Fatalf("ReadInterfaces: %v", err)
	}
	lo := netip.MustParsePrefix("127.0.0.1/8")
	var loName string
	for _, ifc := range ifs {
		for _, a := range ifc.Addrs {
			if a.Ifname != ifc.Name {
				t.Errorf("%s: address %s names interface %q", ifc.Name, a.Prefix, a.Ifname)
			}
			if a.Prefix == lo {
				loName = ifc.Name
			}
		}
	}
	if loName == "" {
		t.Skipf("no interface with %s here: %+v", lo, ifs)
	}
	h := System()
	addrs, ok := h.InterfaceAddrs(loName)
	if !ok || !slices.ContainsFunc(addrs, func(a IfAddr) bool { return a.Prefix == lo }) {
		t.Errorf("InterfaceAddrs(%q) = %v, %v", loName, addrs, ok)
	}
	self, ok := h.InterfaceAddrs(SelfName)
	if !ok || !slices.ContainsFunc(self, func(a IfAddr) bool { return a.Prefix == lo && a.Ifname == loName }) {
		t.Errorf("InterfaceAddrs(self) = %v, %v", self, ok)
	}
	if _, ok := h.InterfaceAddrs("no-such-if0"); ok {
		t.Error("no-such-if0 exists")
	}
}
