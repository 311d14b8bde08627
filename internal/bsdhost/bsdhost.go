// Package bsdhost is a test fixture: the FreeBSD host that pfctl's
// conformance corpus (pfconf/testdata/conformance) was recorded on.
//
// Static answers the netdb.Host questions as that host would, with no system
// access. Namespace builds a Linux network namespace that looks like that
// host, so a test can run a binary inside it and see the same facts through
// netdb.System (Linux only; it needs root, see internal/testenv).
//
// bsdhost owns only the fixture data and the namespace it creates; it never
// changes the caller's own network namespace. It is for tests only.
package bsdhost

import (
	"fmt"
	"net/netip"

	"github.com/pfcarp/pfcarp/netdb"
)

// VLANFirst and VLANLast bound the interfaces vlanNNNN the corpus's
// "Interface translation" tests (pf1057..pf1064) expect.
const (
	VLANFirst = 1057
	VLANLast  = 1064
)

// VLAN addresses: every vlanNNNN carries these two. They are listed IPv6
// first, the order netdb.System reports on Linux (see the netdb package doc);
// no corpus test depends on the order across families for a vlan.
var (
	vlanV4    = netip.MustParsePrefix("203.0.113.5/30")
	vlanV4Brd = netip.MustParseAddr("203.0.113.7")
	vlanV6    = netip.MustParsePrefix("2001:db8::203.0.113.5/126")
)

// Loopback addresses of lo0 in FreeBSD's order.
var (
	lo0V6     = netip.MustParsePrefix("::1/128")
	lo0LL     = netip.MustParsePrefix("fe80::1/64")
	lo0V4     = netip.MustParsePrefix("127.0.0.1/8")
	localhost = []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}
)

// VLANName returns the name of corpus interface n (e.g. "vlan1058").
func VLANName(n int) string { return fmt.Sprintf("vlan%d", n) }

// Interfaces returns the interfaces of the corpus host in interface order:
// lo0 (::1/128, fe80::1/64, 127.0.0.1/8, in that order; fe80::1 is scoped to
// lo0, its IfAddr.Ifname as the lookups fill it in) and vlan1057..vlan1064
// (2001:db8::203.0.113.5/126, then 203.0.113.5/30 broadcast 203.0.113.7).
// Groups are FreeBSD's: the driver name ("lo", "vlan") and "all".
func Interfaces() []netdb.Interface {
	ifs := []netdb.Interface{{
		Name:   "lo0",
		Groups: []string{"all", "lo"},
		Addrs:  []netdb.IfAddr{{Prefix: lo0V6}, {Prefix: lo0LL}, {Prefix: lo0V4}},
	}}
	for n := VLANFirst; n <= VLANLast; n++ {
		ifs = append(ifs, netdb.Interface{
			Name:   VLANName(n),
			Groups: []string{"all", "vlan"},
			Addrs:  []netdb.IfAddr{{Prefix: vlanV6}, {Prefix: vlanV4, Broadcast: vlanV4Brd}},
		})
	}
	return ifs
}

// Static returns a netdb.Host answering as the corpus's FreeBSD host:
// Interfaces, localhost resolving to 127.0.0.1 then ::1, and the users and
// groups of FreeBSD's stock /etc/master.passwd and /etc/group (root=0,
// wheel=0, ...). Each call returns a fresh value.
func Static() netdb.Host {
	return &netdb.Fixed{
		Interfaces: Interfaces(),
		Hosts: map[string][]netip.Addr{
			"localhost": append([]netip.Addr(nil), localhost...),
		},
		Users:  freebsdUsers(),
		Groups: freebsdGroups(),
	}
}

// freebsdUsers is FreeBSD's stock /etc/master.passwd: name -> uid.
func freebsdUsers() map[string]uint32 {
	return map[string]uint32{
		"root": 0, "toor": 0, "daemon": 1, "operator": 2, "bin": 3, "tty": 4,
		"kmem": 5, "games": 7, "news": 8, "man": 9, "sshd": 22, "smmsp": 25,
		"mailnull": 26, "bind": 53, "unbound": 59, "proxy": 62, "_pflogd": 64,
		"_dhcp": 65, "uucp": 66, "pop": 68, "auditdistd": 78, "www": 80,
		"ntpd": 123, "_ypldap": 160, "hast": 845, "tests": 977, "nobody": 65534,
	}
}

// freebsdGroups is FreeBSD's stock /etc/group: name -> gid.
func freebsdGroups() map[string]uint32 {
	return map[string]uint32{
		"wheel": 0, "daemon": 1, "kmem": 2, "sys": 3, "tty": 4, "operator": 5,
		"mail": 6, "bin": 7, "news": 8, "man": 9, "games": 13, "ftp": 14,
		"staff": 20, "sshd": 22, "smmsp": 25, "mailnull": 26, "guest": 31,
		"video": 44, "realtime": 47, "bind": 53, "unbound": 59, "proxy": 62,
		"authpf": 63, "_pflogd": 64, "_dhcp": 65, "uucp": 66, "dialer": 68,
		"network": 69, "audit": 77, "www": 80, "ntpd": 123, "_ypldap": 160,
		"hast": 845, "tests": 977, "nogroup": 65533, "nobody": 65534,
	}
}
