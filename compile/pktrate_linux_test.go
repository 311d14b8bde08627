package compile

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pfcarp/pfcarp/internal/testenv"
	"github.com/pfcarp/pfcarp/nft"
)

// TestKernelMaxPktRate loads "pass ... max-pkt-rate 10/10" after a block
// of the same packets and sends 40 UDP datagrams at once: the first 10
// pass (the bucket), the rest meet the block (the rule stops matching);
// one more may pass if a second elapses while sending (the refill, 1 per
// second). The warning names what differs from pf.
func TestKernelMaxPktRate(t *testing.T) {
	testenv.RequireRoot(t)
	a, b := netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("192.0.2.2/24")
	hs, _ := testenv.TwoHosts(t, "par", a, b)
	prog, err := Compile(ruleset(t, `
pass
block in proto udp to port 9999
pass in proto udp to port 9999 max-pkt-rate 10/10 no state
`), Options{Host: testHost})
	if err != nil {
		t.Fatal(err)
	}
	if len(prog.Warnings) != 1 || !strings.Contains(prog.Warnings[0], "max-pkt-rate 10/10: loaded as a kernel packet limit") {
		t.Errorf("warnings: %q", prog.Warnings)
	}
	if err := nft.Open(nft.WithNetNS(int(hs[0]))).Load(prog); err != nil {
		t.Fatalf("load: %v\n%s", err, prog)
	}
	var ln *net.UDPConn
	testenv.In(t, hs[0], func() {
		ln, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.1:9999")))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var c net.Conn
	testenv.In(t, hs[1], func() { c, err = net.Dial("udp4", "192.0.2.1:9999") })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 40; i++ {
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	got := 0
	buf := make([]byte, 64)
	for {
		ln.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err := ln.Read(buf); err != nil {
			break
		}
		got++
	}
	t.Logf("%d of 40 datagrams passed", got)
	if got < 10 || got > 11 {
		t.Errorf("%d of 40 datagrams passed, want the bucket's 10 (11 if a second elapsed)", got)
	}
}
