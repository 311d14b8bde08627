package relayd

import (
	"context"
	"net"
	"os"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// probeICMP is check_icmp.c for one host: an echo request, up when the
// matching reply arrives before the timeout. It needs a raw socket
// (CAP_NET_RAW); without one the host stays unknown.
func probeICMP(ctx context.Context, h *Host) State {
	network, laddr, proto := "ip4:icmp", "0.0.0.0", 1
	var typ, reply icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if h.Addr.Is6() && !h.Addr.Is4In6() {
		network, laddr, proto = "ip6:ipv6-icmp", "::", 58
		typ, reply = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	c, err := icmp.ListenPacket(network, laddr)
	if err != nil {
		return Unknown
	}
	defer c.Close()
	if h.TTL > 0 {
		if proto == 1 {
			_ = c.IPv4PacketConn().SetTTL(h.TTL)
		} else {
			_ = c.IPv6PacketConn().SetHopLimit(h.TTL)
		}
	}
	id := os.Getpid()&0xffff ^ h.ID
	msg := icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: h.ID & 0xffff, Data: []byte("pfcarp relayd")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return Unknown
	}
	dst := &net.IPAddr{IP: net.IP(h.Addr.AsSlice())}
	if _, err := c.WriteTo(b, dst); err != nil {
		return Down
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetReadDeadline(dl)
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return Down
		}
		ip, ok := from.(*net.IPAddr)
		if !ok || !ip.IP.Equal(dst.IP) {
			continue
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil || m.Type != reply {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id && e.Seq == h.ID&0xffff {
			return Up
		}
	}
}
