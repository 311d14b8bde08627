package netdb

import (
	"net/netip"
	"slices"
	"testing"
)

func TestOrderIfAddrs(t *testing.T) {
	a := func(s string, scope int) netlinkAddr {
		return netlinkAddr{IfAddr{Prefix: netip.MustParsePrefix(s)}, scope}
	}
	// As Linux dumps lo0 with ::1, fe80::1, fe80::2, 2001:db8::1, 2001:db8::2
	// added in that order: IPv6 by descending scope, newest first.
	v6 := []netlinkAddr{
		a("2001:db8::2/64", 0), a("2001:db8::1/64", 0),
		a("fe80::2/64", 253), a("fe80::1/64", 253), a("::1/128", 254),
	}
	v4 := []netlinkAddr{a("127.0.0.1/8", 254), a("127.0.0.2/8", 254)}
	var got []string
	for _, x := range orderIfAddrs(v4, v6) {
		got = append(got, x.Prefix.String())
	}
	want := []string{"::1/128", "fe80::1/64", "fe80::2/64", "2001:db8::1/64", "2001:db8::2/64", "127.0.0.1/8", "127.0.0.2/8"}
	if !slices.Equal(got, want) {
		t.Errorf("order = %v\nwant    %v", got, want)
	}
	if v6[0].Prefix.String() != "2001:db8::2/64" {
		t.Error("orderIfAddrs modified its argument")
	}
}
