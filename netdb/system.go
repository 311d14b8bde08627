package netdb

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// System returns the Host of the running machine (more exactly: of the
// network namespace of the thread that first asks it about interfaces).
//
// Interfaces and addresses are read over netlink once, on first use, and
// kept: like pfctl, which reads them once per run, a ruleset is expanded
// against one consistent snapshot. Call System again to see later changes, or
// ReadInterfaces to get the error when the kernel cannot be asked; System
// then answers that no interface exists. See the package doc for the order of
// interfaces and addresses and for what group names mean.
//
// Host names are resolved by the Go resolver (the /etc/hosts file first, then
// DNS, following /etc/nsswitch.conf), with IPv4 answers before IPv6 ones;
// "localhost" and names under ".localhost" always include 127.0.0.1 and ::1.
// Users and groups are looked up with os/user, which reads /etc/passwd and
// /etc/group when built without cgo, as pfcarp is.
func System() Host { return &systemHost{timeout: 10 * time.Second} }

type systemHost struct {
	timeout time.Duration

	once sync.Once
	ifs  []Interface // guarded by once: written once, read-only after
}

func (h *systemHost) interfaces() []Interface {
	h.once.Do(func() {
		ifs, err := ReadInterfaces()
		if err == nil {
			h.ifs = ifs
		}
	})
	return h.ifs
}

// InterfaceAddrs implements Host.
func (h *systemHost) InterfaceAddrs(name string) ([]IfAddr, bool) {
	return lookupInterfaceAddrs(h.interfaces(), name)
}

var (
	loopback4 = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	loopback6 = netip.IPv6Loopback()
)

// LookupHost implements Host.
func (h *systemHost) LookupHost(name string) ([]netip.Addr, error) {
	if name == "" {
		return nil, fmt.Errorf("lookup: empty host name")
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.timeout)
	defer cancel()
	r := &net.Resolver{PreferGo: true}
	addrs, err := r.LookupNetIP(ctx, "ip", name)
	lower := strings.ToLower(strings.TrimSuffix(name, "."))
	if lower == "localhost" || strings.HasSuffix(lower, ".localhost") {
		// RFC 6761: localhost is the loopback, whatever the resolver says.
		err = nil
		addrs = append(addrs, loopback4, loopback6)
	}
	if err != nil {
		return nil, err
	}
	return orderAddrs(addrs), nil
}

// orderAddrs unmaps, drops zones and duplicates, and puts IPv4 before IPv6,
// keeping the resolver's order within each family.
func orderAddrs(in []netip.Addr) []netip.Addr {
	var v4, v6 []netip.Addr
	for _, a := range in {
		a = a.Unmap().WithZone("")
		if !a.IsValid() || slices.Contains(v4, a) || slices.Contains(v6, a) {
			continue
		}
		if a.Is4() {
			v4 = append(v4, a)
		} else {
			v6 = append(v6, a)
		}
	}
	return append(v4, v6...)
}

// UserID implements Host.
func (h *systemHost) UserID(name string) (uint32, bool) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, false
	}
	return parseID(u.Uid)
}

// GroupID implements Host.
func (h *systemHost) GroupID(name string) (uint32, bool) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, false
	}
	return parseID(g.Gid)
}

func parseID(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}

// ifaceGroups returns the interface groups of an interface named name: "all"
// and, as FreeBSD names a driver group, the name without its trailing unit
// number ("vlan" for vlan1058, "lo" for lo0), when that is not empty and not
// the name itself.
func ifaceGroups(name string) []string {
	g := []string{"all"}
	if d := strings.TrimRight(name, "0123456789"); d != "" && d != name {
		g = append(g, d)
	}
	return g
}
