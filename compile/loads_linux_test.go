package compile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/pfcarp/pfcarp/internal/testenv"
	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/nft/nfttest"
)

// TestKernelLoadsGoldens loads every golden ruleset that compiles into a
// namespace with the test host's interfaces: the kernel accepts all of it.
func TestKernelLoadsGoldens(t *testing.T) {
	testenv.RequireRoot(t)
	ns := nfttest.New(t, "hk-gold")
	// the test host's interfaces, for the routes of route-to and reply-to
	// (veth pairs: this kernel may have no dummy interfaces)
	for i, ifc := range testHost.Interfaces {
		if ifc.Name == "lo" {
			continue
		}
		err := ns.Do(func() error {
			return netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: ifc.Name}, PeerName: fmt.Sprintf("pfrfp%d", i)})
		})
		if err != nil {
			t.Fatalf("dummy %s: %v", ifc.Name, err)
		}
		for _, a := range ifc.Addrs {
			ns.AddrUp(t, ifc.Name, a.Prefix)
		}
	}
	conn := nft.Open(nft.WithNetNS(ns.FD()), nft.WithHost(testHost))
	files, err := filepath.Glob("testdata/*.pf")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files: %v", err)
	}
	loaded := 0
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		rs := ruleset(t, string(src))
		prog, err := Compile(rs, Options{RuleText: RuleTexts(rs), Host: testHost})
		if err != nil {
			if !strings.Contains(file, "refused") {
				t.Errorf("%s: %v", file, err)
			}
			continue
		}
		if err := conn.Load(prog); err != nil {
			t.Errorf("%s: the kernel refused it: %v", file, err)
			continue
		}
		loaded++
	}
	if loaded < 6 {
		t.Fatalf("only %d rulesets loaded", loaded)
	}
}
