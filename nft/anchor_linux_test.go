package nft

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/pfcarp/pfcarp/internal/testenv"
	"github.com/pfcarp/pfcarp/nft/nfttest"
)

func dispatchTargets(t *testing.T, c *Conn, chain string) []string {
	t.Helper()
	nc, err := c.readConn()
	if err != nil {
		t.Fatal(err)
	}
	tbl := &nftables.Table{Name: c.table, Family: nftables.TableFamilyINet}
	rules, err := nc.GetRules(tbl, &nftables.Chain{Name: chain, Table: tbl})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rules {
		v, ok := r.Exprs[len(r.Exprs)-1].(*expr.Verdict)
		if !ok || v.Kind != expr.VerdictJump {
			t.Fatalf("chain %s: rule %v is not a jump", chain, r.Exprs)
		}
		path, _, _ := parseAnchorName(v.Chain)
		out = append(out, path)
	}
	return out
}

// TestAnchorGeneration: an install prepared against an older generation of
// the ruleset is refused (ERESTART) and install starts over, so anchor
// loads that race keep every child in the wildcard's dispatch chains.
func TestAnchorGeneration(t *testing.T) {
	testenv.RequireRoot(t)
	ns := nfttest.New(t, "ha-gen")
	c := Open(WithNetNS(ns.FD()))
	if err := c.Load(&Program{Calls: []string{"relayd/*"}}); err != nil {
		t.Fatal(err)
	}
	gen, err := c.genID()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.LoadAnchor(&Program{Anchor: "relayd/a"}); err != nil {
		t.Fatal(err)
	}
	if err := c.installOnce(&Program{Anchor: "relayd/b"}, true, gen); !errors.Is(err, unix.ERESTART) {
		t.Fatalf("install with a stale generation: %v, want ERESTART", err)
	}
	if got := dispatchTargets(t, c, AnchorChain("relayd/*", PartInQuick)); len(got) != 1 {
		t.Fatalf("dispatch after the refused install: %v", got)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 15 {
				if err := c.LoadAnchor(&Program{Anchor: fmt.Sprintf("relayd/g%d_%02d", g, i)}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	in := dispatchTargets(t, c, AnchorChain("relayd/*", PartInQuick))
	rest := dispatchTargets(t, c, AnchorChain("relayd/*", PartInRest))
	if len(in) != 31 || len(rest) != 31 {
		t.Fatalf("dispatch holds %d and %d jumps, want 31 (a and 30 loaded concurrently)", len(in), len(rest))
	}
	if in[0] != rest[30] || in[30] != rest[0] {
		t.Errorf("rest dispatch is not the quick dispatch reversed: %v / %v", in, rest)
	}
	paths, err := c.Anchors()
	if err != nil || len(paths) != 31 {
		t.Fatalf("anchors: %d, %v", len(paths), err)
	}
}
