package compile

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestKernelInvalidDropped sends the router a TCP segment conntrack calls
// invalid (an ACK of no connection, with loose pickup off) to the VIP's
// rdr port: with hook_in's drop it vanishes; without it (a no-state pass
// rule in the ruleset) it skips rdr, reaches the router's own closed port
// 80 and is answered with RST. A SYN to the router's closed port 81 after
// it is the marker: its RST proves the path works, and the veth keeps
// order, so an RST for the ACK would have come first.
func TestKernelInvalidDropped(t *testing.T) {
	for _, tc := range []struct {
		name    string
		conf    string
		wantRST bool
	}{
		{"keep state: dropped", "set skip on lo\nrdr on eth0 proto tcp to 192.0.2.51 port 80 -> 198.51.100.20\n", false},
		{"a no-state rule: answered", "set skip on lo\nrdr on eth0 proto tcp to 192.0.2.51 port 80 -> 198.51.100.20\n" +
			"pass in on eth0 proto udp to port 9 no state\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBed(t)
			b.load(t, tc.conf)
			b.router.Sysctl(t, "net.netfilter.nf_conntrack_tcp_loose", "0")
			var fd int
			if err := b.client.Do(func() (err error) {
				fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_TCP)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			tv := unix.NsecToTimeval(int64(5 * time.Second))
			if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
				t.Fatal(err)
			}
			send := func(dst netip.Addr, dport uint16, flags byte) {
				seg := tcpSegment(clientA, dst, 40000, dport, 1000, 5000, flags)
				sa := &unix.SockaddrInet4{Addr: dst.As4()}
				if err := unix.Sendto(fd, seg, 0, sa); err != nil {
					t.Fatal(err)
				}
			}
			send(vip, 80, 0x10)                              // ACK, no connection: invalid
			send(netip.MustParseAddr("192.0.2.1"), 81, 0x02) // SYN to a closed port: RST
			gotRST := false
			buf := make([]byte, 1500)
			for {
				n, _, err := unix.Recvfrom(fd, buf, 0)
				if err != nil {
					t.Fatalf("no RST for the marker SYN: %v", err)
				}
				src, sport, flags, ok := parseTCP(buf[:n])
				if !ok || flags&0x04 == 0 {
					continue
				}
				if sport == 81 && src == netip.MustParseAddr("192.0.2.1") {
					break
				}
				if sport == 80 && src == vip {
					gotRST = true
				}
			}
			if gotRST != tc.wantRST {
				t.Fatalf("RST for the invalid ACK to %s:80: %v, want %v", vip, gotRST, tc.wantRST)
			}
		})
	}
}

// tcpSegment builds a 20-byte TCP header with its checksum.
func tcpSegment(src, dst netip.Addr, sport, dport uint16, seq, ack uint32, flags byte) []byte {
	h := make([]byte, 20)
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	binary.BigEndian.PutUint32(h[4:], seq)
	binary.BigEndian.PutUint32(h[8:], ack)
	h[12] = 5 << 4
	h[13] = flags
	binary.BigEndian.PutUint16(h[14:], 65535)
	s, d := src.As4(), dst.As4()
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
	}
	add(s[:])
	add(d[:])
	sum += unix.IPPROTO_TCP + uint32(len(h))
	add(h)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(h[16:], ^uint16(sum))
	return h
}

// parseTCP reads an IPv4 packet's source address, TCP source port and
// flags.
func parseTCP(p []byte) (src netip.Addr, sport uint16, flags byte, ok bool) {
	if len(p) < 20 || p[0]>>4 != 4 {
		return src, 0, 0, false
	}
	ihl := int(p[0]&0xf) * 4
	if p[9] != unix.IPPROTO_TCP || len(p) < ihl+14 {
		return src, 0, 0, false
	}
	src = netip.AddrFrom4([4]byte(p[12:16]))
	return src, binary.BigEndian.Uint16(p[ihl:]), p[ihl+13], true
}
