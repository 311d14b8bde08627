package relayd

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"

	"github.com/pfcarp/pfcarp/compile"
	"github.com/pfcarp/pfcarp/internal/testenv"
	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/pfconf"
)

// kernelAddrs reads the addresses of anchor relayd/www's table <www>
// (interval set, start elements) and of its rdr pool map (values), and the
// number of rules in its translation chain.
func kernelAddrs(t *testing.T, fd int) (table, pool []string, rdr int) {
	t.Helper()
	nc, err := nftables.New(nftables.WithNetNSFd(fd))
	if err != nil {
		t.Fatal(err)
	}
	tbl := &nftables.Table{Name: nft.TableName, Family: nftables.TableFamilyINet}
	sets, err := nc.GetSets(tbl)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sets {
		isTable := s.Name == nft.AnchorSet("relayd/www", "tbl4_www")
		isPool := strings.HasPrefix(s.Name, nft.AnchorSet("relayd/www", "pool_")) && s.IsMap
		if !isTable && !isPool {
			continue
		}
		els, err := nc.GetSetElements(s)
		if err != nil {
			t.Fatal(err)
		}
		if isTable {
			table = intervalAddrs(t, els)
		}
		for _, e := range els {
			if isPool {
				if a, ok := netip.AddrFromSlice(e.Val); ok {
					pool = append(pool, a.String())
				}
			}
		}
	}
	rules, err := nc.GetRules(tbl, &nftables.Chain{Name: nft.AnchorChain("relayd/www", "xrdr"), Table: tbl})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(table)
	slices.Sort(pool)
	return table, pool, len(rules)
}

// intervalAddrs expands an interval set's elements (start, exclusive
// end) into addresses.
func intervalAddrs(t *testing.T, els []nftables.SetElement) []string {
	t.Helper()
	slices.SortFunc(els, func(a, b nftables.SetElement) int {
		x, _ := netip.AddrFromSlice(a.Key)
		y, _ := netip.AddrFromSlice(b.Key)
		return x.Compare(y)
	})
	var out []string
	for i, e := range els {
		if e.IntervalEnd {
			continue
		}
		a, ok := netip.AddrFromSlice(e.Key)
		if !ok || i+1 >= len(els) || !els[i+1].IntervalEnd {
			t.Fatalf("unexpected interval elements %v", els)
		}
		end, _ := netip.AddrFromSlice(els[i+1].Key)
		for n := 0; a.Less(end) && n < 256; n++ {
			out = append(out, a.String())
			a = a.Next()
		}
	}
	return out
}

// TestKernelInstall: under a main ruleset that calls rdr-anchor and anchor
// "relayd/*", the Installer fills anchor relayd/www with the up hosts of
// the example redirection, replaces them as hosts go down and the backup
// table takes over, and empties the anchor when every host is down.
func TestKernelInstall(t *testing.T) {
	testenv.RequireRoot(t)
	hs, _ := testenv.TwoHosts(t, "pfr2-", netip.MustParsePrefix("198.51.100.1/24"), netip.MustParsePrefix("198.51.100.2/24"))
	fd := int(hs[0])
	f, err := pfconf.Parse("pf.conf", []byte("rdr-anchor \"relayd/*\"\nanchor \"relayd/*\"\npass\n"), pfconf.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := pfconf.Expand(f, noHost)
	if err != nil {
		t.Fatal(err)
	}
	main, err := compile.Compile(rs, compile.Options{RuleText: compile.RuleTexts(rs)})
	if err != nil {
		t.Fatal(err)
	}
	conn := nft.Open(nft.WithNetNS(fd))
	if err := conn.Load(main); err != nil {
		t.Fatal(err)
	}
	cfg := exampleConfig(t)
	in := &Installer{Loader: conn, Host: noHost}
	for _, step := range []struct {
		up          map[int]bool
		table, pool []string
		rdr         int
	}{
		{ids(1, 2, 3), []string{"10.0.0.1", "10.0.0.2"}, []string{"10.0.0.1", "10.0.0.2"}, 1},
		{ids(2, 3), []string{"10.0.0.2"}, nil, 1}, // one address: no pool map
		{ids(3), []string{"127.0.0.1"}, nil, 1},
		{ids(), nil, nil, 0},
		{ids(1, 2), []string{"10.0.0.1", "10.0.0.2"}, []string{"10.0.0.1", "10.0.0.2"}, 1},
	} {
		if _, err := in.Sync(cfg, step.up); err != nil {
			t.Fatal(err)
		}
		table, pool, rdr := kernelAddrs(t, fd)
		if !slices.Equal(table, step.table) || !slices.Equal(pool, step.pool) || rdr != step.rdr {
			t.Errorf("up %v: table %v pool %v rdr rules %d; want %v %v %d", step.up, table, pool, rdr, step.table, step.pool, step.rdr)
		}
	}
	if len(in.Warnings) != 1 || !strings.Contains(in.Warnings[0], "session timeout 600 is not enforced") {
		t.Errorf("warnings %q", in.Warnings)
	}
}
