// Package netdb is pfcarp's own copy of the name databases pfctl consults:
// services (port names per protocol), protocols, ICMP and ICMPv6 type and code
// names, and the host facts pfctl reads from the system it runs on
// (interfaces and their addresses, host names, users and groups).
//
// The services and protocols tables are shipped with pfcarp (FreeBSD's
// files are the reference; services also resolves the names OpenBSD's
// file adds, see data/README.md), so pfctl-style output never depends on
// the machine's /etc/services or /etc/protocols. Host facts come through the
// Host interface: System reads the running host, and tests may use a fixture.
//
// # Host facts on Linux
//
// System reads interfaces over netlink. So that a host set up like FreeBSD
// expands a ruleset as pfctl does there, the order is fixed as follows:
//
//   - Interfaces are in ifindex order (the order they were created).
//   - An interface's IPv6 addresses come before its IPv4 addresses.
//     FreeBSD lists lo0 as ::1, fe80::1, 127.0.0.1 and pfctl keeps that
//     order; Linux dumps IPv4 first.
//   - IPv6 addresses go host scope (::1) first, then link-local, then wider
//     scopes; within a scope, in the order they were added. (Linux dumps
//     IPv6 by descending scope, newest first; System reverses that and then
//     sorts stably by scope.)
//   - IPv4 addresses keep the kernel's order: primaries in the order they
//     were added, then secondaries.
//
// Addresses carry no zone: fe80::1 on lo0 is reported as fe80::1, as pfctl
// prints it; the interface an address is on (the scope of a link-local
// address) is its IfAddr.Ifname, also in the answer for a group. Tentative, deprecated and down-interface addresses are all
// listed, as getifaddrs(3) lists them on FreeBSD.
//
// Interface groups: Linux has no pf interface groups (its numeric link
// "group" is a different thing and is ignored). Every interface belongs to
// group "all" and, like FreeBSD's driver groups, to the group named by its
// name without the trailing unit number: vlan1058 is in "vlan", lo0 in "lo",
// eth0 in "eth", carp0 in "carp". An interface name wins over a group of the
// same name. The pf keyword "self" (SelfName) stands for every address of
// every interface, in interface order.
//
// netdb does no parsing of pf.conf and never changes anything on the host.
package netdb

import "net/netip"

// PortByName returns the port number of service name for proto ("tcp" or
// "udp"), as getservbyname(3) would with FreeBSD's services file.
func PortByName(name, proto string) (uint16, bool) { return portByName(name, proto) }

// ServiceByPort returns the service name of port for proto ("tcp" or "udp"),
// as getservbyport(3) would with FreeBSD's services file.
func ServiceByPort(port uint16, proto string) (string, bool) { return serviceByPort(port, proto) }

// ProtoByName returns the IP protocol number of name (FreeBSD's protocols file).
func ProtoByName(name string) (uint8, bool) { return protoByName(name) }

// ProtoByNumber returns the name pfctl prints for IP protocol n.
func ProtoByNumber(n uint8) (string, bool) { return protoByNumber(n) }

// ICMPTypeByName returns the ICMP (v6=false) or ICMPv6 (v6=true) type named
// name in pf.conf (for example "echoreq").
func ICMPTypeByName(name string, v6 bool) (uint8, bool) { return icmpTypeByName(name, v6) }

// ICMPTypeName returns the name pfctl prints for ICMP or ICMPv6 type t.
func ICMPTypeName(t uint8, v6 bool) (string, bool) { return icmpTypeName(t, v6) }

// ICMPCodeByName returns the type and code of ICMP or ICMPv6 code name (for
// example "port-unr" is type 3 code 3).
func ICMPCodeByName(name string, v6 bool) (typ, code uint8, ok bool) {
	return icmpCodeByName(name, v6)
}

// ICMPCodeName returns the name pfctl prints for code of ICMP or ICMPv6 type typ.
func ICMPCodeName(typ, code uint8, v6 bool) (string, bool) { return icmpCodeName(typ, code, v6) }

// IfAddr is one address of an interface.
type IfAddr struct {
	Prefix    netip.Prefix // address and its netmask; always valid
	Broadcast netip.Addr   // broadcast address; valid iff the interface has one
	Peer      netip.Addr   // point-to-point peer address; valid iff it has one
	// Ifname is the interface the address is on. It is the scope of an
	// IPv6 link-local address (pfctl's sin6_scope_id), and it tells the
	// members apart in the answer for a group or SelfName. Fixed and
	// System fill it in; a Fixed's own data may leave it empty.
	Ifname string
}

// Host answers the questions about the running system that pfctl asks while
// expanding a ruleset. Implementations must be safe for concurrent use.
type Host interface {
	// InterfaceAddrs returns the addresses of the interface or interface
	// group name in the host's order, and whether such an interface exists.
	InterfaceAddrs(name string) ([]IfAddr, bool)
	// LookupHost resolves a host name to addresses (e.g. "localhost").
	LookupHost(name string) ([]netip.Addr, error)
	// UserID and GroupID resolve user and group names to numeric ids.
	UserID(name string) (uint32, bool)
	GroupID(name string) (uint32, bool)
}
