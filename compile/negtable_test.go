package compile

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// TestFlattenTable checks flattenTable against pf's lookup, done the slow
// way: for every address of 10.0.0.0/24 the most specific entry that holds
// it decides, and the table matches when that entry is not negated.
func TestFlattenTable(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 300; round++ {
		var es []tableEntry
		seen := map[netip.Prefix]bool{}
		for i := 0; i < 1+rnd.IntN(8); i++ {
			bits := 24 + rnd.IntN(9)
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(rnd.IntN(256))}), bits).Masked()
			if seen[p] { // pf's tables hold a prefix once
				continue
			}
			seen[p] = true
			es = append(es, tableEntry{p, rnd.IntN(2) == 0})
		}
		flat := flattenTable(es)
		for i := 0; i < 256; i++ {
			a := netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})
			want, best := false, -1
			for _, e := range es {
				if e.p.Contains(a) && e.p.Bits() > best {
					best, want = e.p.Bits(), !e.neg
				}
			}
			got := false
			for _, p := range flat {
				if p.Contains(a) {
					if got {
						t.Fatalf("%v: %s in two prefixes of %v", es, a, flat)
					}
					got = true
				}
			}
			if got != want {
				t.Fatalf("entries %v: %s matches %v in %v, pf: %v", es, a, got, flat, want)
			}
		}
	}
}

func TestFlattenTableExamples(t *testing.T) {
	for _, c := range []struct {
		in   []tableEntry
		want string
	}{
		{[]tableEntry{{netip.MustParsePrefix("192.168.0.0/24"), false}, {netip.MustParsePrefix("192.168.0.1/32"), true}},
			"[192.168.0.0/32 192.168.0.2/31 192.168.0.4/30 192.168.0.8/29 192.168.0.16/28 192.168.0.32/27 192.168.0.64/26 192.168.0.128/25]"},
		{[]tableEntry{{netip.MustParsePrefix("2001:db8::/32"), false}, {netip.MustParsePrefix("2001:db8::/33"), true}},
			"[2001:db8:8000::/33]"},
		{[]tableEntry{{netip.MustParsePrefix("0.0.0.0/0"), true}, {netip.MustParsePrefix("10.0.0.0/8"), false}},
			"[10.0.0.0/8]"},
	} {
		if got := sprint(flattenTable(c.in)); got != c.want {
			t.Errorf("%v: %s, want %s", c.in, got, c.want)
		}
	}
}

func sprint(ps []netip.Prefix) string {
	s := "["
	for i, p := range ps {
		if i > 0 {
			s += " "
		}
		s += p.String()
	}
	return s + "]"
}

// FuzzFlattenTable checks flattenTable against pf's lookup on entries
// from the fuzzer (IPv4 prefixes inside 10.0.0.0/24).
func FuzzFlattenTable(f *testing.F) {
	f.Add([]byte{0, 24, 0, 1, 32, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var es []tableEntry
		seen := map[netip.Prefix]bool{}
		for i := 0; i+2 < len(b) && len(es) < 16; i += 3 {
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, b[i]}), 24+int(b[i+1]%9)).Masked()
			if !seen[p] {
				seen[p] = true
				es = append(es, tableEntry{p, b[i+2]&1 == 1})
			}
		}
		flat := flattenTable(es)
		for i := 0; i < 256; i++ {
			a := netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})
			want, best := false, -1
			for _, e := range es {
				if e.p.Contains(a) && e.p.Bits() > best {
					best, want = e.p.Bits(), !e.neg
				}
			}
			n := 0
			for _, p := range flat {
				if p.Contains(a) {
					n++
				}
			}
			if n > 1 || (n == 1) != want {
				t.Fatalf("entries %v: %s in %d of %v, pf: %v", es, a, n, flat, want)
			}
		}
	})
}
