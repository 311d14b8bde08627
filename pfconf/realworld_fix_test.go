package pfconf

import (
	"strings"
	"testing"

	"github.com/pfcarp/pfcarp/internal/bsdhost"
)

// fixCase is a pf.conf fragment from the real-world corpus (testdata/
// realworld) that pfconf got wrong, with what "pfctl -nvf" prints for it
// (out) or the error it reports (err, matched as a substring of the
// pfctl-style message). The fixture host is the conformance host
// (bsdhost.Static: lo0, vlan1057..vlan1064).
type fixCase struct {
	name, src, out, err string
}

func runFixCases(t *testing.T, cases []fixCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, serr, failed := runPfctl("fix.conf", []byte(c.src), bsdhost.Static(), nil)
			if c.err != "" {
				if !failed || !strings.Contains(serr, c.err) {
					t.Fatalf("want error %q, got failed=%v stderr %q stdout:\n%s", c.err, failed, serr, out)
				}
				return
			}
			if failed {
				t.Fatalf("unexpected error:\n%s", serr)
			}
			if out != c.out {
				t.Fatalf("output:\n%s\nwant:\n%s", out, c.out)
			}
			// The printed ruleset parses back to itself.
			out2, serr2, _ := runPfctl("fix.out", []byte(out), bsdhost.Static(), nil)
			if out2 != out {
				t.Fatalf("re-parse of the output gives:\n%s%s\nwant:\n%s", out2, serr2, out)
			}
		})
	}
}

// TestLexerBackslash: pfctl's lgetc drops a backslash outside quotes and
// returns the next byte as it is, so "\ " is a blank and "\#" starts a
// comment; backslash-newline joins lines (28-kian-openbsd-router.conf
// ends table lines with "\ # comment").
func TestLexerBackslash(t *testing.T) {
	runFixCases(t, []fixCase{
		{name: "escaped blank then comment", src: "table <m> { 10.0.0.0/8 \\ # rfc1918\n 192.0.2.0/24 }\n",
			out: "table <m> { 10.0.0.0/8 192.0.2.0/24 }\n"},
		{name: "continuation", src: "pass \\\nin all\n", out: "pass in all flags S/SA keep state\n"},
		{name: "escaped letter", src: "pass in on vlan10\\57 all\n", out: "pass in on vlan1057 all flags S/SA keep state\n"},
		{name: "comment continues over backslash-newline", src: "# a \\\npass in all\npass out all\n",
			out: "pass out all flags S/SA keep state\n"},
		{name: "quoted backslash kept", src: "a = \"x\\y\"\n", out: "a = \"x\\y\"\n"},
		{name: "trailing backslash at EOF", src: "pass in all \\", out: "pass in all flags S/SA keep state\n"},
	})
}

// TestOpenBSDOptions: OpenBSD's "set debug" takes syslog levels and its
// "set limit" knows "tables" (04-, 16-, 18- of the corpus); "set
// state-defaults" ends at the newline (39-).
func TestOpenBSDOptions(t *testing.T) {
	runFixCases(t, []fixCase{
		{name: "debug err", src: "set debug err\n", out: "set debug err\n"},
		{name: "debug info", src: "set debug info\n", out: "set debug info\n"},
		{name: "debug freebsd", src: "set debug misc\n", out: "set debug misc\n"},
		{name: "debug bad", src: "set debug loudest\n", err: `unknown debug level "loudest"`},
		{name: "limit tables", src: "set limit tables 1000\n", out: "set limit tables 1000\n"},
		{name: "limit bad", src: "set limit foo 1\n", err: "Bad pool name."},
		// The next line is a rule again, and it gets the defaults: pass
		// rules that keep state by default (parse.y keep_state_defaults),
		// not those that say "keep state" themselves nor block rules.
		{name: "state-defaults then rule", src: "set state-defaults pflow\n\npass in all\n",
			out: "set state-defaults pflow\npass in all flags S/SA keep state (pflow)\n"},
		{name: "state-defaults list", src: "set state-defaults pflow, no-sync\npass in all\npass out all keep state\nblock in all\n",
			out: "set state-defaults no-sync, pflow\npass in all flags S/SA keep state (no-sync, pflow)\npass out all flags S/SA keep state\nblock drop in all\n"},
	})
}

// TestOpenBSDQueues: OpenBSD 5.5+ queues (12-, 17-, 39-, 42-, 64- of the
// corpus), with parse.y's queuespec checks.
func TestOpenBSDQueues(t *testing.T) {
	runFixCases(t, []fixCase{
		{name: "tree", src: "queue rootq on vlan1057 bandwidth 100M max 100M\n" +
			"queue std parent rootq bandwidth 60M default\n" +
			"queue ssh parent rootq bandwidth 10M, min 5M burst 20M for 100ms qlimit 100\n",
			out: "queue rootq on vlan1057 bandwidth 100M, max 100M\n" +
				"queue std parent rootq bandwidth 60M default\n" +
				"queue ssh parent rootq bandwidth 10M, min 5M burst 20M for 100ms qlimit 100\n"},
		{name: "fq-codel", src: "queue tx on vlan1057 flows 1024 qlimit 1024 bandwidth 35M max 35M default\n",
			out: "queue tx on vlan1057 flows 1024 bandwidth 35M, max 35M default qlimit 1024\n"},
		{name: "burst", src: "queue up on vlan1057 bandwidth 12M burst 20M for 1000ms\n",
			out: "queue up on vlan1057 bandwidth 12M burst 20M for 1000ms\n"},
		{name: "list of interfaces", src: "queue down on { vlan1057 vlan1058 } bandwidth 32M\nqueue std parent down bandwidth 16M default\n",
			out: "queue down on vlan1057 bandwidth 32M\nqueue down on vlan1058 bandwidth 32M\nqueue std parent down bandwidth 16M default\n"},
		{name: "set queue", src: "queue q on vlan1057 bandwidth 1M default\nmatch out on vlan1057 proto tcp to port 22 set queue q set prio 5\n",
			out: "queue q on vlan1057 bandwidth 1M default\nmatch out on vlan1057 proto tcp from any to any port = ssh set ( prio 5 ) queue q\n"},
		// pfctl prints set prio as "set ( prio 7 )", which pfconf could
		// not read back before it took the list form (109- of the corpus).
		{name: "set prio prints back", src: "pass out all set prio 7\n",
			out: "pass out all flags S/SA set ( prio 7 ) keep state\n"},
		{name: "set list", src: "pass out set ( prio 3, queue(a, b) )\n",
			out: "pass out all flags S/SA set ( prio 3 ) keep state queue(a, b)\n"},
		{name: "root without interface", src: "queue q bandwidth 1M default\n", err: "queue q has no parent"},
		{name: "parent root without interface", src: "queue q parent\n", err: "syntax error"},
		{name: "percent", src: "queue q on vlan1057 bandwidth 10%\n", err: "no bandwidth in % yet"},
		{name: "burst unit", src: "queue q on vlan1057 bandwidth 1M burst 2M for 10s\n", err: "time in scspec must be in ms"},
		{name: "flows range", src: "queue q on vlan1057 flows 0 bandwidth 1M\n", err: "number of flows out of range: max 32767"},
		{name: "quantum range", src: "queue q on vlan1057 flows 2 quantum 70000 bandwidth 1M\n", err: "quantum out of range: max 65535"},
		{name: "qlimit range", src: "queue q on vlan1057 bandwidth 1M qlimit 70000\n", err: "qlimit out of range: max 65535"},
		{name: "default twice", src: "queue q on vlan1057 bandwidth 1M default default\n", err: "default cannot be respecified"},
		{name: "parent twice", src: "queue r on vlan1057 bandwidth 2M\nqueue q parent r parent r bandwidth 1M\n", err: "parent cannot be respecified"},
		{name: "bandwidth twice", src: "queue q on vlan1057 bandwidth 1M bandwidth 2M\n", err: "bandwidth cannot be respecified"},
		{name: "no parent queue", src: "queue q parent nope bandwidth 1M\n", err: "parent nope not found for q"},
		{name: "openbsd root without interface", src: "queue q flows 2 bandwidth 1M\n", err: "root queue without interface"},
		{name: "no bandwidth", src: "queue r on vlan1057 bandwidth 2M\nqueue q parent r default\n", err: "no bandwidth or flow specification"},
		{name: "flows only", src: "queue rx on vlan1057 flows 1024 qlimit 1024 default\n", out: "queue rx on vlan1057 flows 1024 default qlimit 1024\n"},
		{name: "set queue twice", src: "pass out queue a set queue b\n", err: "queue cannot be redefined"},
	})
}

// TestOnAny: OpenBSD's if_item has ANY ("pass in on any ...",
// 69-avx0-pf-mania.conf); pf matches it on every interface, so the rule is
// kept without one. Elsewhere "any" is still no interface name.
func TestOnAny(t *testing.T) {
	runFixCases(t, []fixCase{
		{name: "on any", src: "pass in on any proto tcp to port 22 modulate state\n",
			out: "pass in proto tcp from any to any port = ssh flags S/SA modulate state\n"},
		{name: "on any all", src: "pass in quick on any all allow-opts\n",
			out: "pass in quick all flags S/SA keep state allow-opts\n"},
		{name: "on ! any", src: "pass in on ! any all\n", err: "interface any must stand alone"},
		{name: "any in a list", src: "pass in on { vlan1057 any } all\n", err: "interface any must stand alone"},
		{name: "set skip on any", src: "set skip on any\n", err: "fix.conf:1: syntax error"},
		{name: "next statement", src: "pass in on ! any all\nset skip on any\n", err: "fix.conf:2: syntax error"},
	})
}

// TestSrcTrackTimeout: every max-src-* option turns on source tracking
// (parse.y sets PFRULE_SRCTRACK), and then the src.track timeout grows to
// the max-src-conn-rate interval, which pfctl -nv prints; pfconf did so only
// with an explicit source-track, so its output did not parse back to itself
// (06-, 15-, 18- and ten more corpus files).
func TestSrcTrackTimeout(t *testing.T) {
	runFixCases(t, []fixCase{
		{name: "rate", src: "pass in proto tcp to port 22 keep state (max-src-conn 10, max-src-conn-rate 10/60)\n",
			out: "pass in proto tcp from any to any port = ssh flags S/SA keep state (source-track rule, max-src-conn 10, max-src-conn-rate 10/60, src.track 60)\n"},
		{name: "longer timeout kept", src: "pass in proto tcp keep state (max-src-conn-rate 5/3, src.track 100)\n",
			out: "pass in proto tcp all flags S/SA keep state (source-track rule, max-src-conn-rate 5/3, src.track 100)\n"},
		{name: "zero seconds", src: "pass in proto tcp keep state (max-src-conn-rate 5/0)\n", err: "'max-src-conn-rate' values must be > 0"},
		{name: "rate too big", src: "pass in proto tcp keep state (max-src-conn-rate 4294968/1)\n", err: "'max-src-conn-rate' maximum rate must be < 4294967"},
	})
}

// TestLexerOddBytes: bytes pfctl's lexer treats specially, as the corpus
// has them (UTF-8 in comments: 02-, 06-, 08-, 21-, 62-). Outside comments
// and quotes a non-ASCII byte is neither alphanumeric nor punctuation to
// pfctl's C-locale lexer and ends up a one-byte token: a syntax error; so
// is the carriage return of a CRLF line (only blank and tab are skipped).
func TestLexerOddBytes(t *testing.T) {
	runFixCases(t, []fixCase{
		{name: "utf-8 comment", src: "# règles — pare-feu\npass in all # fin\n", out: "pass in all flags S/SA keep state\n"},
		{name: "utf-8 label", src: "pass in all label \"café\"\n", out: "pass in all flags S/SA keep state label \"café\"\n"},
		{name: "utf-8 word", src: "pass in on vlan1057é all\n", err: "syntax error"},
		{name: "crlf", src: "pass in all\r\n", err: "syntax error"},
		{name: "form feed is blank", src: "pass\fin all\n", out: "pass in all flags S/SA keep state\n"},
		{name: "macro in quotes is literal", src: "a = \"x\"\nb = \"$a\"\n", out: "a = \"x\"\nb = \"$a\"\n"},
	})
}

// TestDivertSpec: OpenBSD parse.y expand_divertspec (04- and 26- of the
// corpus divert DNS and FTP): divert-to takes incoming packets and gives the
// rule the address's family; divert-reply is for outgoing packets.
func TestDivertSpec(t *testing.T) {
	runFixCases(t, []fixCase{
		// Printed as FreeBSD's pfctl prints it (conformance pf0097):
		// the port only.
		{name: "af from address", src: "pass in proto tcp to port 21 divert-to 127.0.0.1 port 8021\n",
			out: "pass in inet proto tcp from any to any port = ftp flags S/SA keep state divert-to 8021\n"},
		{name: "outgoing", src: "pass out proto tcp divert-to 127.0.0.1 port 8021\n", err: "divert-to used with outgoing rule"},
		{name: "family mismatch", src: "pass in inet6 proto tcp divert-to 127.0.0.1 port 8021\n", err: "divert-to address family mismatch"},
		{name: "reply incoming", src: "pass in proto tcp divert-reply\n", err: "divert-reply used with incoming rule"},
		// OpenBSD's divert-packet is FreeBSD's divert-to PORT (a divert(4)
		// socket); it prints in FreeBSD's form.
		{name: "divert-packet", src: "pass in on vlan1057 all divert-packet port 700\n",
			out: "pass in on vlan1057 all flags S/SA keep state divert-to 700\n"},
		{name: "two diverts", src: "pass in all divert-packet port 700 divert-to 127.0.0.1 port 80\n", err: "more than one divert option"},
	})
}

// TestMacroNames: pfctl's varset accepts any word as a macro name, even one
// "$" cannot reach, such as the sysctl line an OpenBSD user left in the
// stock pf.conf's comment (117-zacbrown-configs-openbsd-etc.conf).
func TestMacroNames(t *testing.T) {
	runFixCases(t, []fixCase{
		{name: "sysctl line", src: "net.inet6.ip6.forwarding=1\npass in all\n",
			out: "net.inet6.ip6.forwarding = \"1\"\npass in all flags S/SA keep state\n"},
		{name: "quoted word", src: "\"my_if\" = \"vlan1057\"\npass in on $my_if all\n",
			out: "my_if = \"vlan1057\"\npass in on vlan1057 all flags S/SA keep state\n"},
		{name: "quoted non-word", src: "\"a{b\" = 1\n", err: "invalid macro name 'a{b'"},
		{name: "quoted keyword", src: "\"pass\" = 1\n", err: "invalid macro name 'pass'"},
		{name: "whitespace", src: "\"a b\" = 1\n", err: "macro name cannot contain whitespace"},
	})
}
