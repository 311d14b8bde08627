package nft_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/pfcarp/pfcarp/internal/testenv"
	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/nft/nfttest"
)

// addr4 returns 10.0.0.0 + i.
func addr4(i uint32) netip.Addr {
	v := 10<<24 + i
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// loadBigTable loads testProgram with table <web> holding ps.
func loadBigTable(t testing.TB, c *nft.Conn, ps []netip.Prefix) {
	t.Helper()
	if err := c.Load(testProgramWith(ps)); err != nil {
		t.Fatalf("Load: %v", err)
	}
}

// testProgramWith is testProgram (accepting) with ps in table <web>.
func testProgramWith(ps []netip.Prefix) *nft.Program {
	p := testProgram(&expr.Verdict{Kind: expr.VerdictAccept}, *nftables.ChainHookPrerouting)
	var v4, v6 []netip.Prefix
	for _, x := range ps {
		if x.Addr().Is4() {
			v4 = append(v4, x)
		} else {
			v6 = append(v6, x)
		}
	}
	p.Sets[0].Prefixes, p.Sets[1].Prefixes = v4, v6
	return p
}

// ranges returns the table's contents, merged (the kernel may hold
// adjacent intervals apart).
func ranges(t testing.TB, c *nft.Conn) []nft.Range {
	t.Helper()
	rs, err := c.TableRanges("web")
	if err != nil {
		t.Fatal(err)
	}
	return nft.MergeRanges(rs)
}

// TestTableOpsLarge checks -T test and -T delete (which ask the kernel for
// single elements instead of reading the set) against a model, on a table
// of 20,000 unmergeable addresses, some networks and IPv6.
func TestTableOpsLarge(t *testing.T) {
	testenv.RequireRoot(t)
	ns := nfttest.New(t, "nft")
	c := nft.Open(nft.WithNetNS(ns.FD()))
	var ps []netip.Prefix
	for i := uint32(0); i < 20000; i++ {
		ps = append(ps, netip.PrefixFrom(addr4(2*i), 32))
	}
	for _, s := range []string{"192.0.2.0/25", "192.0.2.128/25", "198.51.100.0/24", "2001:db8::/64", "2001:db8:0:1::/64", "255.255.255.0/24"} {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	loadBigTable(t, c, ps)
	model := nft.MergePrefixes(append([]netip.Prefix(nil), ps...))
	if got := ranges(t, c); fmt.Sprint(got) != fmt.Sprint(model) {
		t.Fatalf("loaded %d ranges, want %d", len(got), len(model))
	}

	rng := rand.New(rand.NewPCG(1, 2))
	randAddr := func() netip.Addr {
		switch rng.IntN(6) {
		case 0:
			return netip.MustParseAddr("192.0.2.0").Next().Next() // inside a merged interval
		case 1:
			return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, byte(rng.IntN(3)), 15: byte(rng.IntN(256))})
		case 2:
			return netip.AddrFrom4([4]byte{255, 255, 255, byte(rng.IntN(256))})
		}
		return addr4(uint32(rng.IntN(40010)))
	}
	checkTest := func(step string) {
		t.Helper()
		var as []netip.Addr
		for range 300 {
			as = append(as, randAddr())
		}
		got, err := c.TableTest("web", as)
		if err != nil {
			t.Fatalf("%s: TableTest: %v", step, err)
		}
		for i, a := range as {
			if want := nft.RangesContain(model, a); got[i] != want {
				t.Fatalf("%s: TableTest(%s) = %v, want %v", step, a, got[i], want)
			}
		}
	}
	checkTest("after load")

	deletes := [][]string{
		{"10.0.0.2"},                    // an entry
		{"10.0.0.3"},                    // not in the table
		{"192.0.2.5"},                   // splits a merged interval
		{"192.0.2.128/25"},              // the end of one
		{"198.51.100.0/26", "10.0.0.4"}, // two at once
		{"2001:db8::1"},
		{"255.255.255.255"},                  // the last address (no end element)
		{"10.0.0.6/31", "10.0.0.8"},          // an entry as a network
		{"10.0.0.0/28"},                      // spans entries: reads the table
		{"192.0.2.0/24"},                     // spans pieces of a split interval
		{"198.51.100.100", "198.51.100.200"}, // two in one interval
	}
	for _, d := range deletes {
		var del []netip.Prefix
		wantChanged := 0
		for _, s := range d {
			p := mustPrefix(s)
			del = append(del, p)
			r := nft.MergePrefixes([]netip.Prefix{p})
			if left := nft.SubtractRanges(r, model); len(left) != 1 || left[0] != r[0] {
				wantChanged++
			}
		}
		model = nft.SubtractRanges(model, nft.MergePrefixes(append([]netip.Prefix(nil), del...)))
		n, err := c.ChangeTable("web", nft.TableDelete, del)
		if err != nil {
			t.Fatalf("delete %v: %v", d, err)
		}
		if n != wantChanged {
			t.Errorf("delete %v: %d deleted, want %d", d, n, wantChanged)
		}
		if got := ranges(t, c); fmt.Sprint(got) != fmt.Sprint(model) {
			t.Fatalf("after delete %v: %d ranges, want %d; differences near the start: %v", d, len(got), len(model), firstDiff(got, model))
		}
		checkTest(fmt.Sprint("after delete ", d))
	}

	// An address added next to an interval stays a separate element and
	// is deleted exactly; adding it again is an add.
	for range 2 {
		a := []netip.Prefix{netip.MustParsePrefix("10.0.0.31/32")}
		if n, err := c.ChangeTable("web", nft.TableAdd, a); err != nil || n != 1 {
			t.Fatalf("add 10.0.0.31: %d, %v", n, err)
		}
		if ok, err := c.TableTest("web", []netip.Addr{a[0].Addr()}); err != nil || !ok[0] {
			t.Fatalf("test after add: %v %v", ok, err)
		}
		if n, err := c.ChangeTable("web", nft.TableDelete, a); err != nil || n != 1 {
			t.Fatalf("delete 10.0.0.31: %d, %v", n, err)
		}
		if got := ranges(t, c); fmt.Sprint(got) != fmt.Sprint(model) {
			t.Fatalf("after add and delete of 10.0.0.31: %v", firstDiff(got, model))
		}
	}

	if n, err := c.ChangeTable("web", nft.TableFlush, nil); err != nil || n != countEntries(model) {
		t.Fatalf("flush: %d, %v; want %d", n, err, countEntries(model))
	}
	if got, err := c.TableTest("web", []netip.Addr{addr4(10)}); err != nil || got[0] {
		t.Fatalf("test after flush: %v, %v", got, err)
	}
	if _, err := c.TableTest("nope", []netip.Addr{addr4(10)}); err == nil {
		t.Fatal("TableTest of a missing table succeeded")
	}
}

// mustPrefix parses a network or a single address.
func mustPrefix(s string) netip.Prefix {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p
	}
	a := netip.MustParseAddr(s)
	return netip.PrefixFrom(a, a.BitLen())
}

func countEntries(rs []nft.Range) int {
	n := 0
	for _, r := range rs {
		n += len(nft.RangePrefixes(r))
	}
	return n
}

func firstDiff(a, b []nft.Range) string {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return fmt.Sprintf("range %d: %v, want %v", i, a[i], b[i])
		}
	}
	return fmt.Sprintf("lengths %d and %d", len(a), len(b))
}

// TestFlushLargeUncounted: a flush counts what it deletes only for tables
// it can read quickly; a larger one is flushed all the same.
func TestFlushLargeUncounted(t *testing.T) {
	testenv.RequireRoot(t)
	ns := nfttest.New(t, "nft")
	c := nft.Open(nft.WithNetNS(ns.FD()))
	var ps []netip.Prefix
	for i := uint32(0); i < 50001; i++ {
		ps = append(ps, netip.PrefixFrom(addr4(2*i), 32))
	}
	loadBigTable(t, c, ps)
	if n, err := c.ChangeTable("web", nft.TableFlush, nil); err != nil || n != nft.Uncounted {
		t.Fatalf("flush: %d, %v; want Uncounted", n, err)
	}
	if rs, err := c.TableRanges("web"); err != nil || len(rs) != 0 {
		t.Fatalf("after flush: %d ranges, %v", len(rs), err)
	}
	loadBigTable(t, c, ps[:49999])
	if n, err := c.ChangeTable("web", nft.TableFlush, nil); err != nil || n != 49999 {
		t.Fatalf("flush: %d, %v; want 49999", n, err)
	}
}
