package cli

import (
	"strings"
	"testing"
)

func TestPfctlLoadAnchorNoAction(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "pf.conf", "anchor \"foo\"\nload anchor \"foo\" from \"foo.conf\"\npass all\n")
	writeFile(t, dir, "foo.conf", "pass in proto tcp to port 22\nanchor \"bar\"\nload anchor \"bar\" from \"bar.conf\"\n")
	writeFile(t, dir, "bar.conf", "block in proto udp\n")
	out, serr, code := pfctlRun(t, dir, "", "-nvf", "pf.conf")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, serr)
	}
	wantOut := "anchor \"foo\" all\npass all flags S/SA keep state\n" +
		"pass in proto tcp from any to any port = ssh flags S/SA keep state\nanchor \"bar\" all\n" +
		"block drop in proto udp all\n"
	if out != wantOut {
		t.Errorf("stdout:\n%s\nwant:\n%s", out, wantOut)
	}
	if want := "\nLoading anchor foo from foo.conf\n\nLoading anchor foo/bar from bar.conf\n"; serr != want {
		t.Errorf("stderr %q, want %q", serr, want)
	}
	// Quiet without -v; a missing or bad file fails the load, also under -n.
	if out, serr, code := pfctlRun(t, dir, "", "-nf", "pf.conf"); code != 0 || out != "" || serr != "" {
		t.Errorf("-nf: exit %d, %q, %q", code, out, serr)
	}
	writeFile(t, dir, "bar.conf", "set skip on lo\nblock in proto\n")
	_, serr, code = pfctlRun(t, dir, "", "-nf", "pf.conf")
	if code != 1 || strings.Contains(serr, "bar.conf:1:") ||
		!strings.Contains(serr, "bar.conf:2:") || !strings.Contains(serr, "pfctl: load anchors") {
		t.Errorf("bad anchor file: exit %d, %q", code, serr)
	}
	writeFile(t, dir, "pf.conf", "load anchor \"foo\" from \"nosuch.conf\"\n")
	if _, serr, code := pfctlRun(t, dir, "", "-nf", "pf.conf"); code != 1 || !strings.Contains(serr, "pf.conf:1:1: cannot load anchor foo from nosuch.conf") {
		t.Errorf("missing anchor file: exit %d, %q", code, serr)
	}
	// -a: options parse (pfctl loads them for the main ruleset only),
	// names are checked.
	writeFile(t, dir, "a.conf", "set block-policy return\npass all\n")
	if _, serr, code := pfctlRun(t, dir, "", "-a", "foo", "-nf", "a.conf"); code != 0 {
		t.Errorf("-a with options: exit %d, %q", code, serr)
	}
	if _, serr, code := pfctlRun(t, dir, "", "-a", "_x", "-nf", "a.conf"); code != 1 || !strings.Contains(serr, "reserved for internal use") {
		t.Errorf("-a _x: exit %d, %q", code, serr)
	}
}

// A file that loads itself stops at pfload.MaxLoadAnchors.
func TestPfctlLoadAnchorBound(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "pf.conf", "anchor \"a\"\nload anchor \"a\" from \"a.conf\"\n")
	writeFile(t, dir, "a.conf", "anchor \"a\"\nload anchor \"a\" from \"a.conf\"\n")
	_, serr, code := pfctlRun(t, dir, "", "-nf", "pf.conf")
	if want := "pfctl: more than 256 load anchor statements\npfctl: load anchors\n"; code != 1 || serr != want {
		t.Errorf("exit %d, stderr %q, want %q", code, serr, want)
	}
}

// The --node hint follows an interface name without an address, not a
// host name that does not resolve.
func TestPfctlMissingInterfaceHint(t *testing.T) {
	dir := t.TempDir()
	const hint = "give it with --node rc.conf"
	writeFile(t, dir, "if.conf", "pass on eth0 from carp7:network\n")
	if _, serr, code := pfctlRun(t, dir, "", "-nf", "if.conf"); code != 1 || !strings.Contains(serr, "no IP address found for carp7:network") || !strings.Contains(serr, hint) {
		t.Errorf("interface: exit %d, %q", code, serr)
	}
	writeFile(t, dir, "host.conf", "pass from nosuch.example.invalid\n")
	if _, serr, code := pfctlRun(t, dir, "", "-nf", "host.conf"); code != 1 || !strings.Contains(serr, "no IP address found for nosuch.example.invalid") || strings.Contains(serr, hint) {
		t.Errorf("host: exit %d, %q", code, serr)
	}
}
