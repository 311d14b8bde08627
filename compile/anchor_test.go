package compile

import (
	"strings"
	"testing"

	"github.com/google/nftables/expr"

	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/pfconf"
)

func TestResolveAnchor(t *testing.T) {
	for _, tc := range []struct{ cur, name, want, err string }{
		{"", "foo", "foo", ""},
		{"", "relayd/*", "relayd/*", ""},
		{"a/b", "c", "a/b/c", ""},
		{"a/b", "/c", "c", ""},
		{"a/b", "../c", "a/c", ""},
		{"a/b", "../../c", "c", ""},
		{"a", "../../c", "", "beyond the main ruleset"},
		{"", "../c", "", "beyond the main ruleset"},
	} {
		got, err := ResolveAnchor(tc.cur, tc.name)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q in %q: %q, %v; want error %q", tc.name, tc.cur, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q in %q: %q, %v; want %q", tc.name, tc.cur, got, err, tc.want)
		}
	}
}

// chainRefs lists the comments and jump targets of a chain's rules.
func chainRefs(p *nft.Program, name string) []string {
	var out []string
	for _, q := range append([]*nft.Program{p}, p.Anchors...) {
		for _, ch := range q.Chains {
			if ch.Name != name {
				continue
			}
			for _, r := range ch.Rules {
				ref := r.Ref
				ref.Part = 0 // part numbers only tell a rule's kernel rules apart
				s := ref.String()
				if i := strings.Index(r.Text, "jump "); i >= 0 {
					s += " " + r.Text[i:]
				}
				out = append(out, s)
			}
		}
	}
	return out
}

func TestCompileAnchorLayout(t *testing.T) {
	rs := ruleset(t, `
block in on eth0 proto tcp to port 81
anchor "a" in on eth0 {
  pass in proto tcp to port 81
  block in quick proto tcp to port 82
  anchor "b" quick {
    pass in proto tcp to port 83
  }
  anchor "../c"
}
anchor "relayd/*" out
nat-anchor "relayd/*"
rdr-anchor "relayd/*"
binat-anchor "x"
pass in on eth0 proto tcp to port 84
`)
	p, err := Compile(rs, Options{RuleText: RuleTexts(rs)})
	if err != nil {
		t.Fatal(err)
	}
	check := func(chain string, want ...string) {
		t.Helper()
		if got := chainRefs(p, chain); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("chain %s:\n%s\nwant:\n%s", chain, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	// Quick half in file order (the anchor's quick chain), then the rest
	// from the last rule back (the anchor's rest chain at its place).
	check(ChainFilterIn,
		"pf filter 1 jump @a:in_q",
		"pf filter 3",
		"pf filter 1 jump @a:in_r",
		"pf filter 0")
	check(ChainFilterOut,
		"pf filter 2 jump @relayd/*:out_q",
		"pf filter 2 jump @relayd/*:out_r")
	// Filter translations (rdr-to, nat-to) in anchors: first match among
	// the filter rules' translations, after nat and rdr rules.
	check(ChainNAT, "pf binat 0 jump @x:binat_out", "pf nat 0 jump @relayd/*:nat", "pf filter 2 jump @relayd/*:xnat")
	check(ChainRDR, "pf binat 0 jump @x:binat_in", "pf rdr 0 jump @relayd/*:rdr", "pf filter 1 jump @a:xrdr")
	// Inside a: quick rule, then the quick anchor b (its quick and its
	// rest chain, so b's last match is final), then the relative call.
	check(nft.AnchorChain("a", nft.PartInQuick),
		"pf filter 1",
		"pf filter 2 jump @a/b:in_q",
		"pf filter 2 jump @a/b:in_r",
		"pf filter 3 jump @c:in_q")
	check(nft.AnchorChain("a", nft.PartInRest),
		"pf filter 3 jump @c:in_r",
		"pf filter 0")
	check(nft.AnchorChain("a/b", nft.PartInRest), "pf filter 0")
	if got, want := strings.Join(p.Calls, " "), "x relayd/* a"; got != want {
		t.Errorf("main calls %q, want %q", got, want)
	}
	var paths []string
	for _, a := range p.Anchors {
		paths = append(paths, a.Anchor)
		if !a.FromMain {
			t.Errorf("inline anchor %s not marked FromMain", a.Anchor)
		}
	}
	if got := strings.Join(paths, " "); got != "a/b a" {
		t.Errorf("anchors %q", got)
	}
	// Records hold pfctl's text, in the main ruleset and in anchors.
	if rec, _ := p.Record(nft.Ref{Kind: nft.KindFilter, Nr: 1}); rec.Text != `anchor "a" in on eth0 all` {
		t.Errorf("main record 1: %q", rec.Text)
	}
	a := p.Anchors[1]
	if rec, _ := a.Record(nft.Ref{Kind: nft.KindFilter, Nr: 2}); rec.Text != `anchor "b" quick all` {
		t.Errorf("anchor a record 2: %q", rec.Text)
	}
	if rec, _ := a.Record(nft.Ref{Kind: nft.KindFilter, Nr: 1}); rec.Text != "block drop in quick proto tcp from any to any port = xfer" {
		t.Errorf("anchor a record 1: %q", rec.Text)
	}
}

func TestCompileAnchorTables(t *testing.T) {
	rs := ruleset(t, `
table <web> { 198.51.100.20 198.51.100.21 }
rdr on eth0 proto tcp to 192.0.2.51 port 80 -> <web> round-robin sticky-address
pass in quick proto tcp from <web>
`)
	p, err := CompileAnchor("relayd/web", rs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, s := range p.Sets {
		if !strings.HasPrefix(s.Name, "@relayd/web:") {
			t.Errorf("set %s is not the anchor's", s.Name)
		}
		names[s.Name] = true
	}
	for _, want := range []string{"@relayd/web:tbl4_web", "@relayd/web:tbl6_web", "@relayd/web:pool_rdr0_4", "@relayd/web:sticky_rdr0_4"} {
		if !names[want] {
			t.Errorf("no set %s in %v", want, names)
		}
	}
	for _, ch := range p.Chains {
		for _, r := range ch.Rules {
			for _, e := range r.Exprs {
				var set string
				switch x := e.(type) {
				case *expr.Lookup:
					set = x.SetName
				case *expr.Dynset:
					set = x.SetName
				default:
					continue
				}
				if !names[set] {
					t.Errorf("chain %s: %q uses set %s", ch.Name, r.Text, set)
				}
				if !strings.Contains(r.Text, "@"+set) && !strings.Contains(r.Text, "@relayd/web:") {
					t.Errorf("chain %s: text %q does not name the anchor's sets", ch.Name, r.Text)
				}
			}
		}
	}
	// Options are ignored, with a warning naming them, as pfctl loads
	// them for the main ruleset only.
	prog, err := CompileAnchor("relayd/web", ruleset(t, "set skip on lo\nset block-policy return\npass all\n"), Options{})
	if err != nil {
		t.Fatalf("options in an anchor: %v", err)
	}
	if len(prog.Warnings) != 2 || !strings.Contains(prog.Warnings[0], "pf.conf:1:1: set skip in anchor relayd/web is ignored") {
		t.Errorf("warnings %q, want two naming the ignored options", prog.Warnings)
	}
	// Refusals name the rule.
	for _, tc := range []struct{ src, want string }{
		{"anchor \"../../../x\"\n", "pf.conf:1:1: anchor \"../../../x\": .. beyond the main ruleset"},
	} {
		_, err := CompileAnchor("relayd/web", ruleset(t, tc.src), Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.src, err, tc.want)
		}
	}
	if _, err := CompileAnchor("relayd/*", ruleset(t, "pass all\n"), Options{}); err == nil {
		t.Error("CompileAnchor accepted a wildcard path")
	}
}

func TestCompileLoadAnchorRefused(t *testing.T) {
	rs := ruleset(t, "anchor \"foo\"\nload anchor \"foo\" from \"foo.conf\"\n")
	if _, err := Compile(rs, Options{}); err == nil || !strings.Contains(err.Error(), "pf.conf:2:1: load anchor foo from foo.conf: this loader does not read anchor files") {
		t.Errorf("load anchor without Options.LoadAnchors: %v", err)
	}
	if _, err := Compile(rs, Options{LoadAnchors: true}); err != nil {
		t.Errorf("with LoadAnchors: %v", err)
	}
}

// An anchor's rule with a queue is refused by name (the queues are the
// main ruleset's), never a panic.
func TestAnchorQueueRefused(t *testing.T) {
	rs := ruleset(t, "queue r on eth0 bandwidth 1M\nqueue ssh parent r bandwidth 1M default\npass out proto tcp to port 22 queue ssh\n")
	_, err := CompileAnchor("a", rs, Options{})
	el, ok := err.(*pfconf.ErrorList)
	if !ok {
		t.Fatalf("CompileAnchor: %v", err)
	}
	var all []string
	for _, e := range el.List {
		all = append(all, e.Error())
	}
	got := strings.Join(all, "\n")
	if !strings.Contains(got, "queue ssh in an anchor is not supported") || !strings.Contains(got, "1:1: queues in an anchor are not supported") {
		t.Fatalf("CompileAnchor:\n%s", got)
	}
}

// sticky-address records the binding even to a pool of one address (pf's
// source node), so a source keeps it when the pool grows: relayd's table
// with one host up, then two. Without sticky-address one address needs no
// map.
func TestCompileStickyOneAddress(t *testing.T) {
	for _, tc := range []struct {
		pool   string
		sticky bool
	}{
		{"{ 198.51.100.20 } round-robin sticky-address", true},
		{"{ 198.51.100.20 } round-robin", false},
	} {
		rs := ruleset(t, "rdr on eth0 proto tcp to 192.0.2.51 port 80 -> "+tc.pool+"\n")
		p, err := CompileAnchor("relayd/web", rs, Options{})
		if err != nil {
			t.Fatal(err)
		}
		has := false
		for _, s := range p.Sets {
			has = has || s.Kind == nft.SetSticky
		}
		if has != tc.sticky {
			t.Errorf("%s: sticky map %v, want %v", tc.pool, has, tc.sticky)
		}
	}
}
