package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/pfcarp/pfcarp/internal/testenv"
	"github.com/pfcarp/pfcarp/netdb"
	"github.com/pfcarp/pfcarp/nft/nfttest"
)

// pfctlIn runs pfctl on a thread inside ns (its netlink sockets live there).
func pfctlIn(t *testing.T, ns *nfttest.NS, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb}
	var runErr error
	if err := ns.Do(func() error {
		runErr = runPfctl(env, args, &netdb.Fixed{})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if runErr != nil {
		var ee *ExitError
		if !errors.As(runErr, &ee) {
			t.Fatalf("runPfctl %v: %v", args, runErr)
		}
		code = ee.Code
	}
	return out.String(), errb.String(), code
}

const cliConf = `table <bad> { 192.0.2.66 }
set skip on lo
rdr on eth0 proto tcp from any to 192.0.2.51 port 80 -> { 198.51.100.20, 198.51.100.21 } round-robin sticky-address
block in quick on eth0 from <bad> to any label "bad"
pass in on eth0 proto tcp to port 22 keep state
`

func TestPfctlKernel(t *testing.T) {
	testenv.RequireRoot(t)
	ns := nfttest.New(t, "cli")
	run := func(stdin string, args ...string) (string, string) {
		t.Helper()
		out, serr, code := pfctlIn(t, ns, stdin, args...)
		if code != 0 {
			t.Fatalf("pfctl %v: exit %d, stderr %q", args, code, serr)
		}
		return out, serr
	}
	if _, serr, code := pfctlIn(t, ns, "", "-s", "rules"); code != 1 || !strings.Contains(serr, "no pf ruleset loaded") {
		t.Fatalf("-s rules before load: exit %d, %q", code, serr)
	}
	run(cliConf, "-f", "-")
	out, _ := run("", "-vv", "-s", "rules")
	want := "@0 block drop in quick on eth0 from <bad:0> to any label \"bad\"\n" +
		"  [ Evaluations: 0         Packets: 0         Bytes: 0           States: 0     ]\n" +
		"@1 pass in on eth0 proto tcp from any to any port = ssh flags S/SA keep state\n" +
		"  [ Evaluations: 0         Packets: 0         Bytes: 0           States: 0     ]\n"
	if out != want {
		t.Errorf("-vv -s rules:\n%s\nwant:\n%s", out, want)
	}
	if out, _ := run("", "-s", "nat"); !strings.HasPrefix(out, "rdr on eth0 inet proto tcp from any to 192.0.2.51 port = http -> { 198.51.100.20, 198.51.100.21 } round-robin sticky-address") {
		t.Errorf("-s nat: %q", out)
	}
	if out, _ := run("", "-s", "Tables"); out != "bad\n" {
		t.Errorf("-s Tables: %q", out)
	}
	if out, _ := run("", "-s", "l"); out != "bad 0 0 0 0 0 0 0 0\n" {
		t.Errorf("-s labels: %q", out)
	}
	if _, serr := run("", "-t", "bad", "-T", "add", "198.51.100.0/24", "192.0.2.66"); serr != "1/2 addresses added.\n" {
		t.Errorf("-T add: %q", serr)
	}
	if out, _ := run("", "-t", "bad", "-T", "show"); out != "   192.0.2.66\n   198.51.100.0/24\n" {
		t.Errorf("-T show: %q", out)
	}
	if _, serr, code := pfctlIn(t, ns, "", "-t", "bad", "-T", "test", "198.51.100.7", "203.0.113.1"); code != 2 || serr != "1/2 addresses match.\n" {
		t.Errorf("-T test: exit %d, %q", code, serr)
	}
	if _, serr, code := pfctlIn(t, ns, "", "-t", "bad", "-T", "add", "nonsense"); code != 1 || !strings.Contains(serr, "invalid address") {
		t.Errorf("-T add nonsense: exit %d, %q", code, serr)
	}
	run("", "-d")
	if out, _ := run("", "-s", "info"); !strings.HasPrefix(out, "Status: Disabled") {
		t.Errorf("-s info after -d: %q", out)
	}
	run("", "-e")
	// A ruleset the kernel cannot enforce: refused with its line, and the
	// loaded one stays.
	_, serr, code := pfctlIn(t, ns, "pass in quick on eth0\npass in proto tcp to port 22 probability 50%\n", "-f", "-")
	if code != 1 || !strings.Contains(serr, "stdin:2: probability is not supported") || !strings.Contains(serr, "pf rules not loaded") {
		t.Errorf("refused load: exit %d, %q", code, serr)
	}
	if out, _ := run("", "-s", "r"); !strings.Contains(out, "label \"bad\"") {
		t.Errorf("the old ruleset is gone after a refused load: %q", out)
	}
	// -n still accepts it.
	run("pass in proto tcp to port 22 probability 50%\n", "-nf", "-")
	run("", "-F", "rules")
	if out, _ := run("", "-s", "rules"); out != "" {
		t.Errorf("-s rules after -F rules: %q", out)
	}
	if out, _ := run("", "-s", "nat"); out == "" {
		t.Error("-F rules flushed nat")
	}
}
