package relayd

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pfcarp/pfcarp/netdb"
	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/pfconf"
)

var update = flag.Bool("update", false, "rewrite the golden files of TestAnchorRules")

// exampleConfig is the redirection part of OpenBSD's example relayd.conf:
// redirect www, table webhosts (hosts 1 and 2), backup fallback (host 3).
func exampleConfig(t *testing.T) *Config {
	t.Helper()
	src, err := readTestdata("openbsd-examples-redirect-part.conf")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("relayd.conf", src, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// noHost knows no interface or name: the generated rules must not need
// one except where the test says so.
var noHost = &netdb.Fixed{}

func ids(n ...int) map[int]bool {
	m := map[int]bool{}
	for _, i := range n {
		m[i] = true
	}
	return m
}

func TestAnchorRules(t *testing.T) {
	cfg := exampleConfig(t)
	if len(cfg.Redirects) != 1 {
		t.Fatalf("redirects: %d", len(cfg.Redirects))
	}
	www := cfg.Redirects[0]
	if h := www.Forward.Instance.Hosts; len(h) != 2 || h[0].ID != 1 || h[1].ID != 2 || www.Backup.Instance.Hosts[0].ID != 3 {
		t.Fatalf("unexpected host IDs in the example")
	}
	disabled := *www
	disabled.Disabled = true
	for _, tc := range []struct {
		golden string
		rd     *Redirect
		up     map[int]bool
		active string
	}{
		{"www-all-up", www, ids(1, 2, 3), "webhosts"},
		{"www-one-down", www, ids(2, 3), "webhosts"},
		{"www-backup", www, ids(3), "fallback"},
		{"www-down", www, ids(), ""},
		{"www-disabled", &disabled, ids(1, 2, 3), ""},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			got, err := AnchorRules(tc.rd, tc.up, RuleOptions{})
			if err != nil {
				t.Fatal(err)
			}
			at := ActiveTable(tc.rd, tc.up)
			if (at == nil) != (tc.active == "") || at != nil && at.Name != tc.active {
				t.Errorf("active table %v, want %q", at, tc.active)
			}
			path := filepath.Join("testdata", "anchor", tc.golden+".conf")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("rules differ from %s:\n got:\n%s\nwant:\n%s", path, got, want)
			}
			// The text goes through pf.conf's parser, expansion and
			// compiler as any anchor file does. The compiler refuses
			// the session timeout by name; without it the rules are
			// the same less "(tcp.established 600)".
			_, err = CompileRules(AnchorPath(tc.rd.Name), got, noHost)
			if tc.active != "" {
				if err == nil || !strings.Contains(err.Error(), "relayd/www:3:1: per-rule state timeouts are not supported yet") {
					t.Fatalf("compile with the session timeout: %v", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			lax, err := AnchorRules(tc.rd, tc.up, RuleOptions{NoStateTimeout: true})
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.ReplaceAll(got, " (tcp.established 600)", ""); lax != want {
				t.Errorf("NoStateTimeout:\n got %q\nwant %q", lax, want)
			}
			if StateTimeoutWarning(tc.rd) == "" {
				t.Errorf("no warning for session timeout 600")
			}
			prog, err := CompileRules(AnchorPath(tc.rd.Name), lax, noHost)
			if err != nil {
				t.Fatal(err)
			}
			if prog.Anchor != "relayd/www" {
				t.Errorf("program anchor %q", prog.Anchor)
			}
			rdr := 0
			for _, ch := range prog.Chains {
				if ch.Name == nft.AnchorChain("relayd/www", "xrdr") {
					rdr += len(ch.Rules)
				}
			}
			if (rdr > 0) != (tc.active != "") {
				t.Errorf("%d rdr rules in the compiled anchor, active table %q", rdr, tc.active)
			}
		})
	}
}

// TestAnchorRulesOptions: protocol, port range, sticky-address, match tag,
// pflog, forward port and modes as sync_ruleset sets them.
func TestAnchorRulesOptions(t *testing.T) {
	cfg := mustParse(t, `
table <web> { 192.0.2.10 192.0.2.11 }
redirect dns {
	listen on 198.51.100.1 udp port 53 pflog
	listen on 2001:db8::1 port 8000:8010
	forward to <web> port 8053 mode source-hash "a key" check icmp
	match pftag DNS
	sticky-address
	session timeout 30
}
redirect range {
	listen on 198.51.100.2 port 9000:9010
	forward to <web> mode random check tcp
}
redirect hex {
	listen on 198.51.100.3 port 80
	forward to <web> mode source-hash 0x000000010000000000000000000000fF check tcp
}
`)
	want := []string{
		"# relayd redirection dns\n" +
			"table <dns> persist { 192.0.2.10 192.0.2.11 }\n" +
			"match in log proto udp from any to 198.51.100.1 port 53 tag \"DNS\" rdr-to <dns> port 8053 source-hash \"a key\" sticky-address\n" +
			"match in log proto tcp from any to 2001:db8::1 port 8000:8010 flags S/SA tag \"DNS\" rdr-to <dns> port 8053 source-hash \"a key\" sticky-address\n",
		"# relayd redirection range\n" +
			"table <range> persist { 192.0.2.10 192.0.2.11 }\n" +
			"pass in quick proto tcp from any to 198.51.100.2 port 9000:9010 flags S/SA keep state (tcp.established 600) rdr-to <range> random\n",
		"# relayd redirection hex\n" +
			"table <hex> persist { 192.0.2.10 192.0.2.11 }\n" +
			"pass in quick proto tcp from any to 198.51.100.3 port 80 flags S/SA keep state (tcp.established 600) rdr-to <hex> port 80 source-hash 0x000000010000000000000000000000fF\n",
	}
	up := ids(1, 2, 3, 4, 5, 6)
	for i, rd := range cfg.Redirects {
		got, err := AnchorRules(rd, up, RuleOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got != want[i] {
			t.Errorf("redirect %s:\n got %q\nwant %q", rd.Name, got, want[i])
		}
	}
	// The second rule of dns is IPv6, its pool IPv4: pf refuses that
	// family mix, so only the first compiles; range compiles.
	lax, err := AnchorRules(cfg.Redirects[1], up, RuleOptions{NoStateTimeout: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CompileRules("relayd/range", lax, noHost); err != nil {
		t.Error(err)
	}
	// The key reaches the compiled rule as the hash seed (xor of its
	// words, 0 without a key).
	for _, i := range []int{0, 2} {
		lax, err := AnchorRules(cfg.Redirects[i], up, RuleOptions{NoStateTimeout: true})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			lax = strings.Join(strings.Split(lax, "\n")[:3], "\n") // the IPv4 rule
		}
		prog, err := CompileRules(AnchorPath(cfg.Redirects[i].Name), lax, noHost)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(prog.String(), "jhash") || i == 2 && !strings.Contains(prog.String(), "seed 0x000000fe") {
			t.Errorf("%s: no source hash in\n%s", cfg.Redirects[i].Name, prog)
		}
	}
	// match rules keep no state: nothing is lost without the timeout.
	if w := StateTimeoutWarning(cfg.Redirects[0]); w != "" {
		t.Errorf("dns warning %q", w)
	}
}

func TestAnchorRulesLeastStatesRefused(t *testing.T) {
	cfg := mustParse(t, `
table <web> { 192.0.2.10 }
redirect w {
	listen on 198.51.100.1 port 80
	forward to <web> mode least-states check tcp
}
`)
	_, err := AnchorRules(cfg.Redirects[0], ids(1), RuleOptions{})
	if err == nil || !strings.Contains(err.Error(), "least-states is not supported") || !strings.Contains(err.Error(), "relayd.conf:5:") {
		t.Fatalf("err = %v", err)
	}
	// Down, there is no rule to refuse.
	if _, err := AnchorRules(cfg.Redirects[0], ids(), RuleOptions{}); err != nil {
		t.Fatal(err)
	}
}

type fakeLoader struct {
	loads []string // anchor paths, in order
	rdr   map[string]int
	fail  error
}

func (f *fakeLoader) LoadAnchor(p *nft.Program) error {
	if f.fail != nil {
		return f.fail
	}
	f.loads = append(f.loads, p.Anchor)
	n := 0
	for _, ch := range p.Chains {
		if ch.Name == nft.AnchorChain(p.Anchor, "xrdr") {
			n += len(ch.Rules)
		}
	}
	f.rdr[p.Anchor] = n
	return nil
}

// TestInstallerSync: an anchor is rewritten only when its rules change,
// and emptied when its redirection leaves the configuration.
func TestInstallerSync(t *testing.T) {
	cfg := exampleConfig(t)
	fl := &fakeLoader{rdr: map[string]int{}}
	in := &Installer{Loader: fl, Host: noHost}
	step := func(cfg *Config, up map[int]bool, want ...string) {
		t.Helper()
		got, err := in.Sync(cfg, up)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 && len(want) == 0 {
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("rewrote %q, want %q", got, want)
		}
	}
	step(cfg, ids(1, 2), "relayd/www")
	step(cfg, ids(1, 2))               // nothing changed
	step(cfg, ids(1, 2, 3))            // backup host up: not in the rules
	step(cfg, ids(2, 3), "relayd/www") // a main host down
	step(cfg, ids(3), "relayd/www")    // backup table takes over
	step(cfg, ids(), "relayd/www")     // all down: empty anchor
	if fl.rdr["relayd/www"] != 0 {
		t.Errorf("all down: %d rdr rules", fl.rdr["relayd/www"])
	}
	step(cfg, ids(1), "relayd/www")
	if fl.rdr["relayd/www"] == 0 {
		t.Errorf("up again: no rdr rule")
	}
	// A failed load keeps the old text recorded, so the next Sync retries.
	fl.fail = errors.New("boom")
	if _, err := in.Sync(cfg, ids(2)); err == nil || !strings.Contains(err.Error(), "anchor relayd/www: boom") {
		t.Fatalf("err = %v", err)
	}
	fl.fail = nil
	step(cfg, ids(2), "relayd/www")
	// Forget: the same state is written again.
	in.Forget()
	step(cfg, ids(2), "relayd/www")
	// Forget, then a reload without the redirection: its anchor is
	// still emptied.
	in.Forget()
	step(&Config{}, nil, "relayd/www")
	step(cfg, ids(2), "relayd/www")
	// Reload without the redirection: its anchor is emptied once.
	step(&Config{}, nil, "relayd/www")
	step(&Config{}, nil)
	if fl.rdr["relayd/www"] != 0 {
		t.Errorf("removed: %d rdr rules", fl.rdr["relayd/www"])
	}
}

// FuzzAnchorRules: for any configuration relayd.conf's parser accepts,
// the rules of every redirection, all hosts up, are pf.conf that pfconf
// parses and expands, or an error; never text that smuggles in other
// statements (one table line and one rule per listen address).
func FuzzAnchorRules(f *testing.F) {
	src, err := readTestdata("openbsd-examples-redirect-part.conf")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(src)
	f.Add([]byte("table <t> { 192.0.2.1 192.0.2.2 }\nredirect x {\n listen on h.example udp port 1:2 interface em0 pflog\n listen on 2001:db8::1 port 53\n forward to <t> port 5 mode source-hash check icmp\n match pftag \"a b\"\n sticky-address\n session timeout 0\n}\n"))
	f.Add([]byte("table <t> { 192.0.2.1 }\nredirect \"a b\" {\n listen on port port 80\n forward to <t> check tcp\n pftag pass\n}\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		cfg, err := Parse("f", src, func(string) ([]byte, error) { return nil, os.ErrNotExist })
		if err != nil {
			return
		}
		up := map[int]bool{}
		for _, tb := range cfg.Instances {
			for _, h := range tb.Hosts {
				up[h.ID] = true
			}
		}
		for _, rd := range cfg.Redirects {
			text, err := AnchorRules(rd, up, RuleOptions{})
			if err != nil {
				continue
			}
			if _, err := pfconf.Parse("a", []byte(text), pfconf.ParseOptions{}); err != nil {
				t.Fatalf("redirect %s: rules do not parse: %v\n%s", rd.Name, err, text)
			}
			rules := 0
			if ActiveTable(rd, up) != nil {
				rules = len(rd.Listens)
			}
			if n := strings.Count(text, "\n"); n != 2+rules {
				t.Fatalf("redirect %s: %d lines, want %d:\n%s", rd.Name, n, 2+rules, text)
			}
		}
	})
}
