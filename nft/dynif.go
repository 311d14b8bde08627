package nft

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/pfcarp/pfcarp/netdb"
)

// Interface address modifiers of DynIf.Flags (the values of pfconf's
// IfNetwork, IfBroadcast, IfPeer and IfNoAlias, pf's PFI_AFLAG_*).
const (
	DynIfNetwork   uint8 = 0x01
	DynIfBroadcast uint8 = 0x02
	DynIfPeer      uint8 = 0x04
	DynIfNoAlias   uint8 = 0x08
)

// String is the address as pf.conf writes it: "(eth0:network)/24".
func (d DynIf) String() string {
	s := "(" + d.Ifname
	for _, m := range []struct {
		f uint8
		s string
	}{{DynIfNetwork, ":network"}, {DynIfBroadcast, ":broadcast"}, {DynIfPeer, ":peer"}, {DynIfNoAlias, ":0"}} {
		if d.Flags&m.f != 0 {
			s += m.s
		}
	}
	s += ")"
	if d.Bits >= 0 && d.Bits < 128 {
		s += "/" + strconv.Itoa(d.Bits)
	}
	return s
}

// DynIfSetName is the set of d's addresses of one family (a pool map when
// pool is true). The interface name comes last: it may hold any character
// a set name may.
func DynIfSetName(d DynIf, v6, pool bool) string {
	kind := "dynif"
	if pool {
		kind = "dynpool"
	}
	f := "4"
	if v6 {
		f = "6"
	}
	bits := d.Bits
	if bits < 0 || bits > 128 {
		bits = 128
	}
	return kind + f + "_" + strconv.Itoa(int(d.Flags)) + "_" + strconv.Itoa(bits) + "_" + d.Ifname
}

// DynIfPrefixes selects from addrs (an interface's addresses, as
// netdb.Host lists them) the prefixes of family v6 that d stands for, as
// pfctl's ifa_lookup does: the addresses, or their networks (:network),
// broadcast (:broadcast) or peer (:peer) addresses; with :0 only the
// first address of the family (IPv6: the first that is not link-local);
// each masked to d.Bits.
func DynIfPrefixes(d DynIf, addrs []netdb.IfAddr, v6 bool) []netip.Prefix {
	var out []netip.Prefix
	seen := map[netip.Prefix]bool{}
	got := false
	for _, ia := range addrs {
		a := ia.Prefix.Addr().WithZone("")
		if a.Is4() == v6 || a.Is4In6() {
			continue
		}
		ll := v6 && a.IsLinkLocalUnicast()
		switch {
		case d.Flags&DynIfBroadcast != 0 && (v6 || !ia.Broadcast.IsValid()):
			continue
		case d.Flags&DynIfPeer != 0 && !ia.Peer.IsValid():
			continue
		case d.Flags&DynIfNoAlias != 0 && (got || ll):
			continue
		}
		got = true
		switch {
		case d.Flags&DynIfBroadcast != 0:
			a = ia.Broadcast
		case d.Flags&DynIfPeer != 0:
			a = ia.Peer.WithZone("")
		}
		bits := a.BitLen()
		if d.Flags&DynIfNetwork != 0 {
			bits = ia.Prefix.Bits()
		}
		if d.Bits >= 0 && d.Bits < bits {
			bits = d.Bits
		}
		p := netip.PrefixFrom(a, bits).Masked()
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// parseDynIfSetName is the inverse of DynIfSetName.
func parseDynIfSetName(name string) (d DynIf, v6, pool, ok bool) {
	rest, found := strings.CutPrefix(name, "dynif")
	if !found {
		if rest, found = strings.CutPrefix(name, "dynpool"); !found {
			return d, false, false, false
		}
		pool = true
	}
	f := strings.SplitN(rest, "_", 4)
	if len(f) != 4 || (f[0] != "4" && f[0] != "6") {
		return d, false, false, false
	}
	flags, err1 := strconv.Atoi(f[1])
	bits, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil || flags < 0 || flags > 255 || f[3] == "" {
		return d, false, false, false
	}
	return DynIf{Ifname: f[3], Flags: uint8(flags), Bits: bits}, f[0] == "6", pool, true
}
