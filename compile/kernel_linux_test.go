package compile

import (
	"errors"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pfcarp/pfcarp/internal/testenv"
	"github.com/pfcarp/pfcarp/netdb"
	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/nft/nfttest"
	"github.com/pfcarp/pfcarp/pfconf"
)

// bed is a client, a router running the compiled ruleset, and two servers:
//
//	client c0 192.0.2.100,.101,.66 ---- eth0 192.0.2.1 (+ VIP .51) router eth1 198.51.100.1 ---- s1 .20 / s2 .21 (bridged by veths)
type bed struct {
	client, router, s1, s2 *nfttest.NS
	conn                   *nft.Conn
}

var (
	vip       = netip.MustParseAddr("192.0.2.51")
	clientA   = netip.MustParseAddr("192.0.2.100")
	clientB   = netip.MustParseAddr("192.0.2.101")
	clientBad = netip.MustParseAddr("192.0.2.66")
)

func newBed(t *testing.T) *bed { return newBedB(t) }

func newBedB(t testing.TB) *bed {
	testenv.RequireRoot(t)
	b := &bed{
		client: nfttest.New(t, "cli"),
		router: nfttest.New(t, "rtr"),
		s1:     nfttest.New(t, "s1"),
		s2:     nfttest.New(t, "s2"),
	}
	nfttest.Link(t, b.client, "c0", netip.MustParsePrefix("192.0.2.100/24"), b.router, "eth0", netip.MustParsePrefix("192.0.2.1/24"))
	b.client.AddrUp(t, "c0", netip.MustParsePrefix("192.0.2.101/24"))
	b.client.AddrUp(t, "c0", netip.MustParsePrefix("192.0.2.66/24"))
	b.router.AddrUp(t, "eth0", netip.MustParsePrefix("192.0.2.51/24"))
	nfttest.Link(t, b.router, "eth1", netip.MustParsePrefix("198.51.100.1/25"), b.s1, "s0", netip.MustParsePrefix("198.51.100.20/25"))
	nfttest.Link(t, b.router, "eth3", netip.MustParsePrefix("198.51.100.129/25"), b.s2, "s0", netip.MustParsePrefix("198.51.100.150/25"))
	b.client.DefaultRoute(t, netip.MustParseAddr("192.0.2.1"))
	b.s1.DefaultRoute(t, netip.MustParseAddr("198.51.100.1"))
	b.s2.DefaultRoute(t, netip.MustParseAddr("198.51.100.129"))
	b.router.Sysctl(t, "net.ipv4.ip_forward", "1")
	b.s1.Serve(t, netip.MustParseAddrPort("198.51.100.20:80"), "s1")
	b.s2.Serve(t, netip.MustParseAddrPort("198.51.100.150:80"), "s2")
	b.s1.Serve(t, netip.MustParseAddrPort("198.51.100.20:7"), "")
	b.s2.Serve(t, netip.MustParseAddrPort("198.51.100.150:7"), "")
	b.conn = nft.Open(nft.WithNetNS(b.router.FD()))
	return b
}

// load compiles src for the router and loads it.
func (b *bed) load(t testing.TB, src string) {
	t.Helper()
	host := &netdb.Fixed{Interfaces: []netdb.Interface{
		{Name: "lo", Addrs: []netdb.IfAddr{{Prefix: netip.MustParsePrefix("127.0.0.1/8")}}},
		{Name: "eth0", Addrs: []netdb.IfAddr{{Prefix: netip.MustParsePrefix("192.0.2.1/24")}, {Prefix: netip.MustParsePrefix("192.0.2.51/24")}}},
		{Name: "eth1", Addrs: []netdb.IfAddr{{Prefix: netip.MustParsePrefix("198.51.100.1/25")}}},
		{Name: "eth3", Addrs: []netdb.IfAddr{{Prefix: netip.MustParsePrefix("198.51.100.129/25")}}},
	}}
	f, err := pfconf.Parse("pf.conf", []byte(src), pfconf.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := pfconf.Expand(f, host)
	if err != nil {
		t.Fatal(err)
	}
	prog, err := Compile(rs, Options{RuleText: RuleTexts(rs)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.conn.Load(prog); err != nil {
		t.Fatalf("load: %v\n%s", err, prog)
	}
}

func (b *bed) get(src netip.Addr, dst string) (string, error) {
	return b.client.Get(src, netip.MustParseAddrPort(dst), 2*time.Second)
}

const bedConf = `
ext_if = "eth0"
int_if = "{ eth1, eth3 }"
table <blocked> { 192.0.2.66 }
set skip on lo
nat on eth1 inet from 192.0.2.0/24 to any -> (eth1)
rdr on $ext_if proto tcp from any to 192.0.2.51 port 80 -> { 198.51.100.20, 198.51.100.150 } round-robin sticky-address
rdr on $ext_if proto tcp from any to 192.0.2.51 port 8080 -> 198.51.100.20 port 80
block in quick on $ext_if from <blocked> to any
block return in on $ext_if proto tcp to port 81
block in on $ext_if proto tcp to port 8080
pass in on $ext_if proto tcp from 192.0.2.100 to port 8080
`

func TestKernelSeedLike(t *testing.T) {
	b := newBed(t)
	b.load(t, bedConf)

	// Round-robin with sticky-address: A gets the first backend, B the
	// next, A again its own.
	for _, step := range []struct {
		src  netip.Addr
		want string
	}{{clientA, "s1"}, {clientB, "s2"}, {clientA, "s1"}, {clientB, "s2"}} {
		got, err := b.get(step.src, "192.0.2.51:80")
		if err != nil || got != step.want {
			t.Fatalf("from %s: got %q, %v; want %q", step.src, got, err, step.want)
		}
	}
	// rdr happens before filtering: the rules on port 8080 (block, then
	// pass for A only) never see the translated packet (port 80), so B
	// gets through too, as in pf.
	if got, err := b.get(clientB, "192.0.2.51:8080"); err != nil || got != "s1" {
		t.Fatalf("rdr to a port: %q, %v", got, err)
	}
	// Quick block by table: dropped (times out).
	if _, err := b.get(clientBad, "192.0.2.51:80"); err == nil {
		t.Fatal("source in <blocked> got through")
	}
	// block return: refused at once.
	if _, err := b.get(clientA, "192.0.2.1:81"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("block return: %v, want connection refused", err)
	}
	// nat on eth1 (masquerade): s1 sees the router's address; eth3 has
	// no nat, so s2 sees the client.
	if got, err := b.get(clientA, "198.51.100.20:7"); err != nil || got != "198.51.100.1" {
		t.Fatalf("nat to (eth1): s1 saw %q, %v", got, err)
	}
	if got, err := b.get(clientA, "198.51.100.150:7"); err != nil || got != clientA.String() {
		t.Fatalf("no nat on eth3: s2 saw %q, %v", got, err)
	}
	// Run-time table change: B is blocked from now on.
	if _, err := b.conn.ChangeTable("blocked", nft.TableAdd, []netip.Prefix{netip.PrefixFrom(clientB, 32)}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.get(clientB, "192.0.2.51:80"); err == nil {
		t.Fatal("source added to <blocked> got through")
	}
	rs, err := b.conn.Read()
	if err != nil {
		t.Fatal(err)
	}
	st := rs.Stats[nft.Ref{Kind: nft.KindRDR, Nr: 0}]
	if st == nil || st.Matched.Packets < 2 {
		t.Fatalf("rdr 0 counters: %+v", st)
	}
	var texts []string
	for _, r := range rs.Records {
		texts = append(texts, r.Kind.String()+" "+r.Text)
	}
	if !strings.Contains(strings.Join(texts, "\n"), "rdr on eth0 inet proto tcp from any to 192.0.2.51 port = http -> { 198.51.100.20, 198.51.100.150 } round-robin sticky-address") {
		t.Errorf("records do not hold the rule text:\n%s", strings.Join(texts, "\n"))
	}
}

func TestKernelNoStateAndQuick(t *testing.T) {
	b := newBed(t)
	// Default block; the client may reach s1 on 80 with state. Replies
	// pass by state only.
	b.load(t, `
set skip on lo
block all
pass in on eth0 proto tcp from any to 198.51.100.20 port 80 keep state
pass out on eth1 proto tcp from any to 198.51.100.20 port 80 keep state
pass in quick on eth0 proto tcp from 192.0.2.101 to any port 80 no state
`)
	if got, err := b.get(clientA, "198.51.100.20:80"); err != nil || got != "s1" {
		t.Fatalf("keep state: %q, %v", got, err)
	}
	// B's packets pass in by the quick no-state rule; the out rule keeps
	// state for them, and the replies pass by that state.
	if got, err := b.get(clientB, "198.51.100.20:80"); err != nil || got != "s1" {
		t.Fatalf("quick no state in, keep state out: %q, %v", got, err)
	}
	// s2 is not allowed.
	if _, err := b.get(clientA, "198.51.100.150:80"); err == nil {
		t.Fatal("block all let a connection to s2 through")
	}
	// With only stateless passes, replies are blocked.
	b.load(t, `
set skip on lo
block all
pass in on eth0 proto tcp from any to 198.51.100.20 port 80 no state
pass out on eth1 proto tcp from any to 198.51.100.20 port 80 no state
`)
	if _, err := b.get(clientA, "198.51.100.20:80"); err == nil {
		t.Fatal("replies of a no-state connection passed without a rule")
	}
}
