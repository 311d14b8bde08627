package netdb

import (
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
)

// ReadInterfaces reads the interfaces of the calling thread's network
// namespace and their addresses over netlink, in the order the package doc
// describes.
func ReadInterfaces() ([]Interface, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("netdb: listing interfaces: %w", err)
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("netdb: listing addresses: %w", err)
	}
	type linkAddrs struct{ v4, v6 []netlinkAddr }
	byIndex := map[int]*linkAddrs{}
	for _, a := range addrs {
		la := byIndex[a.LinkIndex]
		if la == nil {
			la = &linkAddrs{}
			byIndex[a.LinkIndex] = la
		}
		ifa, ok := convertAddr(a)
		if !ok {
			continue
		}
		if ifa.Prefix.Addr().Is4() {
			la.v4 = append(la.v4, netlinkAddr{ifa, a.Scope})
		} else {
			la.v6 = append(la.v6, netlinkAddr{ifa, a.Scope})
		}
	}
	slices.SortStableFunc(links, func(a, b netlink.Link) int { return a.Attrs().Index - b.Attrs().Index })
	out := make([]Interface, 0, len(links))
	for _, l := range links {
		name := l.Attrs().Name
		ifc := Interface{Name: name, Groups: ifaceGroups(name)}
		if la := byIndex[l.Attrs().Index]; la != nil {
			ifc.Addrs = orderIfAddrs(la.v4, la.v6)
			for i := range ifc.Addrs {
				ifc.Addrs[i].Ifname = name
			}
		}
		out = append(out, ifc)
	}
	return out, nil
}

// netlinkAddr is an address with its kernel scope (RT_SCOPE_*).
type netlinkAddr struct {
	IfAddr
	scope int
}

// v6Rank orders IPv6 addresses the way FreeBSD lists lo0 (::1, then fe80::1):
// host scope first, then link-local, then wider scopes.
func v6Rank(a netlinkAddr) int {
	switch {
	case a.Prefix.Addr().IsLoopback() || a.scope == 254: // RT_SCOPE_HOST
		return 0
	case a.Prefix.Addr().IsLinkLocalUnicast() || a.scope == 253: // RT_SCOPE_LINK
		return 1
	}
	return 2
}

// orderIfAddrs implements the documented order: IPv6 before IPv4; IPv6 by
// scope (host, link, wider), within a scope in the reverse of the kernel's
// dump order (Linux keeps the newest first, so this is the order they were
// added); IPv4 in the kernel's order (primaries as added, then secondaries).
func orderIfAddrs(v4, v6 []netlinkAddr) []IfAddr {
	v6 = slices.Clone(v6)
	slices.Reverse(v6)
	slices.SortStableFunc(v6, func(a, b netlinkAddr) int { return v6Rank(a) - v6Rank(b) })
	out := make([]IfAddr, 0, len(v4)+len(v6))
	for _, a := range v6 {
		out = append(out, a.IfAddr)
	}
	for _, a := range v4 {
		out = append(out, a.IfAddr)
	}
	return out
}

func convertAddr(a netlink.Addr) (IfAddr, bool) {
	if a.IPNet == nil {
		return IfAddr{}, false
	}
	ip, ok := ipFrom(a.IP)
	if !ok {
		return IfAddr{}, false
	}
	ones, bits := a.Mask.Size()
	if bits != ip.BitLen() {
		return IfAddr{}, false
	}
	ifa := IfAddr{Prefix: netip.PrefixFrom(ip, ones)}
	if b, ok := ipFrom(a.Broadcast); ok && b.Is4() == ip.Is4() {
		ifa.Broadcast = b
	}
	if a.Peer != nil {
		if p, ok := ipFrom(a.Peer.IP); ok && p != ip && p.Is4() == ip.Is4() {
			ifa.Peer = p
		}
	}
	return ifa, true
}

func ipFrom(ip net.IP) (netip.Addr, bool) {
	if len(ip) == 0 {
		return netip.Addr{}, false
	}
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}
