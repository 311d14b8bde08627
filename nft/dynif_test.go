package nft

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/pfcarp/pfcarp/netdb"
)

func TestDynIfPrefixes(t *testing.T) {
	addrs := []netdb.IfAddr{
		{Prefix: netip.MustParsePrefix("fe80::1/64")},
		{Prefix: netip.MustParsePrefix("2001:db8::1/64")},
		{Prefix: netip.MustParsePrefix("192.0.2.1/24"), Broadcast: netip.MustParseAddr("192.0.2.255")},
		{Prefix: netip.MustParsePrefix("192.0.2.51/24"), Broadcast: netip.MustParseAddr("192.0.2.255")},
		{Prefix: netip.MustParsePrefix("10.9.9.1/32"), Peer: netip.MustParseAddr("10.9.9.2")},
	}
	pp := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	for _, c := range []struct {
		d    DynIf
		v6   bool
		want []netip.Prefix
	}{
		{DynIf{Ifname: "x", Bits: 128}, false, pp("192.0.2.1/32", "192.0.2.51/32", "10.9.9.1/32")},
		{DynIf{Ifname: "x", Flags: DynIfNetwork, Bits: 128}, false, pp("192.0.2.0/24", "10.9.9.1/32")},
		{DynIf{Ifname: "x", Flags: DynIfNoAlias, Bits: 128}, false, pp("192.0.2.1/32")},
		{DynIf{Ifname: "x", Flags: DynIfBroadcast, Bits: 128}, false, pp("192.0.2.255/32")},
		{DynIf{Ifname: "x", Flags: DynIfPeer, Bits: 128}, false, pp("10.9.9.2/32")},
		{DynIf{Ifname: "x", Bits: 16}, false, pp("192.0.0.0/16", "10.9.0.0/16")},
		{DynIf{Ifname: "x", Bits: 128}, true, pp("fe80::1/128", "2001:db8::1/128")},
		{DynIf{Ifname: "x", Flags: DynIfNoAlias, Bits: 128}, true, pp("2001:db8::1/128")},
		{DynIf{Ifname: "x", Flags: DynIfNetwork | DynIfNoAlias, Bits: 128}, true, pp("2001:db8::/64")},
	} {
		if got := DynIfPrefixes(c.d, addrs, c.v6); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s v6=%v: %v, want %v", c.d, c.v6, got, c.want)
		}
	}
}

func TestDynIfSetNameRoundTrip(t *testing.T) {
	for _, d := range []DynIf{{Ifname: "eth0", Bits: 128}, {Ifname: "vlan_10-x.y", Flags: DynIfNetwork | DynIfNoAlias, Bits: 24}} {
		for _, v6 := range []bool{false, true} {
			for _, pool := range []bool{false, true} {
				got, gv6, gpool, ok := parseDynIfSetName(DynIfSetName(d, v6, pool))
				if !ok || got != d || gv6 != v6 || gpool != pool {
					t.Errorf("%s %v %v: parsed %+v %v %v %v", d, v6, pool, got, gv6, gpool, ok)
				}
			}
		}
	}
	for _, bad := range []string{"tbl4_x", "dynif4_1_128_", "dynif5_0_128_e", "dynifx"} {
		if _, _, _, ok := parseDynIfSetName(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}
