package pfconf

import (
	"net/netip"
	"testing"

	"github.com/pfcarp/pfcarp/netdb"
)

// linuxLikeHost is a host as netdb.System reads a Linux firewall: every
// interface but the loopback has an IPv6 link-local address, listed first,
// and the link-locals of two interfaces may be equal (eth1 and lan share
// fe80::2, as two links may). lan's name has no unit number. ppp0 is a
// point-to-point link.
func linuxLikeHost() netdb.Host {
	pfx := netip.MustParsePrefix
	addr := netip.MustParseAddr
	return &netdb.Fixed{Interfaces: []netdb.Interface{
		{Name: "lo", Groups: []string{"all"}, Addrs: []netdb.IfAddr{{Prefix: pfx("::1/128")}, {Prefix: pfx("127.0.0.1/8")}}},
		{Name: "eth0", Groups: []string{"all", "eth"}, Addrs: []netdb.IfAddr{
			{Prefix: pfx("fe80::1/64")}, {Prefix: pfx("2001:db8:1::1/64")},
			{Prefix: pfx("192.0.2.1/24"), Broadcast: addr("192.0.2.255")}, {Prefix: pfx("192.0.2.51/24"), Broadcast: addr("192.0.2.255")},
		}},
		{Name: "eth1", Groups: []string{"all", "eth"}, Addrs: []netdb.IfAddr{
			{Prefix: pfx("fe80::2/64")}, {Prefix: pfx("198.51.100.1/24"), Broadcast: addr("198.51.100.255")},
		}},
		{Name: "lan", Groups: []string{"all"}, Addrs: []netdb.IfAddr{
			{Prefix: pfx("fe80::2/64")}, {Prefix: pfx("203.0.113.1/24"), Broadcast: addr("203.0.113.255")},
		}},
		{Name: "ppp0", Groups: []string{"all", "ppp"}, Addrs: []netdb.IfAddr{
			{Prefix: pfx("fe80::9/64")}, {Prefix: pfx("10.9.0.1/32"), Peer: addr("10.9.0.2")},
		}},
	}}
}

// TestExpandScoped checks the interface-address expansions on
// linuxLikeHost against what pfctl's ifa_lookup and expand_rule make of
// them (pfctl_parser.c, parse.y): :network, :broadcast and everything built
// on them (antispoof) leave the link-locals out; a link-local address keeps
// its interface, and a rule made from it applies there only.
func TestExpandScoped(t *testing.T) {
	const keep = " flags S/SA keep state"
	for _, tc := range []struct {
		name, src, want string
	}{{
		// Issue 9: this failed with "no translation address with matching
		// address family found" when the interface name had no unit
		// number (lan): its link-local was taken as unscoped and fixed
		// the rule's family to inet6.
		name: "nat from IF:network",
		src: "ext_if = \"eth0\"\nint_if = \"eth1\"\nnat on $ext_if from $int_if:network to any -> 198.51.100.51\n" +
			"nat on eth0 from lan:network to any -> 198.51.100.51\n",
		want: "ext_if = \"eth0\"\nint_if = \"eth1\"\n" +
			"nat on eth0 inet from 198.51.100.0/24 to any -> 198.51.100.51\n" +
			"nat on eth0 inet from 203.0.113.0/24 to any -> 198.51.100.51\n",
	}, {
		// Issue 9: fe80::/64 is not eth0's own network; blocking it on
		// every other interface broke neighbour discovery there. The
		// link-local address itself is blocked on eth0 only.
		name: "antispoof",
		src:  "antispoof quick for eth0\n",
		want: "block drop in quick on ! eth0 inet6 from 2001:db8:1::/64 to any\n" +
			"block drop in quick on ! eth0 inet from 192.0.2.0/24 to any\n" +
			"block drop in quick on ! eth0 inet from 192.0.2.0/24 to any\n" +
			"block drop in quick on eth0 inet6 from fe80::1 to any\n" +
			"block drop in quick inet6 from 2001:db8:1::1 to any\n" +
			"block drop in quick inet from 192.0.2.1 to any\n" +
			"block drop in quick inet from 192.0.2.51 to any\n",
	}, {
		name: "antispoof of a loopback and of a name without unit number",
		src:  "antispoof for { lo lan }\n",
		want: "block drop in on ! lo inet6 from ::1 to any\n" +
			"block drop in on ! lo inet from 127.0.0.0/8 to any\n" +
			"block drop in on ! lan inet from 203.0.113.0/24 to any\n" +
			"block drop in on lan inet6 from fe80::2 to any\n" +
			"block drop in inet from 203.0.113.1 to any\n",
	}, {
		name: "antispoof inet",
		src:  "antispoof for eth1 inet\n",
		want: "block drop in on ! eth1 inet from 198.51.100.0/24 to any\n" +
			"block drop in inet from 198.51.100.1 to any\n",
	}, {
		// The interface has no IPv6 network but its link-local: pfctl
		// reports the first rule (it expands to nothing of the family).
		name: "antispoof inet6 without an IPv6 network",
		src:  "antispoof for eth1 inet6\n",
		want: "x:1: rule expands to no valid combination\n",
	}, {
		name: ":network, :broadcast, :peer",
		src:  "pass in from eth0:network\npass in from self:network\npass in from eth:broadcast\npass in from ppp0:peer\n",
		want: "pass in inet6 from 2001:db8:1::/64 to any" + keep + "\n" +
			"pass in inet from 192.0.2.0/24 to any" + keep + "\n" +
			"pass in inet from 192.0.2.0/24 to any" + keep + "\n" +
			"pass in inet6 from ::1 to any" + keep + "\n" +
			"pass in inet from 127.0.0.0/8 to any" + keep + "\n" +
			"pass in inet6 from 2001:db8:1::/64 to any" + keep + "\n" +
			"pass in inet from 192.0.2.0/24 to any" + keep + "\n" +
			"pass in inet from 192.0.2.0/24 to any" + keep + "\n" +
			"pass in inet from 198.51.100.0/24 to any" + keep + "\n" +
			"pass in inet from 203.0.113.0/24 to any" + keep + "\n" +
			"pass in inet from 10.9.0.1 to any" + keep + "\n" +
			"pass in inet from 192.0.2.255 to any" + keep + "\n" +
			"pass in inet from 192.0.2.255 to any" + keep + "\n" +
			"pass in inet from 198.51.100.255 to any" + keep + "\n" +
			"pass in inet from 10.9.0.2 to any" + keep + "\n",
	}, {
		// :0 counts per interface, for a group's members and self's too,
		// and never takes a link-local (FreeBSD's ifa_lookup).
		name: ":0",
		src:  "pass in from eth0:0\npass in from eth:0\npass in from self:0\n",
		want: "pass in inet6 from 2001:db8:1::1 to any" + keep + "\n" +
			"pass in inet from 192.0.2.1 to any" + keep + "\n" +
			"pass in inet6 from 2001:db8:1::1 to any" + keep + "\n" +
			"pass in inet from 192.0.2.1 to any" + keep + "\n" +
			"pass in inet from 198.51.100.1 to any" + keep + "\n" +
			"pass in inet6 from ::1 to any" + keep + "\n" +
			"pass in inet from 127.0.0.1 to any" + keep + "\n" +
			"pass in inet6 from 2001:db8:1::1 to any" + keep + "\n" +
			"pass in inet from 192.0.2.1 to any" + keep + "\n" +
			"pass in inet from 198.51.100.1 to any" + keep + "\n" +
			"pass in inet from 203.0.113.1 to any" + keep + "\n" +
			"pass in inet from 10.9.0.1 to any" + keep + "\n",
	}, {
		// Each link-local keeps its own interface, for an interface, a
		// group and self alike (the names need no unit number).
		name: "interface addresses keep their scope",
		src:  "pass in from lan\npass in from eth\npass in from self\n",
		want: "pass in on lan inet6 from fe80::2 to any" + keep + "\n" +
			"pass in inet from 203.0.113.1 to any" + keep + "\n" +
			"pass in on eth0 inet6 from fe80::1 to any" + keep + "\n" +
			"pass in inet6 from 2001:db8:1::1 to any" + keep + "\n" +
			"pass in inet from 192.0.2.1 to any" + keep + "\n" +
			"pass in inet from 192.0.2.51 to any" + keep + "\n" +
			"pass in on eth1 inet6 from fe80::2 to any" + keep + "\n" +
			"pass in inet from 198.51.100.1 to any" + keep + "\n" +
			"pass in inet6 from ::1 to any" + keep + "\n" +
			"pass in inet from 127.0.0.1 to any" + keep + "\n" +
			"pass in on eth0 inet6 from fe80::1 to any" + keep + "\n" +
			"pass in inet6 from 2001:db8:1::1 to any" + keep + "\n" +
			"pass in inet from 192.0.2.1 to any" + keep + "\n" +
			"pass in inet from 192.0.2.51 to any" + keep + "\n" +
			"pass in on eth1 inet6 from fe80::2 to any" + keep + "\n" +
			"pass in inet from 198.51.100.1 to any" + keep + "\n" +
			"pass in on lan inet6 from fe80::2 to any" + keep + "\n" +
			"pass in inet from 203.0.113.1 to any" + keep + "\n" +
			"pass in on ppp0 inet6 from fe80::9 to any" + keep + "\n" +
			"pass in inet from 10.9.0.1 to any" + keep + "\n",
	}, {
		// A written scope names the interface; on another existing
		// interface the combination is dropped; a group or an interface
		// that does not exist is not checked and the scope wins
		// (expand_rule: if_nametoindex, if_indextoname).
		name: "written scope",
		src: "pass in from fe80::1%eth1 to any\npass in on eth from fe80::1%eth1\npass in on eth7 from fe80::1%eth1\n" +
			"pass out on eth1 from eth0\npass in on eth1 from any to eth\n",
		want: "pass in on eth1 inet6 from fe80::1 to any" + keep + "\n" +
			"pass in on eth1 inet6 from fe80::1 to any" + keep + "\n" +
			"pass in on eth1 inet6 from fe80::1 to any" + keep + "\n" +
			"pass out on eth1 inet6 from 2001:db8:1::1 to any" + keep + "\n" +
			"pass out on eth1 inet from 192.0.2.1 to any" + keep + "\n" +
			"pass out on eth1 inet from 192.0.2.51 to any" + keep + "\n" +
			"pass in on eth1 inet6 from any to 2001:db8:1::1" + keep + "\n" +
			"pass in on eth1 inet from any to 192.0.2.1" + keep + "\n" +
			"pass in on eth1 inet from any to 192.0.2.51" + keep + "\n" +
			"pass in on eth1 inet6 from any to fe80::2" + keep + "\n" +
			"pass in on eth1 inet from any to 198.51.100.1" + keep + "\n",
	}, {
		name: "scope on another interface",
		src:  "pass in on eth0 from fe80::1%eth1\n",
		want: "x:1: rule expands to no valid combination\n",
	}, {
		// Tables hold no scope: an interface's link-local goes in as an
		// address (pf0048 has lo0's fe80::1), :network leaves it out.
		name: "tables",
		src:  "table <t> { eth0 eth0:network lan:0 }\n",
		want: "table <t> { fe80::1 2001:db8:1::1 192.0.2.1 192.0.2.51 2001:db8:1::/64 192.0.2.0/24 192.0.2.0/24 203.0.113.1 }\n",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			out, serr, _ := runPfctl("x", []byte(tc.src), linuxLikeHost(), nil)
			if got := out + serr; got != tc.want {
				t.Errorf("%s\n%s", tc.src, diff(tc.want, got))
			}
		})
	}
}

// TestExpandScopeFromHost checks that the scope of a link-local comes
// from the host's answer (IfAddr.Ifname), not from the name asked: a Host
// whose group answer names the members.
func TestExpandScopeFromHost(t *testing.T) {
	pfx := netip.MustParsePrefix
	host := &netdb.Fixed{Interfaces: []netdb.Interface{
		{Name: "inside", Groups: []string{"all", "lan"}, Addrs: []netdb.IfAddr{{Prefix: pfx("fe80::7/64")}, {Prefix: pfx("10.1.0.1/16")}}},
		{Name: "dmz", Groups: []string{"all", "lan"}, Addrs: []netdb.IfAddr{{Prefix: pfx("fe80::8/64")}, {Prefix: pfx("10.2.0.1/16")}}},
	}}
	out, serr, _ := runPfctl("x", []byte("block in from lan\nblock in from lan:network\n"), host, nil)
	want := "block drop in on inside inet6 from fe80::7 to any\n" +
		"block drop in inet from 10.1.0.1 to any\n" +
		"block drop in on dmz inet6 from fe80::8 to any\n" +
		"block drop in inet from 10.2.0.1 to any\n" +
		"block drop in inet from 10.1.0.0/16 to any\n" +
		"block drop in inet from 10.2.0.0/16 to any\n"
	if got := out + serr; got != want {
		t.Error(diff(want, got))
	}
}
