package cli

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/pfcarp/pfcarp/internal/testenv"
	"github.com/pfcarp/pfcarp/nft/nfttest"
)

func TestPfctlAnchorKernel(t *testing.T) {
	testenv.RequireRoot(t)
	ns := nfttest.New(t, "ha-cli")
	run := func(stdin string, args ...string) (string, string) {
		t.Helper()
		out, serr, code := pfctlIn(t, ns, stdin, args...)
		if code != 0 {
			t.Fatalf("pfctl %v: exit %d, stderr %q", args, code, serr)
		}
		return out, serr
	}
	run("set skip on lo\nrdr-anchor \"relayd/*\"\nanchor \"relayd/*\"\npass in on eth0 proto tcp to port 22\n", "-f", "-")
	mainRules := "anchor \"relayd/*\" all\npass in on eth0 proto tcp from any to any port = ssh flags S/SA keep state\n"
	if out, _ := run("", "-s", "rules"); out != mainRules {
		t.Fatalf("-s rules:\n%s", out)
	}
	web := "table <web> { 198.51.100.20 }\nrdr on eth0 proto tcp to 192.0.2.51 port 80 -> <web>\npass in quick on eth0 proto tcp to <web> port 80\n"
	run(web, "-a", "relayd/web", "-f", "-")
	if out, _ := run("", "-a", "relayd/web", "-s", "rules"); out != "pass in quick on eth0 proto tcp from any to <web:0> port = http flags S/SA keep state\n" {
		t.Fatalf("-a relayd/web -s rules:\n%s", out)
	}
	if out, _ := run("", "-a", "relayd/web", "-s", "nat"); out != "rdr on eth0 inet proto tcp from any to 192.0.2.51 port = http -> <web> round-robin\n" {
		t.Fatalf("-a relayd/web -s nat:\n%s", out)
	}
	if out, _ := run("", "-a", "relayd/web", "-t", "web", "-T", "show"); out != "   198.51.100.20\n" {
		t.Fatalf("-a relayd/web -t web -T show:\n%q", out)
	}
	if out, _ := run("", "-s", "rules"); out != mainRules {
		t.Fatalf("-s rules after the anchor load:\n%s", out)
	}
	if out, _ := run("", "-s", "Tables"); out != "" {
		t.Fatalf("main tables: %q", out)
	}
	_, serr := run("", "-a", "relayd/web", "-F", "all")
	if serr != "rules cleared\nnat cleared\n1 tables flushed.\n" {
		t.Errorf("-a -F all: %q", serr)
	}
	if out, _ := run("", "-a", "relayd/web", "-s", "rules"); out != "" {
		t.Fatalf("-s rules after -F: %q", out)
	}
	if out, _ := run("", "-s", "rules"); out != mainRules {
		t.Fatalf("main rules after the anchor flush:\n%s", out)
	}
	if _, serr, code := pfctlIn(t, ns, "", "-a", "nosuch", "-s", "rules"); code != 1 || !strings.Contains(serr, `anchor "nosuch" does not exist`) {
		t.Errorf("-a nosuch: exit %d, %q", code, serr)
	}

	run("pass all\n", "-a", "relayd/web/x", "-f", "-")
	if out, _ := run("", "-s", "Anchors"); out != "  relayd\n" {
		t.Errorf("-s Anchors: %q", out)
	}
	if out, _ := run("", "-v", "-s", "Anchors"); out != "  relayd\n  relayd/web\n  relayd/web/x\n" {
		t.Errorf("-v -s Anchors: %q", out)
	}
	if out, _ := run("", "-a", "relayd", "-s", "Anchors"); out != "  relayd/web\n" {
		t.Errorf("-a relayd -s Anchors: %q", out)
	}

	// load anchor: installed with the main ruleset, replaced by its next
	// load; the anchor loaded with -a stays.
	dir := t.TempDir()
	writeFile(t, dir, "lb.conf", "pass in proto tcp to port 443\n")
	run("anchor \"lb\"\nload anchor \"lb\" from \""+filepath.Join(dir, "lb.conf")+"\"\n", "-f", "-")
	if out, _ := run("", "-a", "lb", "-s", "rules"); out != "pass in proto tcp from any to any port = https flags S/SA keep state\n" {
		t.Fatalf("-a lb -s rules after load anchor:\n%s", out)
	}
	run("anchor \"lb\"\n", "-f", "-")
	if out, _ := run("", "-a", "lb", "-s", "rules"); out != "" {
		t.Fatalf("-a lb -s rules after a main load without load anchor:\n%s", out)
	}
	if out, _ := run("", "-a", "relayd/web", "-s", "Tables"); out != "web\n" {
		t.Fatalf("anchor relayd/web after main loads: tables %q", out)
	}
}
