package nft_test

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/pfcarp/pfcarp/internal/testenv"
	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/nft/nfttest"
)

// saddrIn4 matches IPv4 packets whose source is in set.
func saddrIn4(set string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Lookup{SourceRegister: 1, SetName: set},
	}
}

func testProgram(verdict expr.Any, hook nftables.ChainHook) *nft.Program {
	exprs := append([]expr.Any{&expr.Counter{}}, saddrIn4(nft.TableSetName("web", false))...)
	exprs = append(exprs, &expr.Counter{}, verdict)
	return &nft.Program{
		Sets: []*nft.Set{
			{Name: nft.TableSetName("web", false), Kind: nft.SetAddr, Table: "web",
				Prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/25"), netip.MustParsePrefix("192.0.2.128/25")}},
			{Name: nft.TableSetName("web", true), Kind: nft.SetAddr, V6: true, Table: "web"},
		},
		Chains: []*nft.Chain{{
			Name: "in",
			Hook: &nft.Hook{Type: nftables.ChainTypeFilter, Num: hook, Priority: 0},
			Rules: []*nft.Rule{{
				Exprs: exprs,
				Text:  "ip saddr @tbl4_web counter drop",
				Ref:   nft.Ref{Kind: nft.KindFilter, Nr: 0},
				Needs: "the reject expression in this hook",
			}},
		}},
		Records: []nft.Record{{Kind: nft.KindFilter, Nr: 0, Pos: "pf.conf:1:1", Text: "block drop from <web> to any", Labels: []string{"web"}}},
	}
}

func TestLoadReadTables(t *testing.T) {
	testenv.RequireRoot(t)
	ns := nfttest.New(t, "nft")
	c := nft.Open(nft.WithNetNS(ns.FD()))

	if _, err := c.Read(); !nft.IsNotLoaded(err) {
		t.Fatalf("Read before load: %v, want not loaded", err)
	}
	p := testProgram(&expr.Verdict{Kind: expr.VerdictDrop}, *nftables.ChainHookPrerouting)
	if err := c.Load(p); err != nil {
		t.Fatalf("Load: %v", err)
	}
	rs, err := c.Read()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rs.Records) != fmt.Sprint(p.Records) || !rs.Enabled {
		t.Fatalf("Read records = %v enabled %v, want %v", rs.Records, rs.Enabled, p.Records)
	}
	if rs.Stats[nft.Ref{Kind: nft.KindFilter}] == nil {
		t.Fatalf("no stats for rule 0: %v", rs.Stats)
	}

	// Loading twice replaces, it does not add.
	if err := c.Load(p); err != nil {
		t.Fatalf("second Load: %v", err)
	}
	if rs, _ := c.Read(); len(rs.Records) != 1 {
		t.Fatalf("after reload: %d records", len(rs.Records))
	}

	names, err := c.Tables()
	if err != nil || fmt.Sprint(names) != "[web]" {
		t.Fatalf("Tables = %v, %v", names, err)
	}
	entries := func() string {
		t.Helper()
		ps, err := c.TableEntries("web")
		if err != nil {
			t.Fatal(err)
		}
		// TableSize counts what TableEntries lists, without the list.
		if n, err := c.TableSize("web", 1000); err != nil || n != len(ps) {
			t.Errorf("TableSize = %d, %v; TableEntries lists %d", n, err, len(ps))
		}
		return fmt.Sprint(ps)
	}
	if got := entries(); got != "[192.0.2.0/24]" {
		t.Fatalf("entries = %s", got)
	}
	steps := []struct {
		op      nft.TableOp
		ps      []string
		changed int
		want    string
	}{
		{nft.TableAdd, []string{"198.51.100.0/24", "192.0.2.3/32", "2001:db8::/64"}, 2, "[192.0.2.0/24 198.51.100.0/24 2001:db8::/64]"},
		{nft.TableDelete, []string{"198.51.100.0/25", "203.0.113.1/32"}, 1, "[192.0.2.0/24 198.51.100.128/25 2001:db8::/64]"},
		{nft.TableReplace, []string{"203.0.113.0/24"}, 1, "[203.0.113.0/24]"},
		{nft.TableFlush, nil, 1, "[]"},
	}
	for _, s := range steps {
		var ps []netip.Prefix
		for _, x := range s.ps {
			ps = append(ps, netip.MustParsePrefix(x))
		}
		n, err := c.ChangeTable("web", s.op, ps)
		if err != nil {
			t.Fatalf("ChangeTable %d %v: %v", s.op, s.ps, err)
		}
		if got := entries(); n != s.changed || got != s.want {
			t.Errorf("ChangeTable %d %v: changed %d, entries %s; want %d, %s", s.op, s.ps, n, got, s.changed, s.want)
		}
		if s.op == nft.TableAdd {
			// Two IPv4 ranges are four elements: a limit of three stops.
			if n, err := c.TableSize("web", 3); !errors.Is(err, nft.ErrTableTooLarge) {
				t.Errorf("TableSize with a limit below the set's size = %d, %v; want ErrTableTooLarge", n, err)
			}
		}
	}
	if _, err := c.TableSize("nope", 10); err == nil {
		t.Error("TableSize of a missing table succeeded")
	}
	if _, err := c.ChangeTable("nope", nft.TableAdd, nil); err == nil {
		t.Error("ChangeTable on a missing table succeeded")
	}

	// A refused load names the rule and changes nothing.
	bad := testProgram(&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_PORT_UNREACH}, *nftables.ChainHookPostrouting)
	bad.Records[0].Text = "block return out from <web>"
	err = c.Load(bad)
	var le *nft.LoadError
	if !errors.As(err, &le) || le.Record.Nr != 0 || le.Record.Pos != "pf.conf:1:1" {
		t.Fatalf("bad Load: %v, want a LoadError for rule 0", err)
	}
	t.Logf("refused load: %v", err)
	if rs, err := c.Read(); err != nil || rs.Records[0].Text != "block drop from <web> to any" {
		t.Fatalf("after a refused load the old ruleset is gone: %v %v", rs, err)
	}

	if err := c.SetEnabled(false); err != nil {
		t.Fatal(err)
	}
	if loaded, on, err := c.Loaded(); !loaded || on || err != nil {
		t.Fatalf("after -d: loaded %v enabled %v %v", loaded, on, err)
	}
	if err := c.Load(p); err != nil {
		t.Fatal(err)
	}
	if _, on, _ := c.Loaded(); on {
		t.Fatal("Load enabled a disabled ruleset")
	}
	if err := c.SetEnabled(true); err != nil {
		t.Fatal(err)
	}

	n, err := c.FlushKinds(nft.KindFilter)
	if err != nil || n != 1 {
		t.Fatalf("FlushKinds = %d, %v", n, err)
	}
	if rs, err := c.Read(); err != nil || len(rs.Records) != 0 || len(rs.Stats) != 0 {
		t.Fatalf("after flush: %+v %v", rs, err)
	}
	if err := c.Delete(); err != nil {
		t.Fatal(err)
	}
	if loaded, _, _ := c.Loaded(); loaded {
		t.Fatal("table still there after Delete")
	}
}
