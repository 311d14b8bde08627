package nft_test

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/pfcarp/pfcarp/internal/testenv"
	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/nft/nfttest"
)

// Sticky maps are read and written element by element, with lifetimes:
// pfsync copies bindings between nodes with these.
func TestStickyElems(t *testing.T) {
	testenv.RequireRoot(t)
	ns := nfttest.New(t, "sticky")
	c := nft.Open(nft.WithNetNS(ns.FD()))
	if els, err := c.StickyElems(); err != nil || len(els) != 0 {
		t.Fatalf("before load: %v %v", els, err)
	}
	p := &nft.Program{Sets: []*nft.Set{
		{Name: "sticky_rdr0_4", Kind: nft.SetSticky, Timeout: 5 * time.Minute},
		{Name: "sticky_rdr0_6", Kind: nft.SetSticky, V6: true, Timeout: 5 * time.Minute},
		{Name: "pool_rdr0_4", Kind: nft.SetPool, Pool: []netip.Addr{netip.MustParseAddr("192.0.2.20")}},
		{Name: nft.TableSetName("t", false), Kind: nft.SetAddr, Table: "t"},
	}}
	if err := c.Load(p); err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr
	set := func(m, src, be string, d time.Duration) error {
		return c.SetStickyElem(nft.StickyElem{Map: m, Source: a(src), Backend: a(be), Expires: d})
	}
	if err := set("sticky_rdr0_4", "198.51.100.89", "192.0.2.20", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := set("sticky_rdr0_6", "2001:db8::89", "2001:db8:1::20", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// Rebinding to another backend with another lifetime replaces it.
	if err := set("sticky_rdr0_4", "198.51.100.89", "192.0.2.21", 2*time.Minute); err != nil {
		t.Fatalf("rebind: %v", err)
	}
	if err := set("sticky_rdr0_4", "198.51.100.90", "192.0.2.20", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	els, err := c.StickyElems()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]nft.StickyElem{}
	for _, e := range els {
		got[e.Map+" "+e.Source.String()] = e
	}
	check := func(k, be string, lo, hi time.Duration) {
		t.Helper()
		e, ok := got[k]
		if !ok {
			t.Fatalf("%s missing from %v", k, els)
		}
		if e.Backend != a(be) || e.Expires < lo || e.Expires > hi {
			t.Errorf("%s: %v expires %v, want %s within [%v, %v]", k, e.Backend, e.Expires, be, lo, hi)
		}
	}
	if len(got) != 3 {
		t.Errorf("elements %v, want 3", els)
	}
	check("sticky_rdr0_4 198.51.100.89", "192.0.2.21", 110*time.Second, 2*time.Minute)
	check("sticky_rdr0_4 198.51.100.90", "192.0.2.20", 5*time.Second, 10*time.Second)
	check("sticky_rdr0_6 2001:db8::89", "2001:db8:1::20", 20*time.Second, 30*time.Second)

	// Only sticky maps can be written, of the right family.
	for _, m := range []string{"pool_rdr0_4", nft.TableSetName("t", false), "nope"} {
		if err := set(m, "198.51.100.89", "192.0.2.20", time.Minute); !errors.Is(err, nft.ErrNotSticky) {
			t.Errorf("write to %s: %v, want ErrNotSticky", m, err)
		}
	}
	if err := set("sticky_rdr0_6", "198.51.100.89", "192.0.2.20", time.Minute); !errors.Is(err, nft.ErrNotSticky) {
		t.Errorf("IPv4 binding into the IPv6 map: %v", err)
	}
	if err := set("sticky_rdr0_4", "198.51.100.89", "2001:db8::1", time.Minute); err == nil {
		t.Error("mixed-family binding accepted")
	}

	// Delete, twice (the second finds nothing and is fine).
	for range 2 {
		if err := c.DeleteStickyElem(nft.StickyElem{Map: "sticky_rdr0_4", Source: a("198.51.100.89")}); err != nil {
			t.Fatal(err)
		}
	}
	els, _ = c.StickyElems()
	if len(els) != 2 {
		t.Errorf("after delete: %v", els)
	}
}
