package compile_test

import (
	"log"

	"github.com/pfcarp/pfcarp/compile"
	"github.com/pfcarp/pfcarp/netdb"
	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/pfconf"
)

// How relayd (or anything that owns an anchor) replaces anchor
// "relayd/web", rules and tables, in one transaction. The main ruleset
// calls it with rdr-anchor "relayd/*" and anchor "relayd/*"; nothing else
// in the kernel changes.
func ExampleCompileAnchor() {
	src := []byte(`
table <web> { 198.51.100.20 198.51.100.21 }
rdr pass on eth0 proto tcp to 192.0.2.51 port 80 -> <web> round-robin
`)
	f, err := pfconf.Parse("relayd/web", src, pfconf.ParseOptions{})
	if err != nil {
		log.Fatal(err)
	}
	rs, err := pfconf.Expand(f, netdb.System())
	if err != nil {
		log.Fatal(err)
	}
	prog, err := compile.CompileAnchor("relayd/web", rs, compile.Options{RuleText: compile.RuleTexts(rs)})
	if err != nil {
		log.Fatal(err)
	}
	if err := nft.Open().LoadAnchor(prog); err != nil {
		log.Fatal(err)
	}
	// Later edits of the anchor's table (pfctl -a relayd/web -t web -T ...):
	// nft.Open(nft.WithAnchor("relayd/web")).ChangeTable("web", nft.TableReplace, prefixes).
	// Emptying the anchor (pfctl -a relayd/web -F all):
	// nft.Open(nft.WithAnchor("relayd/web")).FlushKinds(nft.KindScrub, nft.KindFilter, nft.KindNAT, nft.KindRDR, nft.KindBINAT).
}
