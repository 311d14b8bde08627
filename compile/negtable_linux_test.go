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
	"github.com/pfcarp/pfcarp/pfconf"
)

// TestKernelNegatedTable loads "block in quick from <t>" with a table of
// a network and negated entries inside it, one inline and one from the
// table's file, and connects from addresses of each kind: the network's
// are blocked, the negated ones pass, as pf's most specific entry decides.
func TestKernelNegatedTable(t *testing.T) {
	testenv.RequireRoot(t)
	srv := nfttest.Named(t, fmt.Sprintf("pa-neg-%d-0", os.Getpid()))
	cli := nfttest.Named(t, fmt.Sprintf("pa-neg-%d-1", os.Getpid()))
	nfttest.Link(t, srv, "eth0", netip.MustParsePrefix("192.0.2.1/24"), cli, "eth0", netip.MustParsePrefix("192.0.2.2/24"))
	for _, a := range []string{"192.0.2.3/24", "192.0.2.9/24", "192.0.2.10/24"} {
		cli.AddrUp(t, "eth0", netip.MustParsePrefix(a))
	}
	src := `table <t> { 192.0.2.0/29, !192.0.2.2 }
table <f> file "/etc/f"
pass
block in quick from <t>
block in quick from <f>
`
	f, err := pfconf.Parse("pf.conf", []byte(src), pfconf.ParseOptions{ReadFile: func(p string) ([]byte, error) {
		if p != "/etc/f" {
			return nil, fmt.Errorf("no file %s", p)
		}
		return []byte("192.0.2.8/30\n!192.0.2.9\n"), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := pfconf.Expand(f, testHost)
	if err != nil {
		t.Fatal(err)
	}
	prog, err := Compile(rs, Options{Host: testHost})
	if err != nil {
		t.Fatal(err)
	}
	if err := nft.Open(nft.WithNetNS(srv.FD())).Load(prog); err != nil {
		t.Fatalf("load: %v\n%s", err, prog)
	}
	srv.Serve(t, netip.MustParseAddrPort("192.0.2.1:80"), "hi")
	for _, c := range []struct {
		src  string
		pass bool
	}{
		{"192.0.2.2", true},   // !192.0.2.2 inline
		{"192.0.2.3", false},  // in 192.0.2.0/29
		{"192.0.2.9", true},   // !192.0.2.9 from the file
		{"192.0.2.10", false}, // in 192.0.2.8/30
	} {
		got, err := cli.Get(netip.MustParseAddr(c.src), netip.MustParseAddrPort("192.0.2.1:80"), time.Second)
		if c.pass && (err != nil || got != "hi") {
			t.Errorf("from %s: %q, %v; want it to pass (negated entry)", c.src, got, err)
		}
		if !c.pass && err == nil {
			t.Errorf("from %s: connected (%q); want it blocked by the table", c.src, got)
		}
	}
}
