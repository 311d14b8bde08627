package config

import (
	"net/netip"

	"github.com/pfcarp/pfcarp/netdb"
)

// Host returns a netdb.Host that answers pf.conf's interface questions as
// the node itself would: a CARP interface (carp0) resolves to its virtual
// addresses, since Linux has no carpN device to ask; the group "carp" holds
// every CARP interface, as on BSD; `self` includes the virtual addresses; and
// an interface that the config configures but the running host lacks
// resolves to the config's addresses, so a ruleset can be checked on a
// machine other than the firewall. Everything else is answered by base.
func (n *Node) Host(base netdb.Host) netdb.Host { return &nodeHost{n: n, base: base} }

type nodeHost struct {
	n    *Node
	base netdb.Host
}

func (h *nodeHost) InterfaceAddrs(name string) ([]netdb.IfAddr, bool) {
	for _, g := range h.n.CARP {
		if g.Name != "" && g.Name == name {
			return vipAddrs(g), true
		}
	}
	if name == "carp" {
		var out []netdb.IfAddr
		found := false
		for _, g := range h.n.CARP {
			if g.Name != "" {
				found = true
				out = append(out, vipAddrs(g)...)
			}
		}
		if found {
			return out, true
		}
	}
	addrs, ok := h.base.InterfaceAddrs(name)
	if name == netdb.SelfName {
		seen := map[netip.Addr]bool{}
		for _, a := range addrs {
			seen[a.Prefix.Addr()] = true
		}
		for _, g := range h.n.CARP {
			for _, a := range vipAddrs(g) {
				if !seen[a.Prefix.Addr()] {
					seen[a.Prefix.Addr()] = true
					addrs = append(addrs, a)
				}
			}
		}
		return addrs, true
	}
	if ok {
		return h.withoutCARPAddrs(name, addrs), true
	}
	if ifc := h.n.Interface(name); ifc != nil && len(ifc.Addrs) > 0 {
		return ifAddrs(ifc.Addrs, ifc.Name), true
	}
	return nil, false
}

// withoutCARPAddrs drops the virtual addresses of carpN groups from the
// running host's answer for a real interface (or group): on BSD they belong
// to carpN, but Linux keeps a MASTER's VIP on the parent, so without this
// the seed's `nat ... -> $ext_if` loaded on a MASTER would become a
// round-robin pool over eth0's address and the VIP, and `$int_if:network`
// would expand twice. An address the config itself gives the interface
// stays.
func (h *nodeHost) withoutCARPAddrs(name string, addrs []netdb.IfAddr) []netdb.IfAddr {
	own := map[netip.Addr]bool{}
	if ifc := h.n.Interface(name); ifc != nil {
		for _, a := range ifc.Addrs {
			own[a.Prefix.Addr()] = true
		}
	}
	vip := map[netip.Addr]bool{}
	for _, g := range h.n.CARP {
		if g.Name == "" {
			continue // a vhid on its parent (FreeBSD 10 style): the parent's address
		}
		for _, a := range g.VIPs {
			if !own[a.Prefix.Addr()] {
				vip[a.Prefix.Addr()] = true
			}
		}
	}
	out := addrs[:0:0]
	for _, a := range addrs {
		if !vip[a.Prefix.Addr()] {
			out = append(out, a)
		}
	}
	return out
}

func (h *nodeHost) LookupHost(name string) ([]netip.Addr, error) { return h.base.LookupHost(name) }
func (h *nodeHost) UserID(name string) (uint32, bool)            { return h.base.UserID(name) }
func (h *nodeHost) GroupID(name string) (uint32, bool)           { return h.base.GroupID(name) }

// vipAddrs returns g's virtual addresses, on carpN or (a vhid on its
// parent, FreeBSD 10 style) on the parent.
func vipAddrs(g *CARPGroup) []netdb.IfAddr {
	if g.Name == "" {
		return ifAddrs(g.VIPs, g.Dev)
	}
	return ifAddrs(g.VIPs, g.Name)
}

// ifAddrs converts configured addresses of interface ifname, IPv6 before
// IPv4 as netdb orders an interface's addresses, with the IPv4 broadcast
// address FreeBSD's ifconfig sets by default.
func ifAddrs(in []IfAddr, ifname string) []netdb.IfAddr {
	var v6, v4 []netdb.IfAddr
	for _, a := range in {
		ia := netdb.IfAddr{Prefix: a.Prefix, Ifname: ifname}
		if a.Prefix.Addr().Is4() {
			ia.Broadcast = broadcast(a.Prefix)
			v4 = append(v4, ia)
		} else {
			v6 = append(v6, ia)
		}
	}
	return append(v6, v4...)
}

func broadcast(p netip.Prefix) netip.Addr {
	if p.Bits() >= 31 {
		return netip.Addr{}
	}
	b := p.Addr().As4()
	for i := p.Bits(); i < 32; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom4(b)
}
