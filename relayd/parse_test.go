package relayd

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readTestdata(name string) ([]byte, error) { return os.ReadFile(filepath.Join("testdata", name)) }

func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	c, err := Parse("relayd.conf", []byte(src), nil)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func parseErrs(t *testing.T, src string, files map[string]string) []string {
	t.Helper()
	rf := func(n string) ([]byte, error) {
		if s, ok := files[n]; ok {
			return []byte(s), nil
		}
		return nil, os.ErrNotExist
	}
	c, err := Parse("relayd.conf", []byte(src), rf)
	if err == nil {
		t.Fatalf("Parse accepted %q: %+v", src, c)
	}
	var el ErrorList
	if !errors.As(err, &el) {
		t.Fatalf("error %T is not an ErrorList", err)
	}
	var out []string
	for _, e := range el {
		out = append(out, e.Error())
	}
	return out
}

func TestParseOpenBSDExampleRedirect(t *testing.T) {
	src, err := readTestdata("openbsd-examples-redirect-part.conf")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("relayd.conf", src, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Interval != DefaultInterval || c.Timeout != DefaultTimeout {
		t.Errorf("interval %v timeout %v", c.Interval, c.Timeout)
	}
	if len(c.Tables) != 2 || c.Tables[0].Name != "webhosts" || len(c.Tables[0].Hosts) != 2 ||
		c.Tables[0].Hosts[1].Addr.String() != "10.0.0.2" {
		t.Fatalf("tables %+v", c.Tables)
	}
	r := c.Redirects[0]
	if r.Name != "www" || len(r.Listens) != 1 || r.Listens[0].Addr != "192.168.1.1" ||
		r.Listens[0].Port.Lo != 80 || r.Listens[0].Interface != "trunk0" || r.Tag != "RELAYD" {
		t.Fatalf("redirect %+v listens %+v", r, r.Listens)
	}
	f := r.Forward
	if f.Table != "webhosts" || f.Port != 80 || f.Check.Kind != CheckHTTPCode || f.Check.Path != "/" || f.Check.Code != 200 {
		t.Fatalf("forward %+v", f)
	}
	if r.Backup == nil || r.Backup.Table != "fallback" || r.Backup.Check.Kind != CheckICMP {
		t.Fatalf("backup %+v", r.Backup)
	}
	if len(c.Instances) != 2 || c.Instances[0].Hosts[0].ID != 1 || c.Instances[1].Hosts[0].ID != 3 {
		t.Fatalf("instances %+v", c.Instances)
	}
	if r.Pos.Line != 26 || r.Pos.Col != 1 || f.Pos.Line != 32 || f.Pos.Col != 2 {
		t.Errorf("positions %v %v", r.Pos, f.Pos)
	}
}

func TestParseOpenBSDExampleFullRefusesRelays(t *testing.T) {
	src, err := readTestdata("openbsd-examples-relayd.conf")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(parseErrs(t, string(src), nil), "\n")
	for _, want := range []string{
		"relayd.conf:39:1: http protocol: layer-7",
		"relayd.conf:52:1: relay: layer-7",
		"relayd.conf:65:1: protocol: layer-7",
		"relayd.conf:70:1: relay:",
		"relayd.conf:82:1: http protocol:",
		"relayd.conf:106:1: relay:",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	if n := strings.Count(got, "\n") + 1; n != 6 {
		t.Errorf("%d errors, want 6:\n%s", n, got)
	}
}

func TestParseOptions(t *testing.T) {
	c := mustParse(t, `
interval 5
timeout 1000
log state changes
log host checks
log connection errors
prefork 3
web = "192.0.2.10"
table <w> disable { $web retry 2, 192.0.2.11 priority 5 ip ttl 3
  192.0.2.12 parent 1 }
redirect "r1" {
	listen on 198.51.100.1 tcp port 8080 interface eth0 pflog
	listen on 198.51.100.2 udp port 1000:2000
	forward to <w> port 80 mode source-hash "secret" check https "/health" host "www.example.org" digest "0123456789abcdef0123456789abcdef01234567" timeout 300 interval 10 demote carp
	sticky-address
	match pftag WEB
	session timeout 30
	disable
}
redirect r2 {
	listen on 203.0.113.1 port 25
	forward to <w> check send nothing expect "220 *" tls
}
redirect r3 {
	listen on 203.0.113.2 port 25
	forward to <w> mode least-states check script "/usr/local/bin/chk"
}
redirect r4 {
	listen on 203.0.113.3 port 80
	forward to <w> check http "/" digest "d41d8cd98f00b204e9800998ecf8427e"
	forward to <w> check tcp
}
`)
	if c.Interval != 5*time.Second || c.Timeout != time.Second || c.Log != LogStateChanges|LogHostChecks|LogConnectionErrors || c.Prefork != 3 {
		t.Fatalf("globals %+v", c)
	}
	td := c.Tables[0]
	if !td.Disabled || len(td.Hosts) != 3 || td.Hosts[0].Retry != 2 || td.Hosts[1].Priority != 5 || td.Hosts[1].TTL != 3 || td.Hosts[2].Parent != 1 {
		t.Fatalf("table %+v %+v", td, td.Hosts)
	}
	r := c.Redirects[0]
	if r.Name != "r1" || !r.Sticky || !r.MatchTag || r.Tag != "WEB" || r.SessionTimeout != 30*time.Second || !r.Disabled {
		t.Fatalf("r1 %+v", r)
	}
	if l := r.Listens[1]; l.Proto != "udp" || l.Port != (PortRange{1000, 2000}) {
		t.Fatalf("listen %+v", l)
	}
	if !r.Listens[0].PFLog || r.Listens[0].Interface != "eth0" {
		t.Fatalf("listen %+v", r.Listens[0])
	}
	f := r.Forward
	if f.Mode != ModeSourceHash || !f.Check.TLS || f.Check.Host != "www.example.org" || f.Check.MD5 ||
		f.Timeout != 300*time.Millisecond || f.Demote != "carp" || f.Instance.Skip != 1 || f.Instance.Timeout != 300*time.Millisecond {
		t.Fatalf("forward %+v instance %+v", f, f.Instance)
	}
	c2 := c.Redirects[1].Forward.Check
	if c2.Kind != CheckSendExpect || c2.Send != "" || c2.Expect != "220 *" || !c2.TLS {
		t.Fatalf("send/expect %+v", c2)
	}
	if c3 := c.Redirects[2].Forward; c3.Check.Kind != CheckScript || c3.Mode != ModeLeastStates || c3.Instance.Timeout != time.Second {
		t.Fatalf("script %+v", c3)
	}
	if c4 := c.Redirects[3].Forward.Check; !c4.MD5 || c4.Kind != CheckHTTPDigest {
		t.Fatalf("digest %+v", c4)
	}
	if len(c.Instances) != 5 {
		t.Fatalf("%d instances", len(c.Instances))
	}
}

func TestParseInclude(t *testing.T) {
	files := map[string]string{
		"/etc/t.conf": "table <t> { 192.0.2.1 }\n",
		"/etc/h.conf": "192.0.2.2, 192.0.2.3",
	}
	rf := func(n string) ([]byte, error) { return []byte(files[n]), nil }
	c, err := Parse("relayd.conf", []byte(`include "/etc/t.conf"
table <u> { include "/etc/h.conf"
 192.0.2.4 }
redirect x {
	listen on 192.0.2.100 port 80
	forward to <t> check tcp
}
`), rf)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Tables) != 2 || len(c.Tables[1].Hosts) != 3 || c.Tables[0].Pos.File != "/etc/t.conf" {
		t.Fatalf("tables %+v", c.Tables)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want []string
	}{
		{"redirect x {\n listen on 192.0.2.1 port 80\n forward to <nope> check icmp\n}\n",
			[]string{"relayd.conf:3:2: unknown table nope"}},
		{"table <t> { 192.0.2.1 }\nredirect x {\n forward to <t> check icmp\n}\n",
			[]string{"relayd.conf:3:2: unspecified port for table t"}},
		{"table <t> { 192.0.2.1 }\nredirect x {\n listen on 192.0.2.1 port 80\n forward to <t> port 80\n}\n",
			[]string{"relayd.conf:4:2: table t has no check"}},
		{"table <t> { 192.0.2.1 }\nredirect x {\n listen on 192.0.2.1 port 80\n}\n",
			[]string{"relayd.conf:2:1: redirection x has no table"}},
		{"table <t> { 192.0.2.1 }\ntable <t> { 192.0.2.2 }\n",
			[]string{"relayd.conf:2:8: table t defined twice"}},
		{"table <t> { }\n", []string{"relayd.conf:1:8: table t has no hosts"}},
		{"interval 1\ntimeout 1000\ntable <t> { 192.0.2.1 }\nredirect x {\n listen on 192.0.2.1 port 80\n forward to <t> check icmp\n}\n",
			[]string{"relayd.conf: global timeout exceeds interval", "relayd.conf: table timeout exceeds interval: t"}},
		{"x = $y\nfoo bar\ninterval -1\nroute to\n", []string{
			"relayd.conf:1:5: macro 'y' not defined",
			"relayd.conf:1:7: syntax error", // relayd's findeol ERROR token
			"relayd.conf:2:5: syntax error",
			"relayd.conf:3:10: invalid interval: -1",
			"relayd.conf:4:1: syntax error"}},
		{"table <t> { 192.0.2.1 retry 1 retry 2 }\n", []string{"relayd.conf:1:31: retry value already set"}},
		{"table <t> { 192.0.2.1 }\nredirect x {\n listen on 192.0.2.1 port 80\n forward to <t> mode loadbalance check icmp\n route to <t> check icmp\n transparent forward to <t>\n bogus\n}\n", []string{
			"relayd.conf:4:22: mode not supported for redirections",
			"relayd.conf:5:2: route to: routing to gateways is not supported (use forward to)",
			"relayd.conf:6:2: no transparent forward here",
			"relayd.conf:7:2: syntax error"}},
		{"table <t> { 192.0.2.1 }\nredirect x {\n listen on 192.0.2.1 port 80\n forward to <t> check http \"/\" digest \"abc\"\n}\n",
			[]string{"relayd.conf:4:39: invalid http digest"}},
		{"table <t> { 192.0.2.1 }\nredirect x {\n listen on 192.0.2.1 port 80\n forward to <t> check ftp \"/\" code 200\n}\n",
			[]string{"relayd.conf:4:23: invalid check type: ftp"}},
		{"include \"/nope\"\n", []string{"relayd.conf:1:9: failed to include file /nope"}},
		{"router r {\n route 192.0.2.0/24\n}\nprefork 0\n", []string{"relayd.conf:1:1: router: relayd routers are not supported", "relayd.conf:4:9: invalid number of preforked relays: 0"}},
		{"table <t> { 192.0.2.1 }\nredirect x {\n listen on 192.0.2.1 port 80\n forward to <t> check icmp\n}\nredirect x {\n listen on 192.0.2.1 port 80\n forward to <t> check icmp\n}\n",
			[]string{"relayd.conf:6:10: redirection x defined twice"}},
		{"table <t> { 192.0.2.1 parent 7 }\nredirect x {\n listen on 192.0.2.1 port 80\n forward to <t> check icmp\n}\n",
			[]string{"relayd.conf:1:13: host parent id 7 invalid"}},
		{"s = \"unterminated\n", []string{"relayd.conf:1:5: reached end of file while parsing quoted string", "relayd.conf:2:1: syntax error"}},
	} {
		got := parseErrs(t, tc.src, nil)
		if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("Parse(%q):\n got %q\nwant %q", tc.src, got, tc.want)
		}
	}
}

func TestParseIncludeLoop(t *testing.T) {
	got := parseErrs(t, "include \"a\"\n", map[string]string{"a": "include \"a\"\n"})
	if len(got) == 0 || !strings.Contains(got[0], "failed to include file a") {
		t.Fatalf("%q", got)
	}
}

func FuzzParse(f *testing.F) {
	for _, n := range []string{"openbsd-examples-relayd.conf", "openbsd-examples-redirect-part.conf"} {
		b, err := readTestdata(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("a=\"$a\"\nb=$a\ntable <t> { $b retry 1 }\nredirect x {\n listen on 1.2.3.4 port 1:2\n forward to <t> check send \"x\\n\" expect \"y*\" tls\n}\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		rf := func(n string) ([]byte, error) { return src, nil }
		c, err := Parse("f", src, rf)
		if (c == nil) == (err == nil) {
			t.Fatalf("config %v and error %v", c, err)
		}
	})
}
