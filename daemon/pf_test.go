package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pfcarp/pfcarp/carp"
	"github.com/pfcarp/pfcarp/internal/clock"
)

const pfEnable = `pf_enable="YES"` + "\n" + `pf_rules="pf.conf"` + "\n"

func writeTestFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// loadedAnchors returns, by anchor path, the port of the first filter rule
// of each anchor the fake system loaded last.
func loadedAnchors(s *fakeSystem) map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pf == nil {
		return nil
	}
	out := map[string]int{}
	for _, a := range s.pf.Anchors {
		out[a.Path] = int(a.Rules.Main.Filter[0].Dst.Port[0])
	}
	return out
}

// The daemon loads pf_rules as pfctl -f does: "load anchor" is accepted at
// start and on reload, the anchors loaded with the main ruleset; a bad
// anchor file is refused with its file and line, and nothing is loaded.
func TestDaemonPFLoadAnchor(t *testing.T) {
	clk := clock.NewFake(epoch)
	dir := t.TempDir()
	web, api := filepath.Join(dir, "web.conf"), filepath.Join(dir, "api.conf")
	writeTestFile(t, web, "pass in proto tcp to port 80\nanchor \"api\"\nload anchor \"api\" from \""+api+"\"\n")
	writeTestFile(t, api, "pass in proto tcp to port 8080\n")
	pf := "anchor \"web\"\nload anchor \"web\" from \"" + web + "\"\npass all\n"
	n, err := startNodePF(t, clk, carp.NewMemSegment(), "lb1", "192.0.2.2", "203.0.113.1", 10, pfEnable, pf)
	if err != nil {
		t.Fatalf("Start with load anchor: %v", err)
	}
	if got := loadedAnchors(n.sys); len(got) != 2 || got["web"] != 80 || got["web/api"] != 8080 {
		t.Fatalf("anchors loaded at start: %v", got)
	}

	// Reload reads the anchor files again.
	writeTestFile(t, web, "pass in proto tcp to port 443\nanchor \"api\"\nload anchor \"api\" from \""+api+"\"\n")
	if err := n.d.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if got := loadedAnchors(n.sys); got["web"] != 443 || got["web/api"] != 8080 {
		t.Fatalf("anchors after reload: %v", got)
	}
	loads := n.sys.count("load-pf")

	// A bad anchor file changes nothing.
	for _, tc := range []struct{ text, want string }{
		{"pass in proto tcp to port 22\npass in proto tcp to port\n", api + ":2:"},
	} {
		writeTestFile(t, api, tc.text)
		err := n.d.Reload()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Reload with %q in the anchor file: %v, want %q", tc.text, err, tc.want)
		}
		if got := n.sys.count("load-pf"); got != loads {
			t.Errorf("a refused anchor file was loaded (%d loads, want %d)", got, loads)
		}
		if got := loadedAnchors(n.sys); got["web"] != 443 || got["web/api"] != 8080 {
			t.Errorf("anchors after a refused reload: %v", got)
		}
	}
	// A missing anchor file names the load anchor statement.
	if err := os.Remove(api); err != nil {
		t.Fatal(err)
	}
	if err := n.d.Reload(); err == nil || !strings.Contains(err.Error(), web+":3:1: cannot load anchor web/api from "+api) {
		t.Errorf("Reload with a missing anchor file: %v", err)
	}

	// At start, a bad anchor file fails the start before pf is touched.
	writeTestFile(t, api, "pass in proto tcp to port\n")
	m, err := startNodePF(t, clk, carp.NewMemSegment(), "lb2", "192.0.2.3", "203.0.113.2", 20, pfEnable, pf)
	if err == nil || !strings.Contains(err.Error(), api+":1:") {
		t.Fatalf("Start with a bad anchor file: %v", err)
	}
	if got := m.sys.count("load-pf"); got != 0 {
		t.Fatalf("Start with a bad anchor file called LoadPF %d times", got)
	}
}
