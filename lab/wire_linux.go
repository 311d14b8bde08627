package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// nsHandle opens a netlink handle working inside node's namespace. The
// caller closes both.
func (l *Lab) nsHandle(node string) (*netlink.Handle, netns.NsHandle, error) {
	ns, err := netns.GetFromPath(l.nsPath(node))
	if err != nil {
		return nil, 0, fmt.Errorf("node %s: open namespace %s: %w", node, l.nsPath(node), err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		return nil, 0, fmt.Errorf("node %s: netlink: %w", node, err)
	}
	return h, ns, nil
}

// featureErr names the kernel feature behind an EOPNOTSUPP from creating a
// link of kind.
func featureErr(what, kind, config string, err error) error {
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("%s: kernel lacks %s links (%s): %w", what, kind, config, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// wire creates the switches' bridges, every cable (veth pair) and the nodes'
// addresses, routes and sysctls.
func (l *Lab) wire(ctx context.Context) error {
	for _, seg := range l.plan.Segments {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := l.wireSegment(seg); err != nil {
			return err
		}
	}
	for _, n := range l.plan.Nodes {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := l.configureNode(n); err != nil {
			return err
		}
	}
	return nil
}

func (l *Lab) wireSegment(seg Segment) error {
	h, swNS, err := l.nsHandle(seg.Switch)
	if err != nil {
		return err
	}
	defer swNS.Close()
	defer h.Close()
	if err := setUp(h, "lo"); err != nil {
		return fmt.Errorf("switch %s: %w", seg.Switch, err)
	}
	off := false
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: switchBridge}, MulticastSnooping: &off}
	if err := h.LinkAdd(br); err != nil {
		return featureErr("switch "+seg.Switch+": add bridge", "bridge", "CONFIG_BRIDGE", err)
	}
	brLink, err := h.LinkByName(switchBridge)
	if err != nil {
		return fmt.Errorf("switch %s: %w", seg.Switch, err)
	}
	for _, n := range l.plan.Nodes {
		for _, ifc := range n.Ifaces {
			if ifc.Segment != seg.Name {
				continue
			}
			if err := l.cable(h, brLink.Attrs().Index, seg.Switch, n.Name, ifc.Name); err != nil {
				return err
			}
		}
	}
	if err := h.LinkSetUp(brLink); err != nil {
		return fmt.Errorf("switch %s: bridge up: %w", seg.Switch, err)
	}
	// Switches never route; be explicit since new namespaces may inherit
	// the host's IPv4 forwarding setting.
	return writeSysctlIn(l.Namespace(seg.Switch), "net.ipv4.ip_forward", "0")
}

// cable plugs node's iface into the switch: a veth pair made inside the
// switch namespace, its peer moved into the node at creation.
func (l *Lab) cable(h *netlink.Handle, brIndex int, sw, node, iface string) error {
	nodeNS, err := netns.GetFromPath(l.nsPath(node))
	if err != nil {
		return fmt.Errorf("node %s: open namespace: %w", node, err)
	}
	defer nodeNS.Close()
	port := portName(node, iface)
	v := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: port, MasterIndex: brIndex},
		PeerName:      iface,
		PeerNamespace: netlink.NsFd(nodeNS),
	}
	if err := h.LinkAdd(v); err != nil {
		return featureErr(fmt.Sprintf("switch %s: cable %s to %s %s", sw, port, node, iface), "veth", "CONFIG_VETH", err)
	}
	if err := setUp(h, port); err != nil {
		return fmt.Errorf("switch %s: %w", sw, err)
	}
	return nil
}

func setUp(h *netlink.Handle, name string) error {
	link, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("link %s up: %w", name, err)
	}
	return nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// configureNode brings a node's links up and sets its addresses, routes
// and forwarding (off: balancers get it from StaticBalancer or the daemon).
func (l *Lab) configureNode(n Node) error {
	if n.Role == RoleSwitch {
		return nil
	}
	h, ns, err := l.nsHandle(n.Name)
	if err != nil {
		return err
	}
	defer ns.Close()
	defer h.Close()
	if err := setUp(h, "lo"); err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	for _, ifc := range n.Ifaces {
		link, err := h.LinkByName(ifc.Name)
		if err != nil {
			return fmt.Errorf("node %s: %s: %w", n.Name, ifc.Name, err)
		}
		for _, a := range ifc.Addrs {
			if err := h.AddrAdd(link, &netlink.Addr{IPNet: ipNet(a)}); err != nil {
				return fmt.Errorf("node %s: %s: add %s: %w", n.Name, ifc.Name, a, err)
			}
		}
		if err := h.LinkSetUp(link); err != nil {
			return fmt.Errorf("node %s: %s up: %w", n.Name, ifc.Name, err)
		}
	}
	for _, r := range n.Routes {
		rt := &netlink.Route{Dst: ipNet(r.Dst), Gw: net.IP(r.Via.AsSlice())}
		if err := h.RouteAdd(rt); err != nil {
			return fmt.Errorf("node %s: route %s via %s: %w", n.Name, r.Dst, r.Via, err)
		}
	}
	return writeSysctlIn(l.Namespace(n.Name), "net.ipv4.ip_forward", "0")
}

// Dial connects from inside node to address (host:port) on network "tcp"
// or "udp". The socket is created in the node's namespace and stays there;
// the returned connection is used like any other.
func (l *Lab) Dial(ctx context.Context, node, network, address string) (net.Conn, error) {
	return l.DialFrom(ctx, node, netip.Addr{}, network, address)
}

// DialFrom is Dial with the source address set to src (one of the node's
// addresses), or chosen by the kernel when src is the zero Addr.
func (l *Lab) DialFrom(ctx context.Context, node string, src netip.Addr, network, address string) (net.Conn, error) {
	if _, err := l.node(node); err != nil {
		return nil, err
	}
	var d net.Dialer
	if src.IsValid() {
		switch network {
		case "tcp", "tcp4", "tcp6":
			d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
		case "udp", "udp4", "udp6":
			d.LocalAddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
		default:
			return nil, fmt.Errorf("dial from %s: network %q not supported", node, network)
		}
	}
	var c net.Conn
	err := inNS(filepath.Join(netnsDir, l.Namespace(node)), func() error {
		var err error
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", node, err)
	}
	return c, nil
}

// StaticBalancer makes node (lb1 or lb2) the balancer by hand, standing in
// for a CARP master until the daemon exists: it holds both virtual IPs and
// forwards. The other balancer loses the VIPs and forwarding. Neighbours'
// ARP caches are not updated (no gratuitous ARP), so call it before traffic
// flows.
func (l *Lab) StaticBalancer(node string) error {
	n, err := l.node(node)
	if err != nil {
		return err
	}
	if n.Role != RoleBalancer {
		return fmt.Errorf("node %s is a %s, not a balancer", node, n.Role)
	}
	for _, other := range l.plan.Nodes {
		if other.Role != RoleBalancer {
			continue
		}
		if err := l.setVIPs(other, other.Name == node); err != nil {
			return err
		}
		fwd := "0"
		if other.Name == node {
			fwd = "1"
		}
		if err := writeSysctlIn(l.Namespace(other.Name), "net.ipv4.ip_forward", fwd); err != nil {
			return fmt.Errorf("node %s: %w", other.Name, err)
		}
	}
	return nil
}

func (l *Lab) setVIPs(n Node, on bool) error {
	h, ns, err := l.nsHandle(n.Name)
	if err != nil {
		return err
	}
	defer ns.Close()
	defer h.Close()
	for _, ifc := range n.Ifaces {
		seg, _ := l.plan.Segment(ifc.Segment)
		if !seg.VIP.IsValid() {
			continue
		}
		link, err := h.LinkByName(ifc.Name)
		if err != nil {
			return fmt.Errorf("node %s: %s: %w", n.Name, ifc.Name, err)
		}
		a := &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(seg.VIP, seg.Prefix.Bits()))}
		if on {
			err = h.AddrReplace(link, a)
		} else if err = h.AddrDel(link, a); errors.Is(err, unix.EADDRNOTAVAIL) {
			err = nil
		}
		if err != nil {
			return fmt.Errorf("node %s: %s: VIP %s: %w", n.Name, ifc.Name, seg.VIP, err)
		}
	}
	return nil
}
