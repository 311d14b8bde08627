package nft

import (
	"fmt"
	"net/netip"
)

// Policy routing: what divert-to and route-to need besides nftables rules.
//
// A Program's Routes ask Load for routing rules "fwmark Mark/Mask lookup
// Table" and, in Table, a default route (a local one for divert-to, one
// via a gateway for route-to). pfcarp owns the routing tables
// PolicyTableBase to PolicyTableBase+PolicyTables-1 and the routing rules
// of priority PolicyRulePriority that point to them, all marked with
// protocol PolicyProtocol: each Load replaces them with the program's,
// Delete removes them, and nothing else is touched.

// PolicyRoute is one mark's routing: packets whose mark has Mark under
// Mask are routed by table Table, whose default route is local (Local:
// delivered to a local socket, for divert-to) or via Gateway on Dev.
type PolicyRoute struct {
	Mark, Mask uint32
	V6         bool
	Table      int
	Local      bool
	Gateway    netip.Addr
	Dev        string
}

// The routing rules and tables pfcarp owns.
const (
	// PolicyTableBase is the first routing table of pfcarp's.
	PolicyTableBase = 52000
	// PolicyTables is how many tables from PolicyTableBase are pfcarp's.
	PolicyTables = 256
	// PolicyRulePriority is the priority of pfcarp's routing rules
	// (before the main table's 32766).
	PolicyRulePriority = 9000
	// PolicyProtocol marks pfcarp's routing rules and routes (rtnetlink
	// protocol number).
	PolicyProtocol = 247
)

// String renders r as ip(8) would set it up, as a comment.
func (r PolicyRoute) String() string {
	fam, def := "-4", "0.0.0.0/0"
	if r.V6 {
		fam, def = "-6", "::/0"
	}
	route := fmt.Sprintf("local %s dev lo", def)
	if !r.Local {
		route = def
		if r.Gateway.IsValid() {
			route += " via " + r.Gateway.String()
		}
		if r.Dev != "" {
			route += " dev " + r.Dev
		}
	}
	return fmt.Sprintf("# ip %s rule add fwmark 0x%08x/0x%08x lookup %d priority %d; ip %s route add %s table %d",
		fam, r.Mark, r.Mask, r.Table, PolicyRulePriority, fam, route, r.Table)
}
