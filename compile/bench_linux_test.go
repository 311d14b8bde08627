package compile

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pfcarp/pfcarp/internal/testenv"
	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/nft/nfttest"
)

// BenchmarkLoad10kRules compiles and loads a ruleset of 10,000 filter
// rules (one transaction each time); it reports compile and load time.
func BenchmarkLoad10kRules(b *testing.B) {
	testenv.RequireRoot(b)
	var src strings.Builder
	src.WriteString("set skip on lo\n")
	for i := 0; i < 10000; i++ {
		fmt.Fprintf(&src, "pass in on eth0 proto tcp from 10.%d.%d.0/24 to any port %d keep state\n", i/256, i%256, 1000+i%50000)
	}
	rs := ruleset(b, src.String())
	ns := nfttest.New(b, "bench")
	c := nft.Open(nft.WithNetNS(ns.FD()))
	var compileT, loadT time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		prog, err := Compile(rs, Options{RuleText: RuleTexts(rs)})
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := c.Load(prog); err != nil {
			b.Fatal(err)
		}
		compileT += t1.Sub(t0)
		loadT += time.Since(t1)
	}
	b.ReportMetric(float64(compileT.Milliseconds())/float64(b.N), "compile-ms/op")
	b.ReportMetric(float64(loadT.Milliseconds())/float64(b.N), "load-ms/op")
}

// BenchmarkLoadTable1M loads a table of 1,000,000 addresses that do not
// merge (every other address of 10.0.0.0/8) with one rule using it.
func BenchmarkLoadTable1M(b *testing.B) {
	testenv.RequireRoot(b)
	ps := make([]netip.Prefix, 0, 1000000)
	for i := 0; i < 1000000; i++ {
		v := uint32(10<<24) + uint32(2*i)
		ps = append(ps, netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), 32))
	}
	rs := ruleset(b, "table <big> persist\nblock in quick from <big> to any\n")
	prog, err := Compile(rs, Options{})
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range prog.Sets {
		if s.Name == nft.TableSetName("big", false) {
			s.Prefixes = ps
		}
	}
	ns := nfttest.New(b, "bench")
	c := nft.Open(nft.WithNetNS(ns.FD()))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.Load(prog); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "load-ms/op")
	// Adding one more address takes the fast path (no dump of the set).
	t0 := time.Now()
	if n, err := c.ChangeTable("big", nft.TableAdd, []netip.Prefix{netip.MustParsePrefix("11.0.0.1/32")}); err != nil || n != 1 {
		b.Fatalf("-T add: %d, %v", n, err)
	}
	b.ReportMetric(float64(time.Since(t0).Milliseconds()), "add1-ms")
}

// BenchmarkRdrVsRouting measures TCP request/response rates from the
// client to a backend through the rdr (VIP:80 -> s1) and by plain routing
// (s1:80 directly), in the same run, and reports their ratio.
func BenchmarkRdrVsRouting(b *testing.B) {
	testenv.RequireRoot(b)
	bb := newBedB(b)
	bb.load(b, `
set skip on lo
rdr on eth0 proto tcp from any to 192.0.2.51 port 80 -> 198.51.100.20
`)
	rate := func(dst string) float64 {
		n := 2000
		start := time.Now()
		for i := 0; i < n; i++ {
			if got, err := bb.get(clientA, dst); err != nil || got != "s1" {
				b.Fatalf("%s: %q, %v", dst, got, err)
			}
		}
		return float64(n) / time.Since(start).Seconds()
	}
	b.ResetTimer()
	var routed, rdr float64
	for i := 0; i < b.N; i++ {
		routed += rate("198.51.100.20:80")
		rdr += rate("192.0.2.51:80")
	}
	b.ReportMetric(routed/float64(b.N), "routed-req/s")
	b.ReportMetric(rdr/float64(b.N), "rdr-req/s")
	b.ReportMetric(rdr/routed, "rdr/routed")
}
