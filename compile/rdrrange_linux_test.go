package compile

import (
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/pfcarp/pfcarp/internal/testenv"
	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/nft/nfttest"
)

// TestKernelRdrPortRange loads rdr rules to port ranges and connects to
// each redirected port: pf's mapping, the offset from the rule's first port
// modulo the target range's size, decides which server answers; a range
// that maps onto itself keeps the port.
func TestKernelRdrPortRange(t *testing.T) {
	testenv.RequireRoot(t)
	srv := nfttest.Named(t, fmt.Sprintf("pa-rdr-%d-0", os.Getpid()))
	cli := nfttest.Named(t, fmt.Sprintf("pa-rdr-%d-1", os.Getpid()))
	nfttest.Link(t, srv, "eth0", netip.MustParsePrefix("192.0.2.1/24"), cli, "eth0", netip.MustParsePrefix("192.0.2.2/24"))
	srv.AddrUp(t, "eth0", netip.MustParsePrefix("192.0.2.5/24"))
	prog, err := Compile(ruleset(t, `
rdr on eth0 proto tcp to 192.0.2.1 port 8080:8081 -> 192.0.2.5 port 9080:*
rdr on eth0 proto tcp to 192.0.2.1 port 6000:6003 -> 192.0.2.5 port 9080:9081
rdr on eth0 proto tcp to 192.0.2.1 port 9080:9081 -> 192.0.2.5 port 9080:9081
pass
`), Options{Host: testHost})
	if err != nil {
		t.Fatal(err)
	}
	if err := nft.Open(nft.WithNetNS(srv.FD())).Load(prog); err != nil {
		t.Fatalf("load: %v\n%s", err, prog)
	}
	srv.Serve(t, netip.MustParseAddrPort("192.0.2.5:9080"), "a")
	srv.Serve(t, netip.MustParseAddrPort("192.0.2.5:9081"), "b")
	srv.Serve(t, netip.MustParseAddrPort("192.0.2.1:9080"), "not redirected")
	for port, want := range map[uint16]string{8080: "a", 8081: "b", 6000: "a", 6001: "b", 6002: "a", 6003: "b", 9080: "a", 9081: "b"} {
		got, err := cli.Get(netip.Addr{}, netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), port), 2*time.Second)
		if err != nil || got != want {
			t.Errorf("port %d: %q, %v; want %q", port, got, err, want)
		}
	}
}
