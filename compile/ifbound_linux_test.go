package compile

import (
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/nft/nfttest"
)

// udpSink receives datagrams on addr in ns, records their payloads and
// sends each back.
type udpSink struct {
	mu  sync.Mutex
	got map[string]bool
}

func newUDPSink(t *testing.T, ns *nfttest.NS, addr string) *udpSink {
	t.Helper()
	var pc net.PacketConn
	ns.Exec(t, "listen udp "+addr, func() (err error) {
		pc, err = net.ListenPacket("udp", addr)
		return err
	})
	s := &udpSink{got: map[string]bool{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from) // a reply: the flow is established
			s.mu.Lock()
			s.got[string(buf[:n])] = true
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return s
}

func (s *udpSink) has(p string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[p]
}

// sendUDP sends payload from src to dst inside ns.
func sendUDP(t *testing.T, ns *nfttest.NS, src, dst netip.AddrPort, payload string) {
	t.Helper()
	err := ns.Do(func() error {
		c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(src), net.UDPAddrFromAddrPort(dst))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte(payload))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// An if-bound state created on eth0 is not matched by packets of its
// connection that arrive on eth3 (a host behind eth3 using the client's
// address and port): they meet the rules, which block them. With a
// floating state (the control) the same packets pass.
func TestKernelIfBound(t *testing.T) {
	for _, policy := range []string{"if-bound", "floating"} {
		t.Run(policy, func(t *testing.T) {
			b := newBed(t)
			sink := newUDPSink(t, b.s1, "198.51.100.20:5353")
			spoof := netip.MustParsePrefix("192.0.2.100/32")
			b.s2.AddrUp(t, "s0", spoof)
			// the router must not drop the datagram from behind eth3 for its
			// source (reverse path filtering): that is not what is tested
			b.router.Sysctl(t, "net.ipv4.conf.all.rp_filter", "0")
			b.router.Sysctl(t, "net.ipv4.conf.eth3.rp_filter", "0")
			// rule 0 counts what the rules see of the flow entering on
			// eth3 (a packet the state passes never reaches it); "block
			// all" alone also counted the interfaces' own IPv6 router
			// solicitations and reports, which made the control fail now
			// and then
			b.load(t, `
set skip on lo
block in quick on eth3 proto udp to 198.51.100.20 port 5353
block all
pass in on eth0 proto udp to 198.51.100.20 port 5353 keep state (`+policy+`)
pass out on eth1 proto udp keep state
`)
			src := netip.MustParseAddrPort("192.0.2.100:40000")
			dst := netip.MustParseAddrPort("198.51.100.20:5353")
			sendUDP(t, b.client, src, dst, "from eth0")
			deadline := time.Now().Add(5 * time.Second)
			for !sink.has("from eth0") {
				if time.Now().After(deadline) {
					t.Fatal("the connection's first datagram (through eth0) did not arrive")
				}
				time.Sleep(10 * time.Millisecond)
			}
			for {
				fl := flowsTo(t, b, src.Addr(), dst)
				if len(fl) == 1 && fl[0].Status.SeenReply() {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the flow saw no reply: %v", fl)
				}
				time.Sleep(10 * time.Millisecond)
			}
			blocked := func() uint64 {
				rs, err := b.conn.Read()
				if err != nil {
					t.Fatal(err)
				}
				if st := rs.Stats[nft.Ref{Kind: nft.KindFilter, Nr: 0}]; st != nil {
					return st.Matched.Packets
				}
				return 0
			}
			before := blocked()
			// the same flow from behind eth3
			sendUDP(t, b.s2, src, dst, "from eth3")
			for {
				if sink.has("from eth3") {
					if policy == "if-bound" {
						t.Fatal("if-bound: a datagram of the state entering on eth3 passed")
					}
					return
				}
				if blocked() > before {
					if policy == "floating" {
						t.Fatal("floating (the control): the datagram entering on eth3 was blocked; the test cannot see a difference")
					}
					return
				}
				if time.Now().After(deadline) {
					t.Fatal("the datagram from behind eth3 was neither blocked nor delivered")
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}
