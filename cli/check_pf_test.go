package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A pf.conf that does not parse is an error finding at its line, and check
// exits 1; a clean one adds nothing and no "pf-not-linted" note.
func TestCheckPfRules(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rc := "ifconfig_eth0=\"192.0.2.2/24\"\ncloned_interfaces=carp0\nifconfig_carp0=\"vhid 1 pass Zq8vR2kLm4xWpQ 192.0.2.1/24\"\n" +
		"ifconfig_eth2=\"198.51.100.2/24\"\nifconfig_pfsync0=\"up syncdev eth2\"\npfsync_key=\"k3y-k3y-k3y-k3y\"\npf_enable=YES\npf_rules=\"%s\"\n"
	write("bad.conf", strings.Replace(rc, "%s", "bad-pf.conf", 1))
	write("bad-pf.conf", "set skip on lo\npass in on\n")
	write("good.conf", strings.Replace(rc, "%s", "good-pf.conf", 1))
	write("good-pf.conf", "block all\npass quick on eth2 proto pfsync keep state (no-sync)\npass quick on eth0 proto carp no state\npass out on eth0 nat-to carp0\n")
	write("blocked.conf", strings.Replace(rc, "%s", "blocked-pf.conf", 1))
	write("blocked-pf.conf", "pass on eth0 proto carp\nblock in all\n")

	out, _, code := runCheckArgs(t, dir, "-c", "bad.conf")
	if code != 1 || !strings.Contains(out, "bad-pf.conf:2:") || !strings.Contains(out, "[pf-rules-error]") {
		t.Errorf("bad pf.conf: exit %d\n%s", code, out)
	}
	out, _, code = runCheckArgs(t, dir, "-c", "good.conf")
	if code != 0 || strings.Contains(out, "pf.conf") || strings.Contains(out, "pf-not-linted") {
		t.Errorf("good pf.conf: exit %d\n%s", code, out)
	}
	out, _, code = runCheckArgs(t, dir, "-c", "blocked.conf")
	if code != 1 || !strings.Contains(out, "blocked-pf.conf:2:1: error:") || !strings.Contains(out, "[carp-blocked]") {
		t.Errorf("carp blocked: exit %d\n%s", code, out)
	}

	// A pair: the peer's pf.conf, with its own interface names and
	// address, is the same ruleset; one more rule is not.
	peer := strings.NewReplacer("eth0", "em0", "eth2", "vr0", "192.0.2.2/", "192.0.2.3/", "198.51.100.2/", "198.51.100.3/", "ifconfig_carp0=\"vhid 1", "ifconfig_carp0=\"advskew 100 vhid 1").Replace(rc)
	write("peer.conf", strings.Replace(peer, "%s", "peer-pf.conf", 1))
	good := "block all\npass quick on vr0 proto pfsync keep state (no-sync)\npass quick on em0 proto carp no state\npass out on em0 nat-to carp0\n"
	write("peer-pf.conf", good)
	out, _, code = runCheckArgs(t, dir, "-c", "good.conf", "-c", "peer.conf")
	if code != 0 || strings.Contains(out, "pf.conf") {
		t.Errorf("same rulesets: exit %d\n%s", code, out)
	}
	write("peer-pf.conf", good+"pass in on em0 proto tcp to port 22\n")
	out, _, code = runCheckArgs(t, dir, "-c", "good.conf", "-c", "peer.conf")
	if code != 0 || !strings.Contains(out, "peer-pf.conf:5:1: warning:") || !strings.Contains(out, "[pair-rules-differ]") || strings.Count(out, "[pair-rules-differ]") != 1 {
		t.Errorf("one more rule on the peer: exit %d\n%s", code, out)
	}
}
