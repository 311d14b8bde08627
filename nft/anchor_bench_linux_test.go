package nft_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/nftables/expr"

	"github.com/pfcarp/pfcarp/internal/testenv"
	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/nft/nfttest"
)

// anchorProg is anchor path with n counting rules in its inbound quick
// chain and a 2-address table.
func anchorProg(path string, n int) *nft.Program {
	p := &nft.Program{Anchor: path}
	ch := &nft.Chain{Name: nft.AnchorChain(path, nft.PartInQuick)}
	for i := range n {
		ch.Rules = append(ch.Rules, &nft.Rule{Text: "counter", Exprs: []expr.Any{&expr.Counter{}}, Ref: nft.Ref{Kind: nft.KindFilter, Nr: i}})
		p.Records = append(p.Records, nft.Record{Kind: nft.KindFilter, Nr: i, Text: fmt.Sprintf("pass in quick proto tcp to port %d", 1000+i)})
	}
	p.Chains = []*nft.Chain{ch}
	p.Sets = []*nft.Set{{Name: nft.AnchorSet(path, nft.TableSetName("web", false)), Kind: nft.SetAddr, Table: "web"}}
	return p
}

// BenchmarkLoadAnchor measures one LoadAnchor (10 rules, a table) under
// anchor "relayd/*" with 10, 100 and 500 other children loaded: the load
// lists the table's chains and sets and rewrites the wildcard's dispatch
// chains (one jump per child and part). It also reports a main ruleset
// reload with that many anchors kept. Run with -benchtime=1x.
func BenchmarkLoadAnchor(b *testing.B) {
	testenv.RequireRoot(b)
	for _, n := range []int{10, 100, 500} {
		b.Run(fmt.Sprintf("children=%d", n), func(b *testing.B) {
			ns := nfttest.New(b, "ha-bench")
			c := nft.Open(nft.WithNetNS(ns.FD()))
			main := &nft.Program{Calls: []string{"relayd/*"}}
			if err := c.Load(main); err != nil {
				b.Fatal(err)
			}
			for i := range n {
				if err := c.LoadAnchor(anchorProg(fmt.Sprintf("relayd/h%03d", i), 10)); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			var anchorTime, mainTime time.Duration
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				if err := c.LoadAnchor(anchorProg("relayd/web", 10)); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if err := c.Load(main); err != nil {
					b.Fatal(err)
				}
				anchorTime += t1.Sub(t0)
				mainTime += time.Since(t1)
			}
			b.ReportMetric(float64(anchorTime.Microseconds())/1000/float64(b.N), "ms/anchor-load")
			b.ReportMetric(float64(mainTime.Microseconds())/1000/float64(b.N), "ms/main-load")
		})
	}
}
