package nft_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/pfcarp/pfcarp/internal/testenv"
	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/nft/nfttest"
)

// spread returns n addresses that do not merge: every other address from
// 10.0.0.0.
func spread(n int) []netip.Prefix {
	ps := make([]netip.Prefix, n)
	for i := range ps {
		ps[i] = netip.PrefixFrom(addr4(uint32(2*i)), 32)
	}
	return ps
}

// BenchmarkTable1M runs every pfctl -T operation on a table of 1,000,000
// addresses (2,000,000 interval set elements) and reports each one's time
// in ms: load (the whole ruleset), add one, test one, delete one, show all,
// flush, replace (with 1,000,000 addresses). Run with -benchtime=1x.
func BenchmarkTable1M(b *testing.B) {
	testenv.RequireRoot(b)
	const n = 1000000
	ps := spread(n)
	ns := nfttest.New(b, "bench")
	c := nft.Open(nft.WithNetNS(ns.FD()))
	prog := testProgramWith(ps)
	one := []netip.Prefix{netip.MustParsePrefix("11.0.0.1/32")}
	mid := ps[n/2]
	ms := map[string]time.Duration{}
	timed := func(what string, fn func() error) {
		b.Helper()
		t0 := time.Now()
		if err := fn(); err != nil {
			b.Fatalf("%s: %v", what, err)
		}
		ms[what] += time.Since(t0)
	}
	want := func(what string, got, want int) error {
		if got != want {
			return fmt.Errorf("%s: %d, want %d", what, got, want)
		}
		return nil
	}
	b.ResetTimer()
	for range b.N {
		timed("load", func() error { return c.Load(prog) })
		timed("add1", func() error {
			k, err := c.ChangeTable("web", nft.TableAdd, one)
			if err != nil {
				return err
			}
			return want("added", k, 1)
		})
		timed("test1", func() error {
			in, err := c.TableTest("web", []netip.Addr{mid.Addr()})
			if err != nil {
				return err
			}
			if !in[0] {
				return fmt.Errorf("%s not in the table", mid)
			}
			return nil
		})
		timed("delete1", func() error {
			k, err := c.ChangeTable("web", nft.TableDelete, []netip.Prefix{mid})
			if err != nil {
				return err
			}
			return want("deleted", k, 1)
		})
		timed("show", func() error {
			es, err := c.TableEntries("web")
			if err != nil {
				return err
			}
			return want("entries", len(es), n)
		})
		timed("flush", func() error {
			k, err := c.ChangeTable("web", nft.TableFlush, nil)
			if err != nil {
				return err
			}
			return want("flushed", k, nft.Uncounted) // too large to count
		})
		timed("replace", func() error {
			k, err := c.ChangeTable("web", nft.TableReplace, ps)
			if err != nil {
				return err
			}
			return want("set", k, n)
		})
	}
	b.StopTimer()
	for _, what := range []string{"load", "add1", "test1", "delete1", "show", "flush", "replace"} {
		b.ReportMetric(float64(ms[what].Microseconds())/1000/float64(b.N), what+"-ms")
	}
}

// BenchmarkTableDump compares reading an interval set of n addresses (2n
// elements) with the library (page-sized reads: ~190 elements per dump
// chunk) and with TableRanges (1 MiB reads: ~1,600 per chunk). The kernel
// restarts its walk of the set for every chunk, so both grow with n².
func BenchmarkTableDump(b *testing.B) {
	testenv.RequireRoot(b)
	for _, n := range []int{25000, 50000, 100000, 200000} {
		ns := nfttest.New(b, "bench")
		c := nft.Open(nft.WithNetNS(ns.FD()))
		if err := c.Load(testProgramWith(spread(n))); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("n=%d/library", n), func(b *testing.B) {
			nc, err := nftables.New(nftables.WithNetNSFd(ns.FD()))
			if err != nil {
				b.Fatal(err)
			}
			set := &nftables.Set{Name: nft.TableSetName("web", false), Table: &nftables.Table{Name: nft.TableName, Family: nftables.TableFamilyINet}}
			for range b.N {
				els, err := nc.GetSetElements(set)
				if err != nil {
					b.Fatal(err)
				}
				if len(els) != 2*n {
					b.Fatalf("%d elements, want %d", len(els), 2*n)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms")
		})
		b.Run(fmt.Sprintf("n=%d/TableRanges", n), func(b *testing.B) {
			for range b.N {
				rs, err := c.TableRanges("web")
				if err != nil {
					b.Fatal(err)
				}
				if len(rs) != n {
					b.Fatalf("%d ranges, want %d", len(rs), n)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms")
		})
	}
}
