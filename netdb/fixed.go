package netdb

import (
	"fmt"
	"net/netip"
)

// Interface is one network interface as pfctl sees it: its name, the
// interface groups it belongs to, and its addresses in the host's order.
type Interface struct {
	Name   string
	Groups []string // interface groups (see the package doc); may be empty
	Addrs  []IfAddr
}

// SelfName is the pf.conf keyword that stands for every address of every
// interface of the host. Fixed and System answer InterfaceAddrs(SelfName)
// with those addresses, in interface order.
const SelfName = "self"

// Fixed is a Host that answers from fixed data, for tests and fixtures.
//
// A Fixed must not be modified once it is in use; it is then safe for
// concurrent use. The zero value is a host with nothing on it.
type Fixed struct {
	Interfaces []Interface             // in the host's interface order
	Hosts      map[string][]netip.Addr // host name -> addresses, in answer order
	Users      map[string]uint32
	Groups     map[string]uint32
}

var _ Host = (*Fixed)(nil)

// InterfaceAddrs implements Host. name is an interface name, an interface
// group name (the addresses of all its members, in interface order) or
// SelfName. An interface name wins over a group of the same name. The
// returned slice is a copy.
func (f *Fixed) InterfaceAddrs(name string) ([]IfAddr, bool) {
	return lookupInterfaceAddrs(f.Interfaces, name)
}

// LookupHost implements Host.
func (f *Fixed) LookupHost(name string) ([]netip.Addr, error) {
	if a, ok := f.Hosts[name]; ok && len(a) > 0 {
		return append([]netip.Addr(nil), a...), nil
	}
	return nil, fmt.Errorf("lookup %s: no such host", name)
}

// UserID implements Host.
func (f *Fixed) UserID(name string) (uint32, bool) { id, ok := f.Users[name]; return id, ok }

// GroupID implements Host.
func (f *Fixed) GroupID(name string) (uint32, bool) { id, ok := f.Groups[name]; return id, ok }

// lookupInterfaceAddrs resolves an interface, group or SelfName over ifs.
func lookupInterfaceAddrs(ifs []Interface, name string) ([]IfAddr, bool) {
	for _, ifc := range ifs {
		if ifc.Name == name {
			return withIfname(nil, ifc), true
		}
	}
	var out []IfAddr
	found := false
	for _, ifc := range ifs {
		member := name == SelfName
		for _, g := range ifc.Groups {
			if g == name {
				member = true
			}
		}
		if member {
			found = true
			out = withIfname(out, ifc)
		}
	}
	return out, found
}

// withIfname appends ifc's addresses to out, each naming ifc.
func withIfname(out []IfAddr, ifc Interface) []IfAddr {
	for _, a := range ifc.Addrs {
		if a.Ifname == "" {
			a.Ifname = ifc.Name
		}
		out = append(out, a)
	}
	return out
}
