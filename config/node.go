package config

import (
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// Node is one node's configuration, typed and validated. It is built by
// Load and read-only afterwards; it is safe for concurrent reads.
type Node struct {
	File string // name the rc.conf was loaded under
	Dir  string // directory relative paths in the file are resolved against

	Hostname    string
	HostnamePos Pos

	GatewayEnable     bool // IPv4 forwarding (net.ipv4.ip_forward)
	GatewayEnablePos  Pos
	IPv6GatewayEnable bool // IPv6 forwarding
	DefaultRouter     netip.Addr
	DefaultRouterPos  Pos
	IPv6DefaultRouter netip.Addr

	// Interfaces are the physical (non-CARP, non-pfsync) interfaces with an
	// ifconfig_IF line, sorted by name.
	Interfaces []*Interface
	// Cloned lists cloned_interfaces in order.
	Cloned    []string
	ClonedPos Pos

	// CARP holds the CARP groups: one per carpN interface (FreeBSD < 10) and
	// one per (interface, vhid) for the FreeBSD >= 10 form; in file order.
	CARP []*CARPGroup

	// Pfsync is nil when pfsync is not configured.
	Pfsync *Pfsync

	PF    PF
	Pflog Pflog
	// Relayd is relayd_enable and relayd_flags.
	Relayd Relayd

	// Preempt is net.inet.carp.preempt: carp_preempt="YES" in rc.conf or
	// net.inet.carp.preempt=1 in the node's sysctl.conf. PreemptPos is
	// invalid when neither sets it (the default, NO).
	Preempt    bool
	PreemptPos Pos

	// PfsyncKey authenticates pfsync messages (pfcarp extension); empty
	// means unauthenticated, as in pf. PfsyncKeyPos is where it was set.
	PfsyncKey    []byte
	PfsyncKeyPos Pos

	ControlSocket string // pfcarp_control_socket; empty means the daemon's default
	// Metrics is pfcarp_metrics: where the daemon serves Prometheus
	// metrics and the status page; the zero value: off (the default).
	Metrics    netip.AddrPort
	MetricsPos Pos
	// PeerStatus is pfcarp_peer_status: the peer's pfcarp_metrics
	// listener, whose state the status page shows beside this node's.
	PeerStatus netip.AddrPort
	// Nice is pfcarp_nice: the priority the daemon gives its threads
	// (setpriority, -20 to 19), as conntrackd's Nice and keepalived's
	// vrrp_priority: pfsync's sync lag is the window in which a failover
	// loses a new connection, and on a busy machine a daemon at the
	// default priority waits behind every other runnable task (BSD's
	// pfsync runs in the kernel). NiceSet is false when unset: the daemon
	// keeps the priority it was started with (the unit's Nice=).
	Nice        int
	NiceSet     bool
	NicePos     Pos
	CARPUpCmd   string // carp_up_cmd: run via /bin/sh -c when a group becomes MASTER
	CARPDownCmd string // carp_down_cmd: run when a group leaves MASTER
	CARPVMAC    bool   // carp_vmac: VIPs on a macvlan with the VRRP MAC 00:00:5e:00:01:vhid
	CARPVMACPos Pos

	// SysctlFile is the sysctl.conf that was read, or "" if none.
	SysctlFile string

	rc *RCFile
}

// Interface is a physical interface's configuration from ifconfig_IF,
// ifconfig_IF_ipv6 and ifconfig_IF_aliasN.
type Interface struct {
	Name  string
	Pos   Pos // of the first ifconfig_ line naming it
	Up    bool
	DHCP  bool // addresses come from DHCP: unknown until run time
	MTU   int  // 0: unchanged
	Addrs []IfAddr
}

// IfAddr is an address configured on an interface: Prefix holds the host
// address and the subnet length.
type IfAddr struct {
	Prefix netip.Prefix
	Pos    Pos
}

// Has reports whether addr is one of the interface's own addresses.
func (i *Interface) Has(addr netip.Addr) bool {
	for _, a := range i.Addrs {
		if a.Prefix.Addr() == addr {
			return true
		}
	}
	return false
}

// CARPGroup is one virtual host: a vhid on a parent interface with its
// virtual addresses.
type CARPGroup struct {
	// Name is the carpN interface for the FreeBSD < 10 form, "" for the
	// FreeBSD >= 10 form (vhid on the parent's own ifconfig line).
	Name string
	// Key is the rc.conf variable that defines the group (ifconfig_carp0).
	Key string
	Pos Pos // of the vhid

	VHID    int // 1-255
	Pass    string
	PassPos Pos
	AdvBase int // seconds, 0-255; default 1
	AdvSkew int // 0-254; default 0
	// AdvSkewPos is where advskew was set; invalid when defaulted.
	AdvSkewPos Pos
	AdvBasePos Pos

	// Dev is the parent interface: CarpDev if given, else the interface
	// with an address in the VIPs' subnet (FreeBSD 7's rule). Empty if it
	// could not be resolved (Load reported an error).
	Dev      string
	CarpDev  string // explicit carpdev
	DevPos   Pos
	Peer     netip.Addr // carppeer: unicast advertisements; zero means multicast
	State    string     // "", "backup" or "master": forced initial state
	VIPs     []IfAddr
	resolved bool
}

// Label names the group for messages: "carp0" or "eth0 vhid 1".
func (g *CARPGroup) Label() string {
	if g.Name != "" {
		return g.Name
	}
	return g.Dev + " vhid " + strconv.Itoa(g.VHID)
}

// Pfsync is the pfsync0 configuration.
type Pfsync struct {
	Key      string // rc.conf variable that set it
	Pos      Pos
	Up       bool
	SyncDev  string
	SyncPeer netip.Addr // zero: multicast 224.0.0.240 on SyncDev
	MaxUpd   int        // default 128
	Defer    bool
}

// PF is pf_enable, pf_rules and pf_flags.
type PF struct {
	Enable   bool
	Rules    string // as written
	RulesPos Pos
	// RulesPath is Rules resolved against the node's Dir.
	RulesPath string
	Flags     string
}

// Relayd is relayd_enable and relayd_flags: the daemon runs relayd's
// redirections (package relayd) from the relayd.conf named by "-f FILE".
type Relayd struct {
	Enable    bool
	EnablePos Pos
	Flags     string // as written
	FlagsPos  Pos
	// Conf is the relayd.conf ("-f FILE", else DefaultRelaydConf),
	// resolved against the node's Dir.
	Conf string
}

// DefaultRelaydConf is the relayd.conf read when relayd_flags has no -f.
const DefaultRelaydConf = "/etc/pfcarp/relayd.conf"

// Pflog is pflog_enable, pflog_logfile and pflog_flags.
type Pflog struct {
	Enable    bool
	EnablePos Pos
	Logfile   string
	Flags     string
}

// Interface returns the interface named name, or nil.
func (n *Node) Interface(name string) *Interface {
	for _, i := range n.Interfaces {
		if i.Name == name {
			return i
		}
	}
	return nil
}

// Lookup returns the rc.conf assignment in effect for name, or nil.
func (n *Node) Lookup(name string) *Assign {
	if n.rc == nil {
		return nil
	}
	return n.rc.Lookup(name)
}

// OwnAddr reports whether addr is configured on one of the node's physical
// interfaces (not as a CARP VIP).
func (n *Node) OwnAddr(addr netip.Addr) (*Interface, bool) {
	for _, i := range n.Interfaces {
		if i.Has(addr) {
			return i, true
		}
	}
	return nil, false
}

// VIP reports the CARP group that has addr as a virtual address.
func (n *Node) VIP(addr netip.Addr) (*CARPGroup, bool) {
	for _, g := range n.CARP {
		for _, v := range g.VIPs {
			if v.Prefix.Addr() == addr {
				return g, true
			}
		}
	}
	return nil, false
}

func (n *Node) ifaceFor(name string, pos Pos) *Interface {
	if i := n.Interface(name); i != nil {
		return i
	}
	i := &Interface{Name: name, Pos: pos}
	n.Interfaces = append(n.Interfaces, i)
	return i
}

func (n *Node) sortInterfaces() {
	sort.Slice(n.Interfaces, func(a, b int) bool { return n.Interfaces[a].Name < n.Interfaces[b].Name })
}

// isCarpName reports whether name is carpN, and isPfsyncName pfsyncN.
func isCarpName(name string) bool   { return hasNumSuffix(name, "carp") }
func isPfsyncName(name string) bool { return hasNumSuffix(name, "pfsync") }
func isPflogName(name string) bool  { return hasNumSuffix(name, "pflog") }

func hasNumSuffix(name, prefix string) bool {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok || rest == "" || len(rest) > 3 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if rest[i] < '0' || rest[i] > '9' {
			return false
		}
	}
	return true
}
