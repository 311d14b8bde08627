package lab

import (
	"fmt"
	"net/netip"
)

// Role says what a node is for.
type Role string

// Node roles.
const (
	RoleClient   Role = "client"
	RoleBalancer Role = "balancer"
	RoleServer   Role = "server"
	RoleSwitch   Role = "switch"
)

// Segment names: the three cables of the seed.
const (
	SegExternal = "ext"
	SegInternal = "int"
	SegSync     = "sync"
)

// MaxBackends is the largest server pool the plan can address: servers take
// internal host numbers .20 upwards and must stay below the VIP (.100).
const MaxBackends = 80

// Segment is one Ethernet segment: a switch (a namespace holding a bridge)
// and the subnet on it. VIP is the zero Addr on the sync segment.
type Segment struct {
	Name   string       `json:"name"`
	Switch string       `json:"switch"` // node name of the switch namespace
	Prefix netip.Prefix `json:"prefix"`
	VIP    netip.Addr   `json:"vip"`
}

// Iface is one interface of a node. On a switch, ports are listed as Ifaces
// with an empty Segment.
type Iface struct {
	Name    string         `json:"name"`
	Segment string         `json:"segment,omitempty"`
	Addrs   []netip.Prefix `json:"addrs,omitempty"`
}

// Route is a static route a node gets at creation time.
type Route struct {
	Dst netip.Prefix `json:"dst"`
	Via netip.Addr   `json:"via"`
}

// Node is one network namespace of the lab.
type Node struct {
	Name   string  `json:"name"`
	Role   Role    `json:"role"`
	Index  int     `json:"index,omitempty"` // server number N of sN; 0 otherwise
	Ifaces []Iface `json:"ifaces"`
	Routes []Route `json:"routes,omitempty"`
}

// Iface returns the node's interface called name.
func (n *Node) Iface(name string) (Iface, bool) {
	for _, ifc := range n.Ifaces {
		if ifc.Name == name {
			return ifc, true
		}
	}
	return Iface{}, false
}

// Plan is the whole topology: segments and nodes with their addresses. It is
// computed by NewPlan and never touches the system. A Plan is a read-only
// value once built.
type Plan struct {
	Seed     bool      `json:"seed"`
	Segments []Segment `json:"segments"`
	Nodes    []Node    `json:"nodes"`
}

// Addressing is the set of ranges a plan uses.
type Addressing struct {
	External, Internal, Sync netip.Prefix
}

// DefaultAddressing is the lab's own isolated ranges (RFC 5737
// documentation networks), with the seed's host numbers.
var defaultAddressing = Addressing{
	External: netip.MustParsePrefix("198.51.100.0/24"),
	Internal: netip.MustParsePrefix("192.0.2.0/24"),
	Sync:     netip.MustParsePrefix("203.0.113.0/24"),
}

// seedAddressing is the seed's exact addresses (../shared/seed/README.md).
var seedAddressing = Addressing{
	External: netip.MustParsePrefix("192.168.1.0/24"),
	Internal: netip.MustParsePrefix("192.168.10.0/24"),
	Sync:     netip.MustParsePrefix("10.10.10.0/24"),
}

// AddressingFor returns the ranges used with or without --seed.
func AddressingFor(seed bool) Addressing {
	if seed {
		return seedAddressing
	}
	return defaultAddressing
}

// host returns the address with the last octet set to n in a /24.
func host(p netip.Prefix, n int) netip.Addr {
	b := p.Masked().Addr().As4()
	b[3] = byte(n)
	return netip.AddrFrom4(b)
}

func hostPrefix(p netip.Prefix, n int) netip.Prefix {
	return netip.PrefixFrom(host(p, n), p.Bits())
}

// Host numbers shared by both addressings (the seed's).
const (
	hostExtVIP   = 51
	hostLB1Ext   = 52
	hostLB2Ext   = 53
	hostClient0  = 89 // clients .89 .90 .91
	numClients   = 3
	hostIntVIP   = 100
	hostLB1Int   = 10
	hostLB2Int   = 11
	hostServer0  = 20
	hostLB1Sync  = 250
	hostLB2Sync  = 251
	switchBridge = "br0"
)

// NewPlan computes the topology for backends servers (1..MaxBackends).
func NewPlan(seed bool, backends int) (*Plan, error) {
	if backends < 1 || backends > MaxBackends {
		return nil, fmt.Errorf("backends: %d is out of range 1..%d", backends, MaxBackends)
	}
	a := AddressingFor(seed)
	p := &Plan{Seed: seed}
	p.Segments = []Segment{
		{Name: SegExternal, Switch: "sw-ext", Prefix: a.External, VIP: host(a.External, hostExtVIP)},
		{Name: SegInternal, Switch: "sw-int", Prefix: a.Internal, VIP: host(a.Internal, hostIntVIP)},
		{Name: SegSync, Switch: "sw-sync", Prefix: a.Sync},
	}
	var clientAddrs []netip.Prefix
	for i := 0; i < numClients; i++ {
		clientAddrs = append(clientAddrs, hostPrefix(a.External, hostClient0+i))
	}
	p.Nodes = append(p.Nodes, Node{
		Name:   "client",
		Role:   RoleClient,
		Ifaces: []Iface{{Name: "eth0", Segment: SegExternal, Addrs: clientAddrs}},
		Routes: []Route{{Dst: a.Internal, Via: host(a.External, hostExtVIP)}},
	})
	for i, h := range [][3]int{{hostLB1Ext, hostLB1Int, hostLB1Sync}, {hostLB2Ext, hostLB2Int, hostLB2Sync}} {
		p.Nodes = append(p.Nodes, Node{
			Name: fmt.Sprintf("lb%d", i+1),
			Role: RoleBalancer,
			Ifaces: []Iface{
				{Name: "eth0", Segment: SegExternal, Addrs: []netip.Prefix{hostPrefix(a.External, h[0])}},
				{Name: "eth1", Segment: SegInternal, Addrs: []netip.Prefix{hostPrefix(a.Internal, h[1])}},
				{Name: "eth2", Segment: SegSync, Addrs: []netip.Prefix{hostPrefix(a.Sync, h[2])}},
			},
		})
	}
	for i := 1; i <= backends; i++ {
		p.Nodes = append(p.Nodes, Node{
			Name:   fmt.Sprintf("s%d", i),
			Role:   RoleServer,
			Index:  i,
			Ifaces: []Iface{{Name: "eth0", Segment: SegInternal, Addrs: []netip.Prefix{hostPrefix(a.Internal, hostServer0+i-1)}}},
			Routes: []Route{{Dst: netip.PrefixFrom(netip.IPv4Unspecified(), 0), Via: host(a.Internal, hostIntVIP)}},
		})
	}
	// Switches: one port per node interface on the segment, named
	// "<node>-<iface>" (at most 11 characters: "client-eth0", "s80-eth0").
	for _, seg := range p.Segments {
		sw := Node{Name: seg.Switch, Role: RoleSwitch}
		for _, n := range p.Nodes {
			for _, ifc := range n.Ifaces {
				if ifc.Segment == seg.Name {
					sw.Ifaces = append(sw.Ifaces, Iface{Name: portName(n.Name, ifc.Name)})
				}
			}
		}
		p.Nodes = append(p.Nodes, sw)
	}
	return p, nil
}

// portName is the switch-side name of a node interface's cable.
func portName(node, iface string) string { return node + "-" + iface }

// Node returns the node called name.
func (p *Plan) Node(name string) (*Node, bool) {
	for i := range p.Nodes {
		if p.Nodes[i].Name == name {
			return &p.Nodes[i], true
		}
	}
	return nil, false
}

// Segment returns the segment called name.
func (p *Plan) Segment(name string) (Segment, bool) {
	for _, s := range p.Segments {
		if s.Name == name {
			return s, true
		}
	}
	return Segment{}, false
}

// Servers returns the server nodes in order s1..sN.
func (p *Plan) Servers() []Node {
	var out []Node
	for _, n := range p.Nodes {
		if n.Role == RoleServer {
			out = append(out, n)
		}
	}
	return out
}

// ClientAddrs returns the client node's source addresses.
func (p *Plan) ClientAddrs() []netip.Addr {
	var out []netip.Addr
	if n, ok := p.Node("client"); ok {
		for _, a := range n.Ifaces[0].Addrs {
			out = append(out, a.Addr())
		}
	}
	return out
}

// Addr returns the first address of node's interface iface.
func (p *Plan) Addr(node, iface string) (netip.Addr, bool) {
	n, ok := p.Node(node)
	if !ok {
		return netip.Addr{}, false
	}
	ifc, ok := n.Iface(iface)
	if !ok || len(ifc.Addrs) == 0 {
		return netip.Addr{}, false
	}
	return ifc.Addrs[0].Addr(), true
}

// NodeNames lists the names of all nodes, switches last.
func (p *Plan) NodeNames() []string {
	out := make([]string, 0, len(p.Nodes))
	for _, n := range p.Nodes {
		out = append(out, n.Name)
	}
	return out
}
