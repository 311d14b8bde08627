// Package vip puts virtual addresses on an interface and takes them off, and
// announces a newly owned address to the segment: gratuitous ARP for IPv4,
// an unsolicited neighbour advertisement for IPv6, so switches and neighbours
// move traffic to this node at once.
//
// vip acts; it does not decide. Which node owns a virtual address is the carp
// package's business. vip never touches an address it was not asked to add,
// and removing an address that is not there is not an error (a BACKUP that
// never was MASTER removes nothing).
package vip

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"syscall"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// Owner manages the virtual addresses of one parent interface. It is safe for
// use by one goroutine at a time (the CARP group that owns it).
type Owner struct {
	ifname string
	log    *slog.Logger
}

// NewOwner returns an Owner for the interface named ifname.
func NewOwner(ifname string, log *slog.Logger) *Owner {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Owner{ifname: ifname, log: log}
}

// Interface is the parent interface's name.
func (o *Owner) Interface() string { return o.ifname }

// Add puts each prefix's address on the interface (with the prefix's mask, as
// ifconfig carp0 192.168.1.51/24 does) and announces it. IPv6 addresses skip
// duplicate address detection: the CARP protocol is what keeps them unique.
func (o *Owner) Add(prefixes []netip.Prefix) error {
	link, err := netlink.LinkByName(o.ifname)
	if err != nil {
		return fmt.Errorf("vip: interface %s: %w", o.ifname, err)
	}
	var errs []error
	for _, p := range prefixes {
		a := &netlink.Addr{IPNet: prefixToIPNet(p)}
		if p.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := netlink.AddrAdd(link, a); err != nil && !errors.Is(err, syscall.EEXIST) {
			errs = append(errs, fmt.Errorf("vip: add %s to %s: %w", p, o.ifname, err))
			continue
		}
		o.log.Debug("virtual address added", "addr", p, "if", o.ifname)
	}
	if err := o.Announce(prefixes); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Remove takes each prefix's address off the interface.
func (o *Owner) Remove(prefixes []netip.Prefix) error {
	link, err := netlink.LinkByName(o.ifname)
	if err != nil {
		return fmt.Errorf("vip: interface %s: %w", o.ifname, err)
	}
	var errs []error
	for _, p := range prefixes {
		a := &netlink.Addr{IPNet: prefixToIPNet(p)}
		if err := netlink.AddrDel(link, a); err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("vip: remove %s from %s: %w", p, o.ifname, err))
			continue
		}
		o.log.Debug("virtual address removed", "addr", p, "if", o.ifname)
	}
	return errors.Join(errs...)
}

// Has reports whether addr is configured on the interface.
func (o *Owner) Has(addr netip.Addr) (bool, error) {
	link, err := netlink.LinkByName(o.ifname)
	if err != nil {
		return false, fmt.Errorf("vip: interface %s: %w", o.ifname, err)
	}
	fam := netlink.FAMILY_V4
	if addr.Is6() {
		fam = netlink.FAMILY_V6
	}
	addrs, err := netlink.AddrList(link, fam)
	if err != nil {
		return false, fmt.Errorf("vip: list addresses of %s: %w", o.ifname, err)
	}
	for _, a := range addrs {
		if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == addr {
			return true, nil
		}
	}
	return false, nil
}

// Announce tells the segment that this node now answers for the addresses:
// one gratuitous ARP request per IPv4 address (sender and target both the
// address, broadcast), one unsolicited, overriding neighbour advertisement
// per IPv6 address to all-nodes.
func (o *Owner) Announce(prefixes []netip.Prefix) error {
	ifi, err := net.InterfaceByName(o.ifname)
	if err != nil {
		return fmt.Errorf("vip: interface %s: %w", o.ifname, err)
	}
	var v4, v6 []netip.Addr
	for _, p := range prefixes {
		if p.Addr().Is4() {
			v4 = append(v4, p.Addr())
		} else {
			v6 = append(v6, p.Addr())
		}
	}
	var errs []error
	if len(v4) > 0 {
		errs = append(errs, o.garp(ifi, v4))
	}
	if len(v6) > 0 {
		errs = append(errs, o.unsolicitedNA(ifi, v6))
	}
	return errors.Join(errs...)
}

func (o *Owner) garp(ifi *net.Interface, addrs []netip.Addr) error {
	c, err := arp.Dial(ifi)
	if err != nil {
		return fmt.Errorf("vip: gratuitous ARP on %s: %w", ifi.Name, err)
	}
	defer c.Close()
	var errs []error
	for _, a := range addrs {
		p, err := arp.NewPacket(arp.OperationRequest, ifi.HardwareAddr, a, ethernet.Broadcast, a)
		if err != nil {
			errs = append(errs, fmt.Errorf("vip: gratuitous ARP for %s: %w", a, err))
			continue
		}
		if err := c.WriteTo(p, ethernet.Broadcast); err != nil {
			errs = append(errs, fmt.Errorf("vip: gratuitous ARP for %s on %s: %w", a, ifi.Name, err))
		}
	}
	return errors.Join(errs...)
}

// unsolicitedNA sends the advertisements through a raw ICMPv6 socket with
// the interface given by index in the control message, not by zone name: the
// net package caches zone names per process, which goes wrong when one
// process works in several network namespaces (as tests do).
func (o *Owner) unsolicitedNA(ifi *net.Interface, addrs []netip.Addr) error {
	c, err := net.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		return fmt.Errorf("vip: neighbour advertisement on %s: %w", ifi.Name, err)
	}
	defer c.Close()
	pc := ipv6.NewPacketConn(c)
	if err := pc.SetMulticastHopLimit(255); err != nil { // RFC 4861 7.1.2
		return fmt.Errorf("vip: neighbour advertisement on %s: %w", ifi.Name, err)
	}
	cm := &ipv6.ControlMessage{IfIndex: ifi.Index, HopLimit: 255}
	dst := &net.IPAddr{IP: net.IPv6linklocalallnodes}
	var errs []error
	for _, a := range addrs {
		b, err := ndp.MarshalMessage(&ndp.NeighborAdvertisement{
			Override:      true,
			TargetAddress: a,
			Options: []ndp.Option{&ndp.LinkLayerAddress{
				Direction: ndp.Target,
				Addr:      ifi.HardwareAddr,
			}},
		})
		if err == nil {
			_, err = pc.WriteTo(b, cm, dst)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("vip: neighbour advertisement for %s on %s: %w", a, ifi.Name, err))
		}
	}
	return errors.Join(errs...)
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
