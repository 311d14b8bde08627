package pfsync

import (
	"testing"

	"github.com/ti-mo/conntrack"
	"github.com/vishvananda/netlink"
)

// logNS logs a namespace's conntrack statistics, entries and neighbours:
// what one needs to see when a failover test fails.
func logNS(t testing.TB, n *testNS) {
	n.run(func() error {
		c, err := conntrack.Dial(nil)
		if err != nil {
			return err
		}
		defer c.Close()
		st, _ := c.Stats()
		for _, s := range st {
			t.Logf("%s: %v", n.name, s)
		}
		fl, _ := c.Dump(nil)
		for _, f := range fl {
			t.Logf("%s: flow %v status %v", n.name, f.TupleOrig, f.Status)
		}
		nb, _ := netlink.NeighList(0, 0)
		for _, x := range nb {
			if x.IP.To4() != nil {
				t.Logf("%s: neighbour %v", n.name, x)
			}
		}
		return nil
	})
}
