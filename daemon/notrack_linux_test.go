package daemon

import (
	"runtime"
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"

	"github.com/pfcarp/pfcarp/internal/testenv"
)

// inNewNetns runs f on a locked thread inside a fresh, unnamed namespace.
func inNewNetns(t *testing.T, f func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		t.Fatalf("new namespace: %v", err)
	}
	defer ns.Close()
	defer netns.Set(orig)
	f()
}

func TestNotrackTable(t *testing.T) {
	testenv.RequireRoot(t)
	inNewNetns(t, func() {
		for i := 0; i < 2; i++ { // a second install replaces the first
			if err := installHA(nil); err != nil {
				t.Fatal(err)
			}
		}
		c, err := nftables.New()
		if err != nil {
			t.Fatal(err)
		}
		tab := &nftables.Table{Name: haTable, Family: nftables.TableFamilyINet}
		chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, ch := range chains {
			if ch.Table.Name != haTable || (ch.Name != "prerouting" && ch.Name != "output") {
				continue
			}
			if *ch.Priority != *nftables.ChainPriorityRaw {
				t.Errorf("chain %s priority %d, want raw (-300)", ch.Name, *ch.Priority)
			}
			rules, err := c.GetRules(tab, ch)
			if err != nil {
				t.Fatal(err)
			}
			if len(rules) != 2 {
				t.Errorf("chain %s has %d rules, want 2 (carp, pfsync)", ch.Name, len(rules))
			}
			n++
		}
		if n != 2 {
			t.Fatalf("found %d chains in %s, want 2", n, haTable)
		}
		if err := removeHA(); err != nil {
			t.Fatal(err)
		}
		if err := removeHA(); err != nil {
			t.Fatalf("removing twice: %v", err)
		}
		tabs, _ := c.ListTables()
		for _, x := range tabs {
			if x.Name == haTable {
				t.Fatal("table still present after removeHA")
			}
		}
	})
}
