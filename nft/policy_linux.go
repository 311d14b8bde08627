package nft

import (
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netlinkHandle opens a netlink handle in the Conn's namespace.
func (c *Conn) netlinkHandle() (*netlink.Handle, error) {
	if c.netnsFD >= 0 {
		return netlink.NewHandleAt(netns.NsHandle(c.netnsFD))
	}
	return netlink.NewHandle()
}

func ownedTable(t int) bool { return t >= PolicyTableBase && t < PolicyTableBase+PolicyTables }

// applyRoutes replaces pfcarp's routing rules and tables with p's Routes
// (see policy.go).
func (c *Conn) applyRoutes(p *Program) error {
	if c.table != TableName && len(p.Routes) == 0 {
		return nil // a test or probe table: leave the namespace's routing alone
	}
	h, err := c.netlinkHandle()
	if err != nil {
		return fmt.Errorf("policy routing: %w", err)
	}
	defer h.Close()
	if err := removeRoutes(h); err != nil {
		return err
	}
	for _, r := range p.Routes {
		if err := addRoute(h, r); err != nil {
			return fmt.Errorf("policy routing for mark %#x (table %d): %w", r.Mark, r.Table, err)
		}
	}
	return nil
}

// checkRoutes refuses p before anything is changed when an interface its
// Routes name does not exist (the kernel's routes need it).
func (c *Conn) checkRoutes(p *Program) error {
	if len(p.Routes) == 0 {
		return nil
	}
	h, err := c.netlinkHandle()
	if err != nil {
		return fmt.Errorf("policy routing: %w", err)
	}
	defer h.Close()
	for _, r := range p.Routes {
		if r.Dev == "" || r.Local {
			continue
		}
		if _, err := h.LinkByName(r.Dev); err != nil {
			return fmt.Errorf("policy routing for mark %#x: interface %s does not exist (route-to and reply-to need it when the ruleset is loaded): %w; nothing was changed", r.Mark, r.Dev, err)
		}
	}
	return nil
}

// removePolicyRoutes deletes pfcarp's routing rules and routes.
func (c *Conn) removePolicyRoutes() error {
	h, err := c.netlinkHandle()
	if err != nil {
		return fmt.Errorf("policy routing: %w", err)
	}
	defer h.Close()
	return removeRoutes(h)
}

func removeRoutes(h *netlink.Handle) error {
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		rules, err := h.RuleList(fam)
		if err != nil {
			return fmt.Errorf("policy routing: listing rules: %w", err)
		}
		for _, r := range rules {
			if r.Priority != PolicyRulePriority || !ownedTable(r.Table) {
				continue
			}
			r := r
			if err := h.RuleDel(&r); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("policy routing: deleting rule to table %d: %w", r.Table, err)
			}
		}
		// one dump of all tables (Table 0 with the table filter)
		routes, err := h.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return fmt.Errorf("policy routing: listing routes: %w", err)
		}
		for _, rt := range routes {
			if !ownedTable(rt.Table) {
				continue
			}
			rt := rt
			if err := h.RouteDel(&rt); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("policy routing: deleting route in table %d: %w", rt.Table, err)
			}
		}
	}
	return nil
}

func addRoute(h *netlink.Handle, r PolicyRoute) error {
	if !ownedTable(r.Table) {
		return fmt.Errorf("table %d is not one of pfcarp's (%d-%d)", r.Table, PolicyTableBase, PolicyTableBase+PolicyTables-1)
	}
	fam, dst := unix.AF_INET, &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
	if r.V6 {
		fam, dst = unix.AF_INET6, &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	}
	dev := r.Dev
	if r.Local {
		dev = "lo"
	}
	rt := &netlink.Route{Table: r.Table, Dst: dst, Protocol: PolicyProtocol, Family: fam}
	if dev != "" {
		link, err := h.LinkByName(dev)
		if err != nil {
			return fmt.Errorf("interface %s: %w", dev, err)
		}
		rt.LinkIndex = link.Attrs().Index
	}
	if r.Local {
		rt.Type = unix.RTN_LOCAL
		rt.Scope = netlink.SCOPE_HOST
	} else {
		rt.Gw = r.Gateway.AsSlice()
		if !r.Gateway.IsValid() {
			rt.Scope = netlink.SCOPE_LINK
		} else if dev != "" {
			// pf sends a route-to packet out on the target's interface
			// to the gateway as a neighbour, without asking the routing
			// table whether the gateway is on that interface's network
			// (sys/net/pf.c, pf_route: the gateway is the next hop on
			// the rule's interface); onlink is that.
			rt.Flags = int(netlink.FLAG_ONLINK)
		}
	}
	if err := h.RouteReplace(rt); err != nil {
		return fmt.Errorf("route: %w", err)
	}
	rule := netlink.NewRule()
	rule.Family = fam
	rule.Priority = PolicyRulePriority
	rule.Table = r.Table
	rule.Mark = r.Mark
	mask := r.Mask
	rule.Mask = &mask
	rule.Protocol = PolicyProtocol
	if err := h.RuleAdd(rule); err != nil {
		return fmt.Errorf("rule: %w", err)
	}
	return nil
}
