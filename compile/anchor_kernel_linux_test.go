package compile

import (
	"errors"
	"net/netip"
	"strings"
	"syscall"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/pfconf"
)

// loadAnchor compiles src as anchor path and installs it alone.
func (b *bed) loadAnchor(t testing.TB, path, src string) {
	t.Helper()
	f, err := pfconf.Parse(path+".conf", []byte(src), pfconf.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := pfconf.Expand(f, testHost)
	if err != nil {
		t.Fatal(err)
	}
	prog, err := CompileAnchor(path, rs, Options{RuleText: RuleTexts(rs)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.conn.LoadAnchor(prog); err != nil {
		t.Fatalf("load anchor %s: %v\n%s", path, err, prog)
	}
}

// expectPass and expectRefused check one connection: answered by want, or
// refused by a block return rule.
func (b *bed) expectPass(t *testing.T, what string, src netip.Addr, dst, want string) {
	t.Helper()
	if got, err := b.get(src, dst); err != nil || got != want {
		t.Fatalf("%s: from %s to %s: got %q, %v; want %q", what, src, dst, got, err, want)
	}
}

func (b *bed) expectRefused(t *testing.T, what string, src netip.Addr, dst string) {
	t.Helper()
	if got, err := b.get(src, dst); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("%s: from %s to %s: got %q, %v; want refused (block return)", what, src, dst, got, err)
	}
}

// TestKernelAnchorEvaluation: an anchor's rules are evaluated in place,
// with pf's last match across the anchor boundary.
func TestKernelAnchorEvaluation(t *testing.T) {
	b := newBed(t)
	b.load(t, `
set skip on lo
pass in on eth0 proto tcp to 198.51.100.20 port 80
anchor "a" in on eth0 {
  block return in proto tcp to 198.51.100.20 port 80
  block return in quick proto tcp from 192.0.2.101 to 198.51.100.20 port 80
}
pass in on eth0 proto tcp from { 192.0.2.100, 192.0.2.101 } to 198.51.100.20 port 80
anchor "q" in quick on eth0 {
  block return in proto tcp to port 7
}
pass in on eth0 proto tcp to port 7
`)
	// A: the pass after the anchor overrides the block inside it.
	b.expectPass(t, "rule after the anchor", clientA, "198.51.100.20:80", "s1")
	// B: the quick block inside the anchor ends evaluation; the later
	// pass is never reached.
	b.expectRefused(t, "quick rule inside the anchor", clientB, "198.51.100.20:80")
	// .66: the block inside the anchor overrides the pass before it and
	// no later rule matches.
	b.expectRefused(t, "anchor rule after a main rule", clientBad, "198.51.100.20:80")
	// anchor quick: a match inside is final although a later rule
	// matches too.
	b.expectRefused(t, "anchor quick", clientA, "198.51.100.20:7")
}

// chainState is the handle and packet count of each rule of a chain.
func chainState(t *testing.T, b *bed, chain string) (handles []uint64, packets []uint64) {
	t.Helper()
	nc, err := nftables.New(nftables.WithNetNSFd(b.router.FD()))
	if err != nil {
		t.Fatal(err)
	}
	tbl := &nftables.Table{Name: nft.TableName, Family: nftables.TableFamilyINet}
	rules, err := nc.GetRules(tbl, &nftables.Chain{Name: chain, Table: tbl})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		handles = append(handles, r.Handle)
		var n uint64
		for _, e := range r.Exprs {
			if c, ok := e.(*expr.Counter); ok {
				n = c.Packets
				break
			}
		}
		packets = append(packets, n)
	}
	return handles, packets
}

// TestKernelAnchorWildcard: children of a wildcard anchor loaded after the
// main ruleset are enforced at once, without touching the main rules; the
// main ruleset's reload keeps them; flushing one leaves the others.
func TestKernelAnchorWildcard(t *testing.T) {
	b := newBed(t)
	const main = `
set skip on lo
pass in on eth0 proto tcp to port 80
anchor "relayd/*" in on eth0
`
	b.load(t, main)
	b.expectPass(t, "no child yet", clientA, "198.51.100.20:80", "s1")
	h0, c0 := chainState(t, b, ChainFilterIn)

	b.loadAnchor(t, "relayd/web", "block return in quick proto tcp to port 80\n")
	b.expectRefused(t, "child loaded later", clientA, "198.51.100.20:80")
	h1, c1 := chainState(t, b, ChainFilterIn)
	if len(h1) != len(h0) {
		t.Fatalf("main chain changed: %d rules, had %d", len(h1), len(h0))
	}
	for i := range h0 {
		if h1[i] != h0[i] || c1[i] < c0[i] {
			t.Fatalf("main rule %d: handle %d -> %d, packets %d -> %d: the anchor load touched it", i, h0[i], h1[i], c0[i], c1[i])
		}
	}
	if c1[0] <= c0[0] {
		t.Fatalf("main rules did not see the refused connection: packets %v -> %v", c0, c1)
	}

	// A second child, sorted before "web": its quick pass for B wins.
	b.loadAnchor(t, "relayd/aaa", "pass in quick proto tcp from 192.0.2.101 to port 80\n")
	b.expectPass(t, "earlier child's quick pass", clientB, "198.51.100.20:80", "s1")
	b.expectRefused(t, "later child still enforced", clientA, "198.51.100.20:80")

	// Reloading the main ruleset keeps anchors it does not define.
	b.load(t, main)
	b.expectRefused(t, "child after the main ruleset's reload", clientA, "198.51.100.20:80")
	rs, err := nft.Open(nft.WithNetNS(b.router.FD()), nft.WithAnchor("relayd/web")).Read()
	if err != nil || len(rs.Records) != 1 || rs.Records[0].Text != "block return in quick proto tcp from any to any port = http" {
		t.Fatalf("anchor records: %+v, %v", rs, err)
	}

	// Flush one anchor: the other stays.
	if n, err := nft.Open(nft.WithNetNS(b.router.FD()), nft.WithAnchor("relayd/web")).FlushKinds(nft.KindScrub, nft.KindFilter); err != nil || n != 1 {
		t.Fatalf("flush: %d, %v", n, err)
	}
	b.expectPass(t, "flushed anchor", clientA, "198.51.100.20:80", "s1")
	b.expectPass(t, "other anchor", clientB, "198.51.100.20:80", "s1")
	if rs, err := nft.Open(nft.WithNetNS(b.router.FD()), nft.WithAnchor("relayd/aaa")).Read(); err != nil || len(rs.Records) != 1 {
		t.Fatalf("other anchor after flush: %+v, %v", rs, err)
	}
	if rs, err := b.conn.Read(); err != nil || len(rs.Records) != 2 {
		t.Fatalf("main ruleset after anchor flush: %+v, %v", rs, err)
	}
}

// TestKernelRdrAnchor: an rdr rule and a table in a child anchor of
// rdr-anchor "relayd/*", as relayd installs them.
func TestKernelRdrAnchor(t *testing.T) {
	b := newBed(t)
	b.load(t, `
set skip on lo
nat-anchor "relayd/*"
rdr-anchor "relayd/*"
anchor "relayd/*"
pass in on eth0 proto tcp to port 80
`)
	b.expectPass(t, "no nat yet", clientA, "198.51.100.20:7", clientA.String())
	if _, err := b.get(clientA, "192.0.2.51:80"); err == nil {
		t.Fatal("VIP port 80 answered before any rdr")
	}
	b.loadAnchor(t, "relayd/web", `
table <web> { 198.51.100.150 }
table <bad> { 192.0.2.66 }
rdr on eth0 proto tcp to 192.0.2.51 port 80 -> <web>
nat on eth1 from 192.0.2.0/24 to any -> 198.51.100.1
block return in quick proto tcp from <bad> to any
`)
	b.expectPass(t, "nat in the anchor", clientA, "198.51.100.20:7", "198.51.100.1")
	b.expectPass(t, "rdr in the anchor", clientA, "192.0.2.51:80", "s2")
	b.expectRefused(t, "anchor table", clientBad, "192.0.2.51:80")
	c := nft.Open(nft.WithNetNS(b.router.FD()), nft.WithAnchor("relayd/web"))
	if names, err := c.Tables(); err != nil || len(names) != 2 || names[0] != "bad" || names[1] != "web" {
		t.Fatalf("anchor tables: %v, %v", names, err)
	}
	if names, err := b.conn.Tables(); err != nil || len(names) != 0 {
		t.Fatalf("main tables: %v, %v", names, err)
	}
	if _, err := c.ChangeTable("bad", nft.TableFlush, nil); err != nil {
		t.Fatal(err)
	}
	b.expectPass(t, "anchor table flushed", clientBad, "192.0.2.51:80", "s2")
	// -F nat on the anchor: the VIP is no longer redirected.
	if _, err := c.FlushKinds(nft.KindNAT, nft.KindRDR, nft.KindBINAT); err != nil {
		t.Fatal(err)
	}
	if got, err := b.get(clientB, "192.0.2.51:80"); err == nil {
		t.Fatalf("rdr after flushing the anchor's nat: %q", got)
	}
}

// TestKernelAnchorMainReload: inline anchors belong to the main ruleset's
// load; anchors loaded on their own survive it and are evaluated once a
// rule calls them.
func TestKernelAnchorMainReload(t *testing.T) {
	b := newBed(t)
	b.load(t, "set skip on lo\nanchor \"a\" in on eth0 {\n  block return in proto tcp to port 80\n}\n")
	b.expectRefused(t, "inline anchor", clientA, "198.51.100.20:80")
	b.load(t, "set skip on lo\npass all\n")
	b.expectPass(t, "inline anchor gone with the main ruleset", clientA, "198.51.100.20:80", "s1")
	b.loadAnchor(t, "a", "block return in quick proto tcp to port 80\n")
	b.expectPass(t, "anchor nobody calls", clientA, "198.51.100.20:80", "s1")
	b.load(t, "set skip on lo\npass all\nanchor \"a\"\n")
	b.expectRefused(t, "anchor called by the reloaded main ruleset", clientA, "198.51.100.20:80")
	anchors, err := b.conn.Anchors()
	if err != nil || strings.Join(anchors, " ") != "a" {
		t.Fatalf("anchors: %v, %v", anchors, err)
	}
}

// TestKernelAnchorRdrTo: a pass rule with rdr-to in a child of
// anchor "relayd/*" (how OpenBSD's relayd writes its redirections).
func TestKernelAnchorRdrTo(t *testing.T) {
	b := newBed(t)
	b.load(t, "set skip on lo\nanchor \"relayd/*\"\n")
	b.loadAnchor(t, "relayd/web", "pass in quick on eth0 proto tcp to 192.0.2.51 port 80 rdr-to 198.51.100.150\n"+
		"block return in quick on eth0 proto tcp from 192.0.2.101 to 192.0.2.51 port 8080 rdr-to 198.51.100.20 port 80\n")
	b.expectPass(t, "rdr-to in the anchor", clientA, "192.0.2.51:80", "s2")
	b.expectRefused(t, "block with rdr-to in the anchor", clientB, "192.0.2.51:8080")
}

// TestKernelAnchorLoop: an anchor that calls itself is refused by the
// kernel; the loaded ruleset stays as it was.
func TestKernelAnchorLoop(t *testing.T) {
	b := newBed(t)
	b.load(t, "set skip on lo\nanchor \"a\" in on eth0 {\n  block return in proto tcp to port 80\n}\n")
	f, err := pfconf.Parse("pf.conf", []byte("anchor \"b\" {\n  anchor \"/b\"\n  pass all\n}\n"), pfconf.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := pfconf.Expand(f, testHost)
	if err != nil {
		t.Fatal(err)
	}
	prog, err := Compile(rs, Options{RuleText: RuleTexts(rs)})
	if err != nil {
		t.Fatal(err)
	}
	err = b.conn.Load(prog)
	var le *nft.LoadError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "anchors call each other in a loop") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("self-calling anchor: %v, want a LoadError about the loop", err)
	}
	t.Logf("refused: %v", err)
	b.expectRefused(t, "ruleset after the refused load", clientA, "198.51.100.20:80")
}
