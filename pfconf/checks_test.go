package pfconf

// Tests of pfctl's rejecting checks, one function per grammar area; each
// row of CHECKS.md names the function that covers it. A case is one input
// and the message pfctl prints for it ("LINE: message", file name left
// out); the input is parsed and expanded against bsdhost.Static().

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pfcarp/pfcarp/internal/bsdhost"
)

func TestChecksOptions(t *testing.T) {
	runCheckCases(t, []checkCase{
		{"state-defaults twice", "set state-defaults no-sync\nset state-defaults pflow\n", "2: cannot redefine state-defaults"},
		{"hostid zero", "set hostid 0\n", "1: hostid must be non-zero"},
		{"require-order value", "set require-order maybe\n", "1: invalid value 'maybe', expected 'yes' or 'no'"},
		{"optimization", "set optimization foo\n", "1: unknown optimization foo"},
		{"ruleset-optimization", "set ruleset-optimization foo\n", "1: unknown ruleset-optimization foo"},
		{"timeout name", "set timeout foo 10\n", "1: unknown timeout foo"},
		{"timeout value", "set timeout tcp.first 4294967296\n", "1: only positive values permitted"},
		{"limit name", "set limit foo 10\n", "1: unable to set limit foo 10"},
		{"syncookies value", "set syncookies sometimes\n", "1: illegal value for syncookies"},
		{"syncookies percentage", "set syncookies adaptive (start 200%, end 10%)\n", "1: illegal percentage value"},
		{"syncookies option", "set syncookies adaptive (begin 20%, end 10%)\n", "1: illegal syncookie option"},
		{"debug level", "set debug foo\n", "1: error setting debuglevel foo"},
		{"order", "set require-order yes\npass all\nset block-policy drop\n", "3: Rules must be in order: options, ethernet, normalization, queueing, translation, filtering"},
		{"macro undefined", "pass in on $nope all\n", "1: macro 'nope' not defined"},
		{"macro whitespace", "\"a b\" = \"x\"\n", "1: macro name cannot contain whitespace"},
		{"unterminated quote", "a = \"foo\n", "1: reached end of file while parsing quoted string"},
		{"string too long", "a = " + strings.Repeat("x", 8192) + "\n", "1: string too long"},
		{"number too large", "pass in all prio 99999999999999999999\n", "1: \"99999999999999999999\" invalid number: too large"},
	})
}

func TestChecksFilterOpts(t *testing.T) {
	runCheckCases(t, []checkCase{
		{"prio twice", "pass in all prio 1 prio 2\n", "1: prio cannot be redefined"},
		{"prio range", "pass in all prio 8\n", "1: prio must be 0 - 7"},
		{"set prio twice", "pass in all set prio 1 set prio 2\n", "1: prio cannot be redefined"},
		{"set prio range", "pass in all set prio (1, 8)\n", "1: prio must be 0 - 7"},
		{"tos twice", "pass in all tos 0x10 tos 0x08\n", "1: tos cannot be redefined"},
		{"tos value", "pass in all tos 300\n", "1: illegal tos value 300"},
		{"keep twice", "pass in all keep state keep state\n", "1: modulate or keep cannot be redefined"},
		{"flags twice", "pass in proto tcp all flags S/SA flags S/SA\n", "1: flags cannot be redefined"},
		{"bad flags", "pass in proto tcp all flags X/SA\n", "1: bad flags X"},
		{"flags always false", "pass in proto tcp all flags SA/S\n", "1: flags always false"},
		{"flags not tcp", "pass in proto udp all flags S/SA\n", "1: flags only apply to tcp"},
		{"os not tcp", "pass in proto udp from any os Linux to any\n", "1: OS fingerprinting only apply to tcp"},
		{"icmp-type twice", "pass in inet proto icmp all icmp-type echoreq icmp-type echorep\n", "1: icmp-type cannot be redefined"},
		{"queue twice", "pass in all queue a queue b\n", "1: queue cannot be redefined"},
		{"tag too long", "pass in all tag tttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt\n", "1: tag too long, max 63 chars"},
		{"tagged too long", "pass in all tagged tttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt\n", "1: tag too long, max 63 chars"},
		{"labels", "pass in all label a label b label c label d label e label f\n", "1: label can only be used 5 times"},
		{"label too long", "pass in all label tttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt\n", "1: rule label too long (max 63 chars)"},
		{"probability text", "pass in all probability abc\n", "1: invalid probability: abc"},
		{"probability range", "pass in all probability 150%\n", "1: invalid probability: 6442450943.000000"},
		{"return-rst ttl", "block return-rst(ttl 300) in proto tcp all\n", "1: illegal ttl value 300"},
		{"return-icmp code", "block return-icmp(300) in all\n", "1: invalid icmp code 300"},
		{"return-icmp name", "block return-icmp(foo) in all\n", "1: unknown icmp code foo"},
		{"log to", "pass in log (to foo0) all\n", "1: foo0: should be a pflog interface"},
		{"log to range", "pass in log (to pflog999) all\n", "1: pflog999: too large"},
		{"log to invalid", "pass in log (to pflogx) all\n", "1: pflogx: invalid"},
		{"allow-opts block", "block in all allow-opts\n", "1: allow-opts can only be specified for pass rules"},
		{"return-rst udp", "block return-rst in proto udp all\n", "1: return-rst can only be applied to TCP rules"},
		{"fragment port", "pass in proto tcp from any to any port 80 fragment\n", "1: fragments can be filtered only on IP header fields"},
		{"route direction", "pass route-to (vlan1057 10.0.0.1) all\n", "1: direction must be explicit with rules that specify routing"},
		{"route af", "pass out route-to (vlan1057 10.0.0.1) inet6 all\n", "1: no routing address with matching address family found."},
		{"route ifname", "pass out route-to (vlan1057vlan1057vlan1057 10.0.0.1) all\n", "1: interface name too long"},
		{"ifname", "pass in on vlan1057vlan1057vlan1057 all\n", "1: interface name too long"},
		{"rtable", "pass in all rtable 2147483648\n", "1: invalid rtable id"},
		{"route pool", "pass out route-to { (vlan1057 10.0.0.1), (vlan1057 10.0.0.2) } random all\n", "1: r.rpool.opts must be PF_POOL_ROUNDROBIN"},
		{"qname", "pass in all queue " + strings.Repeat("q", 64) + "\n", "1: rule qname too long (max 63 chars)"},
		{"pqname", "pass in all queue (a, " + strings.Repeat("q", 64) + ")\n", "1: rule pqname too long (max 63 chars)"},
		{"divert port", "pass in all divert-to 0\n", "1: invalid divert port: 0"},
		{"divert address", "pass in all divert-to foo port 80\n", "1: could not parse divert address: foo"},
		{"skip not", "set skip on ! vlan1057\n", "1: skip on ! <interface> is not supported"},
		{"skip error", "set skip on ! vlan1057\n", "1: error setting skip interface(s)"},
		{"skipping", "block return-rst in proto udp all\n", "1: skipping rule due to errors"},
		{"no valid combination", "block return-rst in proto udp all\n", "1: rule expands to no valid combination"},
		{"match route", "match out route-to (vlan1057 10.0.0.1) all\n", "1: route-to, reply-to, dup-to and fastroute must not be used on match rules"},
		{"match divert", "match in all divert-to 127.0.0.1 port 80\n", "1: divert is not supported on match rules"},
		{"nat-to direction", "pass on vlan1057 all nat-to 192.0.2.1\n", "1: nat-to and rdr-to require a direction"},
		{"nat-to state", "pass out on vlan1057 all no state nat-to 192.0.2.1\n", "1: nat-to and rdr-to require keep state"},
		{"af-to direction", "pass out on vlan1057 inet6 all af-to inet from 192.0.2.1\n", "1: af-to can only be used with direction in"},
		{"af-to same family", "pass in on vlan1057 inet all af-to inet from 192.0.2.1\n", "1: must indicate different address family with af-to"},
		{"af-to match", "match in on vlan1057 inet6 all af-to inet from 192.0.2.1\n", "1: af-to is not supported on match rules"},
	})
}

func TestChecksAddresses(t *testing.T) {
	runCheckCases(t, []checkCase{
		{"proto 0", "pass in proto 0 all\n", "1: proto 0 cannot be used"},
		{"proto range", "pass in proto 256 all\n", "1: protocol outside range"},
		{"proto name", "pass in proto foo all\n", "1: unknown protocol foo"},
		{"port op range", "pass in proto tcp from any port > 1:2 to any\n", "1: ':' cannot be used with an other port operator"},
		{"port binary range", "pass in proto tcp from any port 1:2 >< 5 to any\n", "1: ':' cannot be used with an other port operator"},
		{"port value", "pass in proto tcp from any port 70000 to any\n", "1: illegal port value 70000"},
		{"port name", "pass in proto tcp from any port foo to any\n", "1: unknown port foo"},
		{"port not tcp", "pass in proto icmp from any port 80 to any\n", "1: port only applies to tcp/udp/sctp"},
		{"user unknown op", "pass in proto tcp all user < unknown\n", "1: user unknown requires operator = or !="},
		{"user unknown range", "pass in proto tcp all user unknown >< 100\n", "1: user unknown requires operator = or !="},
		{"group unknown op", "pass in proto tcp all group > unknown\n", "1: group unknown requires operator = or !="},
		{"uid value", "pass in proto tcp all user 4294967295\n", "1: illegal uid value 4294967295"},
		{"gid value", "pass in proto tcp all group 4294967295\n", "1: illegal gid value 4294967295"},
		{"user name", "pass in proto tcp all user nosuchuser\n", "1: unknown user nosuchuser"},
		{"group name", "pass in proto tcp all group nosuchgroup\n", "1: unknown group nosuchgroup"},
		{"icmp6-type name", "pass in inet6 proto ipv6-icmp all icmp6-type foo\n", "1: unknown icmp6-type foo"},
		{"icmp6-type number", "pass in inet6 proto ipv6-icmp all icmp6-type 300\n", "1: illegal icmp6-type 300"},
		{"icmp6-code name", "pass in inet6 proto ipv6-icmp all icmp6-type echoreq code foo\n", "1: unknown icmp6-code foo"},
		{"icmp-type name", "pass in inet proto icmp all icmp-type foo\n", "1: unknown icmp-type foo"},
		{"icmp-type number", "pass in inet proto icmp all icmp-type 300\n", "1: illegal icmp-type 300"},
		{"icmp-code name", "pass in inet proto icmp all icmp-type echoreq code foo\n", "1: unknown icmp-code foo"},
		{"icmp-code number", "pass in inet proto icmp all icmp-type echoreq code 300\n", "1: illegal icmp-code 300"},
		{"icmp not icmp", "pass in inet proto tcp all icmp-type echoreq\n", "1: icmp-type/code only applies to icmp"},
		{"icmp af", "pass in proto icmp all icmp-type echoreq\n", "1: must indicate address family with icmp-type/code"},
		{"icmp6 inet", "pass in inet proto ipv6-icmp all\n", "1: proto icmp6 doesn't match address family inet"},
		{"dynaddr modifier", "pass in from (vlan1057:foo) to any\n", "1: interface vlan1057:foo has bad modifier"},
		{"dynaddr combination", "pass in from (vlan1057:network:broadcast) to any\n", "1: illegal combination of interface modifiers"},
		{"dynaddr name", "pass in from (0vlan) to any\n", "1: invalid interface name '0vlan'"},
		{"dynaddr mask", "pass in from (vlan1057)/200 to any\n", "1: bit number too big"},
		{"table name", "pass in from <tttttttttttttttttttttttttttttttt> to any\n", "1: table name 'tttttttttttttttttttttttttttttttt' too long"},
		{"range", "pass in from 10.0.0.1 - 2001:db8::1 to any\n", "1: invalid address range"},
		{"urpf destination", "pass in from any to urpf-failed\n", "1: \"urpf-failed\" is not permitted in a destination address"},
		{"not a number", "pass in all ridentifier foo\n", "1: foo is not a number"},
		{"icmp-type mismatch", "pass in inet proto icmp all icmp6-type echoreq\n", "1: icmp-type mismatch"},
		{"icmp inet6", "pass in inet6 proto icmp all\n", "1: proto icmp doesn't match address family inet6"},
	})
}

func TestChecksStateOpts(t *testing.T) {
	runCheckCases(t, []checkCase{
		{"max twice", "pass in all keep state (max 1, max 2)\n", "1: state option 'max' multiple definitions"},
		{"max range", "pass in all keep state (max 4294967296)\n", "1: only positive values permitted"},
		{"sync twice", "pass in all keep state (no-sync, no-sync)\n", "1: state option 'sync' multiple definitions"},
		{"source-track twice", "pass in all keep state (source-track, source-track)\n", "1: state option 'source-track' multiple definitions"},
		{"max-src-states twice", "pass in all keep state (max-src-states 1, max-src-states 2)\n", "1: state option 'max-src-states' multiple definitions"},
		{"max-src-states zero", "pass in all keep state (max-src-states 0)\n", "1: 'max-src-states' must be > 0"},
		{"max-src-conn twice", "pass in all keep state (max-src-conn 1, max-src-conn 2)\n", "1: state option 'max-src-conn' multiple definitions"},
		{"max-src-conn zero", "pass in all keep state (max-src-conn 0)\n", "1: 'max-src-conn' must be > 0"},
		{"max-src-conn-rate twice", "pass in all keep state (max-src-conn-rate 1/1, max-src-conn-rate 2/2)\n", "1: state option 'max-src-conn-rate' multiple definitions"},
		{"max-src-conn-rate zero", "pass in all keep state (max-src-conn-rate 0/1)\n", "1: 'max-src-conn-rate' values must be > 0"},
		{"max-src-conn-rate max", "pass in all keep state (max-src-conn-rate 5000000/1)\n", "1: 'max-src-conn-rate' maximum rate must be < 4294967"},
		{"max-src-nodes twice", "pass in all keep state (max-src-nodes 1, max-src-nodes 2)\n", "1: state option 'max-src-nodes' multiple definitions"},
		{"max-src-nodes zero", "pass in all keep state (max-src-nodes 0)\n", "1: 'max-src-nodes' must be > 0"},
		{"overload twice", "pass in all keep state (max-src-conn 1, overload <a>, overload <b>)\n", "1: multiple 'overload' table definitions"},
		{"overload name", "pass in all keep state (max-src-conn 1, overload <tttttttttttttttttttttttttttttttt>)\n", "1: table name 'tttttttttttttttttttttttttttttttt' too long"},
		{"overload alone", "pass in all keep state (overload <a>)\n", "1: 'overload' requires 'max-src-conn' or 'max-src-conn-rate'"},
		{"statelock twice", "pass in all keep state (if-bound, floating)\n", "1: state locking option: multiple definitions"},
		{"sloppy twice", "pass in all keep state (sloppy, sloppy)\n", "1: state sloppy option: multiple definitions"},
		{"pflow twice", "pass in all keep state (pflow, pflow)\n", "1: state pflow option: multiple definitions"},
		{"timeout twice", "pass in all keep state (tcp.established 10, tcp.established 20)\n", "1: state timeout tcp.established multiple definitions"},
		{"timeout name", "pass in all keep state (foo 10)\n", "1: illegal timeout name foo"},
		{"timeout not state", "pass in all keep state (frag 10)\n", "1: illegal state timeout frag"},
		{"global max-src-nodes", "pass in all keep state (source-track global, max-src-nodes 5)\n", "1: 'max-src-nodes' is incompatible with 'source-track global'"},
		{"global max-src-conn", "pass in all keep state (source-track global, max-src-conn 5)\n", "1: 'max-src-conn' is incompatible with 'source-track global'"},
		{"global max-src-conn-rate", "pass in all keep state (source-track global, max-src-conn-rate 5/5)\n", "1: 'max-src-conn-rate' is incompatible with 'source-track global'"},
		{"block keep state", "block in all keep state\n", "1: keep state is great, but only for pass rules"},
		{"sloppy modulate", "pass in proto tcp all modulate state (sloppy)\n", "1: sloppy state matching cannot be used with synproxy state or modulate state"},
		{"max-src-nodes rule", "pass in all keep state (max-src-nodes 3, source-track global)\n", "1: 'max-src-nodes' is incompatible with 'source-track global'"},
	})
}

func TestChecksScrub(t *testing.T) {
	runCheckCases(t, []checkCase{
		{"no-df twice", "scrub all no-df no-df\n", "1: no-df cannot be respecified"},
		{"min-ttl twice", "scrub all min-ttl 1 min-ttl 2\n", "1: min-ttl cannot be respecified"},
		{"max-mss twice", "scrub all max-mss 1 max-mss 2\n", "1: max-mss cannot be respecified"},
		{"set-tos twice", "scrub all set-tos 1 set-tos 2\n", "1: set-tos cannot be respecified"},
		{"fragcache twice", "scrub all fragment reassemble fragment reassemble\n", "1: fragcache cannot be respecified"},
		{"random-id twice", "scrub all random-id random-id\n", "1: random-id cannot be respecified"},
		{"reassemble twice", "scrub all reassemble tcp reassemble tcp\n", "1: reassemble tcp cannot be respecified"},
		{"reassemble udp", "scrub all reassemble udp\n", "1: scrub reassemble supports only tcp, not 'udp'"},
		{"quick", "scrub quick all\n", "1: scrub rules do not support 'quick'"},
		{"reassemble direction", "scrub in all reassemble tcp\n", "1: reassemble tcp rules can not specify direction"},
		{"min-ttl value", "scrub all min-ttl 300\n", "1: illegal min-ttl value 300"},
		{"max-mss value", "scrub all max-mss 70000\n", "1: illegal max-mss value 70000"},
		{"tagged too long", "scrub all tagged tttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt\n", "1: tag too long, max 63 chars"},
		{"rtable", "scrub all rtable 2147483648\n", "1: invalid rtable id"},
	})
}

func TestChecksTables(t *testing.T) {
	runCheckCases(t, []checkCase{
		{"range", "table <t> { 10.0.0.1 - 10.0.0.5 }\n", "1: address ranges are not permitted inside tables"},
		{"dynamic", "table <t> { (vlan1057) }\n", "1: dynamic addresses are not permitted inside tables"},
		{"table", "table <t> { <u> }\n", "1: tables cannot contain tables"},
		{"no-route", "table <t> { no-route }\n", "1: \"no-route\" is not permitted inside tables"},
		{"urpf-failed", "table <t> { urpf-failed }\n", "1: \"urpf-failed\" is not permitted inside tables"},
		{"option", "table <t> foo\n", "1: invalid table option 'foo'"},
		{"name", "table <tttttttttttttttttttttttttttttttt> { }\n", "1: table name too long, max 31 chars"},
	})
}

func TestChecksNat(t *testing.T) {
	runCheckCases(t, []checkCase{
		{"no nat pass", "no nat pass on vlan1057 from any to any\n", "1: \"pass\" not valid with \"no\""},
		{"no rdr pass", "no rdr pass on vlan1057 from any to any\n", "1: \"pass\" not valid with \"no\""},
		{"no binat pass", "no binat pass on vlan1057 from 10.0.0.1 to any\n", "1: \"pass\" not valid with \"no\""},
		{"nat needs target", "nat on vlan1057 from any to any\n", "1: translation rule requires '-> address'"},
		{"no nat target", "no nat on vlan1057 from any to any -> 192.0.2.1\n", "1: translation rule with 'no' does not need '->'"},
		{"binat needs target", "binat on vlan1057 from 10.0.0.1 to any\n", "1: 'binat' rule requires '-> address'"},
		{"no binat target", "no binat on vlan1057 from 10.0.0.1 to any -> 192.0.2.1\n", "1: 'no binat' rule does not need '->'"},
		{"binat af", "binat on vlan1057 from (vlan1057) to any -> (vlan1058)\n", "1: address family (inet/inet6) undefined"},
		{"binat versions", "binat on vlan1057 inet from 2001:db8::1 to any -> 192.0.2.1\n", "1: binat ip versions must match"},
		{"binat multiple", "binat on vlan1057 from { 10.0.0.1, 10.0.0.2 } to any -> 192.0.2.1\n", "1: multiple binat ip addresses"},
		{"binat masks", "binat on vlan1057 from 10.0.0.0/24 to any -> 192.0.2.0/25\n", "1: 'binat' source mask and redirect mask must be the same"},
		{"binat source table", "binat on vlan1057 from <t> to any -> 192.0.2.1\n", "1: invalid use of table <t> as the source address of a binat rule"},
		{"binat redirect table", "binat on vlan1057 from 10.0.0.1 to any -> <t>\n", "1: invalid use of table <t> as the redirect address of a binat rule"},
		{"binat source if", "binat on vlan1057 inet from (vlan1057) to any -> 192.0.2.1\n", "1: invalid use of interface (vlan1057) as the source address of a binat rule"},
		{"binat urpf", "binat on vlan1057 from 10.0.0.1 to urpf-failed -> 192.0.2.1\n", "1: \"urpf-failed\" is not permitted as a binat destination"},
		{"rdr static-port", "rdr on vlan1057 proto tcp from any to any port 80 -> 10.0.0.1 static-port\n", "1: the 'static-port' option is only valid with nat rules"},
		{"nat static-port range", "nat on vlan1057 from any to any -> 192.0.2.1 port 1000:2000 static-port\n", "1: the 'static-port' option can't be used when specifying a port range"},
		{"pool type twice", "nat on vlan1057 from any to any -> 192.0.2.1 round-robin random\n", "1: pool type cannot be redefined"},
		{"static-port twice", "nat on vlan1057 from any to any -> 192.0.2.1 static-port static-port\n", "1: static-port cannot be redefined"},
		{"sticky twice", "nat on vlan1057 from any to any -> { 192.0.2.1, 192.0.2.2 } round-robin sticky-address sticky-address\n", "1: sticky-address cannot be redefined"},
		{"hex key length", "nat on vlan1057 from any to any -> 192.0.2.1 source-hash 0x1234\n", "1: hex key must be 128 bits (32 hex digits) long"},
		{"hex key digits", "nat on vlan1057 from any to any -> 192.0.2.1 source-hash 0xzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz\n", "1: invalid hex key"},
		{"map-e offset", "nat on vlan1057 from any to any -> 192.0.2.1 map-e-portset 0/8/1\n", "1: MAP-E PSID offset must be 1-15"},
		{"map-e length", "nat on vlan1057 from any to any -> 192.0.2.1 map-e-portset 6/12/1\n", "1: Invalid MAP-E PSID length"},
		{"map-e zero length", "nat on vlan1057 from any to any -> 192.0.2.1 map-e-portset 6/0/1\n", "1: PSID Length = 0: this means you do not need MAP-E"},
		{"map-e psid", "nat on vlan1057 from any to any -> 192.0.2.1 map-e-portset 6/8/70000\n", "1: Invalid MAP-E PSID"},
		{"map-e twice", "nat on vlan1057 from any to any -> 192.0.2.1 map-e-portset 6/8/1 map-e-portset 6/8/1\n", "1: map-e-portset cannot be redefined"},
		{"map-e pool", "nat on vlan1057 from any to any -> 192.0.2.1 round-robin map-e-portset 6/8/1\n", "1: map-e-portset cannot be used with address pools"},
		{"map-e rdr", "rdr on vlan1057 proto tcp from any to any port 80 -> 10.0.0.1 map-e-portset 6/8/1\n", "1: the 'map-e-portset' option is only valid with nat rules"},
		{"map-e static-port", "nat on vlan1057 from any to any -> 192.0.2.1 static-port map-e-portset 6/8/1\n", "1: the 'map-e-portset' option can't be used 'static-port'"},
		{"rdr port op", "rdr on vlan1057 proto tcp from any to any port > 80 -> 10.0.0.1\n", "1: invalid port operator for rdr destination port"},
		{"rdr port not tcp", "rdr on vlan1057 proto icmp from any to any port 80 -> 10.0.0.1\n", "1: dst port only applies to tcp/udp/sctp"},
		{"nat family", "nat on vlan1057 inet from any to any -> 2001:db8::1\n", "1: no translation address with matching address family found."},
		{"tag too long", "nat on vlan1057 from any to any tag tttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt -> 192.0.2.1\n", "1: tag too long, max 63 chars"},
		{"tagged too long", "nat on vlan1057 from any to any tagged tttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt -> 192.0.2.1\n", "1: tag too long, max 63 chars"},
		{"pool multiple", "nat on vlan1057 from any to any -> { 192.0.2.1, 192.0.2.2 } random\n", "1: only round-robin valid for multiple redirection addresses"},
		{"nat rpool port", "rdr on vlan1057 proto icmp from any to any -> 10.0.0.1 port 80\n", "1: rpool port only applies to tcp/udp/sctp"},
		{"rdr src port", "rdr on vlan1057 proto icmp from any port 80 to any -> 10.0.0.1\n", "1: src port only applies to tcp/udp/sctp"},
		{"no address for af", "nat on vlan1057 from any to any -> { (vlan1058), 192.0.2.1 }\n", "1: address family not given and translation address expands to multiple address families"},
		{"map-e port range", "nat on vlan1057 from any to any -> 192.0.2.1 port 1000:2000 map-e-portset 6/8/1\n", "1: the 'map-e-portset' option can't be used when specifying a port range"},
		{"binat single", "binat on vlan1057 inet from 10.0.0.1 to any -> vlan\n", "1: binat rule must redirect to a single address"},
	})
}

func TestChecksAnchors(t *testing.T) {
	runCheckCases(t, []checkCase{
		{"reserved name", "anchor _foo\n", "1: anchor names beginning with '_' are reserved for internal use"},
		{"reserved path", "anchor \"foo/_bar\"\n", "1: anchor names beginning with '_' are reserved for internal use"},
		{"inline path", "anchor \"a/b\" {\npass\n}\n", "3: anchor paths containing '/' cannot be used for inline anchors."},
		{"no name", "anchor\n", "1: anchors without explicit rules must specify a name"},
		{"state", "anchor a all keep state\n", "1: cannot specify state handling on anchors"},
		{"flags", "anchor a proto udp all flags S/SA\n", "1: flags only apply to tcp"},
		{"tag too long", "anchor a all tagged tttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt\n", "1: tag too long, max 63 chars"},
		{"rdr-anchor src port", "rdr-anchor a proto tcp from any port 80 to any\n", "1: source port parameter not supported in rdr-anchor"},
		{"rdr-anchor port list", "rdr-anchor a proto tcp from any to any port { 80 443 }\n", "1: destination port list expansion not supported in rdr-anchor"},
		{"rdr-anchor port op", "rdr-anchor a proto tcp from any to any port > 80\n", "1: destination port operators not supported in rdr-anchor"},
		{"binat-anchor proto list", "binat-anchor a proto { tcp udp }\n", "1: proto list expansion not supported in binat-anchor"},
		{"binat-anchor fromto", "binat-anchor a from 10.0.0.1 to any\n", "1: fromto parameter not supported in binat-anchor"},
		{"inline exists", "anchor a {\npass\n}\nanchor a {\npass\n}\n", "6: inline anchor 'a' already exists"},
		{"os", "anchor a proto udp from any os Linux to any\n", "1: OS fingerprinting only applies to tcp"},
	})
}

func TestChecksAltq(t *testing.T) {
	runCheckCases(t, []checkCase{
		{"cbq flag", "altq on vlan1057 cbq bandwidth 10Mb queue { a }\nqueue a cbq(foo)\n", "2: unknown cbq flag \"foo\""},
		{"priq flag", "altq on vlan1057 priq bandwidth 10Mb queue { a }\nqueue a priority 1 priq(foo)\n", "2: unknown priq flag \"foo\""},
		{"hfsc flag", "altq on vlan1057 hfsc bandwidth 10Mb queue { a }\nqueue a hfsc(foo)\n", "2: unknown hfsc flag \"foo\""},
		{"fairq flag", "altq on vlan1057 fairq bandwidth 10Mb queue { a }\nqueue a fairq(foo)\n", "2: unknown fairq flag \"foo\""},
		{"codel option", "altq on vlan1057 codelq(foo) bandwidth 10Mb\n", "1: unknown codel option \"foo\""},
		{"linkshare twice", "altq on vlan1057 hfsc bandwidth 10Mb queue { a }\nqueue a hfsc(linkshare 1Mb, linkshare 2Mb)\n", "2: linkshare already specified"},
		{"realtime twice", "altq on vlan1057 hfsc bandwidth 10Mb queue { a }\nqueue a hfsc(realtime 1Mb, realtime 2Mb)\n", "2: realtime already specified"},
		{"upperlimit twice", "altq on vlan1057 hfsc bandwidth 10Mb queue { a }\nqueue a hfsc(upperlimit 1Mb, upperlimit 2Mb)\n", "2: upperlimit already specified"},
		{"curve timing", "altq on vlan1057 hfsc bandwidth 10Mb queue { a }\nqueue a hfsc(linkshare(1Mb 2147483648 2Mb))\n", "2: timing in curve out of range"},
		{"fairq linkshare twice", "altq on vlan1057 fairq bandwidth 10Mb queue { a }\nqueue a fairq(linkshare 1Mb, linkshare 2Mb)\n", "2: linkshare already specified"},
		{"codel interval twice", "altq on vlan1057 codelq(interval 5 interval 6) bandwidth 10Mb\n", "1: interval already specified"},
		{"codel target twice", "altq on vlan1057 codelq(target 5 target 6) bandwidth 10Mb\n", "1: target already specified"},
		{"no children", "altq on vlan1057 cbq bandwidth 10Mb\n", "1: no child queues specified"},
		{"no scheduler", "altq on vlan1057 bandwidth 10Mb queue { a }\n", "1: no scheduler specified!"},
		{"queue tbrsize", "altq on vlan1057 cbq bandwidth 10Mb queue { a }\nqueue a tbrsize 100\n", "2: cannot specify tbrsize for queue"},
		{"priority range", "altq on vlan1057 priq bandwidth 10Mb queue { a }\nqueue a priority 256 priq\n", "2: priority out of range: max 255"},
		{"priority twice", "altq on vlan1057 priq bandwidth 10Mb queue { a }\nqueue a priority 1 priority 2 priq\n", "2: priority cannot be respecified"},
		{"scheduler twice", "altq on vlan1057 priq priq bandwidth 10Mb queue { a }\n", "1: scheduler cannot be respecified"},
		{"tbrsize twice", "altq on vlan1057 priq tbrsize 1 tbrsize 2 bandwidth 10Mb queue { a }\n", "1: tbrsize cannot be respecified"},
		{"tbrsize range", "altq on vlan1057 priq tbrsize 4294967296 bandwidth 10Mb queue { a }\n", "1: tbrsize too big: max 4294967295"},
		{"qlimit twice", "altq on vlan1057 priq qlimit 1 qlimit 2 bandwidth 10Mb queue { a }\n", "1: qlimit cannot be respecified"},
		{"qlimit range", "altq on vlan1057 priq qlimit 70000 bandwidth 10Mb queue { a }\n", "1: qlimit out of range: max 65535"},
		{"bandwidth twice", "altq on vlan1057 priq bandwidth 10Mb bandwidth 10Mb queue { a }\n", "1: bandwidth cannot be respecified"},
		{"bandwidth unit", "altq on vlan1057 priq bandwidth 10Qb queue { a }\n", "1: unknown unit Q"},
		{"bandwidth percent", "altq on vlan1057 priq bandwidth 200% queue { a }\n", "1: bandwidth spec out of range"},
		{"priq children", "altq on vlan1057 priq bandwidth 10Mb queue { a }\nqueue a priority 1 priq { b }\nqueue b priority 2 priq\n", "2: priq queues cannot have child queues"},
		{"priq bandwidth", "altq on vlan1057 priq bandwidth 10Mb queue { a }\nqueue a bandwidth 1Mb priority 1 priq\n", "2: priq doesn't take bandwidth"},
		{"self child", "altq on vlan1057 cbq bandwidth 10Mb queue { a }\nqueue a cbq { a }\n", "2: queue cannot have itself as child"},
		{"not interface", "altq on ! vlan1057 cbq bandwidth 10Mb queue { a }\n", "1: altq on ! <interface> is not supported"},
		{"qassign name", "altq on vlan1057 cbq bandwidth 10Mb queue { tttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt }\n", "1: queue name 'tttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt' too long (max 63 chars)"},
		{"queue name", "queue tttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt cbq\n", "1: queue name too long (max 63 chars)"},
		{"bandwidth number", "altq on vlan1057 priq bandwidth 9223372036854775807 queue { a }\n", "1: bandwidth number too big"},
		{"queue definition", "altq on vlan1057 priq bandwidth 10Mb queue { a }\nqueue a priority 1 priq { b }\nqueue b priority 2 priq\n", "2: errors in queue definition"},
		{"scheduler per interface", "altq on vlan1057 priq bandwidth 10Mb queue { a }\nqueue a priority 1 cbq\n", "2: exactly one scheduler type per interface allowed"},
		{"no parent", "queue a priority 1 priq\n", "1: queue a has no parent"},
	})
}

func TestChecksEther(t *testing.T) {
	runCheckCases(t, []checkCase{
		{"mac", "ether pass from 00:11:22:33:44:zz\n", "1: invalid MAC address"},
		{"mac mask length", "ether pass from 00:11:22:33:44:55/49\n", "1: invalid MAC mask length"},
		{"mac mask", "ether pass from 00:11:22:33:44:55&ff:zz:ff:ff:ff:ff\n", "1: invalid MAC mask"},
		{"proto 0", "ether pass proto 0\n", "1: proto 0 cannot be used"},
		{"proto range", "ether pass proto 70000\n", "1: protocol outside range"},
		{"proto hex", "ether pass proto 0xzz\n", "1: invalid EtherType hex"},
		{"proto name", "ether pass proto foo\n", "1: Symbolic EtherType not yet supported"},
		{"l3 from", "ether pass l3 from (vlan1057) to any\n", "1: from must be an address or table"},
		{"l3 to", "ether pass l3 from any to (vlan1057)\n", "1: to must be an address or table"},
		{"queue twice", "ether pass queue a queue b\n", "1: queue cannot be redefined"},
		{"anchor reserved", "ether anchor _x\n", "1: anchor names beginning with '_' are reserved for internal use"},
		{"anchor no name", "ether anchor\n", "1: anchors without explicit rules must specify a name"},
	})
}

// TestChecksPfctl: rejecting checks of pfctl.c (the set options) and
// pfctl_parser.c (host, host_if) that pfconf reports with a position.
func TestChecksPfctl(t *testing.T) {
	runCheckCases(t, []checkCase{
		{"limit pool", "set limit foo 10\n", "1: Bad pool name."},
		{"timeout name", "set timeout foo 10\n", "1: Bad timeout name."},
		{"optimization", "set optimization foo\n", "1: invalid state timeouts optimization"},
		{"debug level", "set debug foo\n", "1: unknown debug level \"foo\""},
		{"netmask", "pass in from 10.0.0.1/129 to any\n", "1: invalid netmask '/129'"},
		{"netmask host", "pass in from 10.0.0.1/129 to any\n", "1: could not parse host specification"},
		{"modifiers", "pass in from vlan1057:network:broadcast to any\n", "1: illegal combination of interface modifiers"},
		{"network netmask", "pass in from vlan1057:network/24 to any\n", "1: network or broadcast lookup, but extra netmask given"},
		{"no address", "pass in from nosuch.example to any\n", "1: no IP address found for nosuch.example"},
	})
}

// TestChecksFiles: included and loaded files, and the statements that name
// them.
func TestChecksFiles(t *testing.T) {
	long := strings.Repeat("a", 1024)
	runCheckCases(t, []checkCase{
		{"include warn", "include \"/nonexistent/x.conf\"\n", "1: /nonexistent/x.conf: No such file or directory"},
		{"include", "include \"/nonexistent/x.conf\"\n", "1: failed to include file /nonexistent/x.conf"},
		{"table file", "table <t> file \"/nonexistent/t\"\n", "1: cannot load \"/nonexistent/t\": No such file or directory"},
		{"fingerprints", "set fingerprints \"/nonexistent/pf.os\"\n", "1: error loading fingerprints /nonexistent/pf.os"},
		{"load anchor name", "load anchor " + long + " from \"x\"\n", "1: anchorname " + long + " too long, max 1023\n"},
	})
}

// TestChecksOpenBSD: checks of OpenBSD's parse.y for its own grammar
// (nat-to, rdr-to, af-to, received-on, once, queues).
func TestChecksOpenBSD(t *testing.T) {
	runCheckCases(t, []checkCase{
		{"nat-to twice", "pass out on vlan1057 all nat-to 192.0.2.1 nat-to 192.0.2.2\n", "1: cannot respecify nat-to/binat-to"},
		{"rdr-to twice", "pass in on vlan1057 all rdr-to 10.0.0.1 rdr-to 10.0.0.2\n", "1: cannot respecify rdr-to"},
		{"af-to twice", "pass in on vlan1057 inet6 all af-to inet from 192.0.2.1 af-to inet from 192.0.2.2\n", "1: cannot respecify af-to"},
		{"af-to target family", "pass in on vlan1057 inet6 all af-to from 192.0.2.1\n", "1: no target address family specified"},
		{"af-to family", "pass in on vlan1057 inet6 all af-to from 192.0.2.1 to 10.0.0.1\n", "1: no address family specified"},
		{"af-to addresses", "pass in on vlan1057 inet6 all af-to inet from 2001:db8::1 to 10.0.0.1\n", "1: af-to addresses must be in the target address family"},
		{"received-on list", "pass in all received-on { vlan1057 vlan1058 }\n", "1: received-on only takes one interface"},
		{"anchor route", "anchor a out route-to (vlan1057 10.0.0.1) all\n", "1: cannot specify route handling on anchors"},
		{"anchor once", "anchor a all once\n", "1: cannot specify 'once' on anchors"},
		{"scrub inet6", "match in inet6 all scrub (no-df)\n", "1: address family inet6 does not support scrub options no-df, random-id"},
		{"queue name", "queue _q on vlan1057 bandwidth 10M\n", "1: queue names must not start with _"},
		{"divert-to out", "pass out all divert-to 127.0.0.1 port 80\n", "1: divert-to used with outgoing rule"},
		{"divert-reply in", "pass in all divert-reply\n", "1: divert-reply used with incoming rule"},
		{"divert twice", "pass in all divert-to 127.0.0.1 port 80 divert-reply\n", "1: more than one divert option"},
		{"received-on twice", "pass in all received-on vlan1057 received-on vlan1058\n", "1: cannot respecify received-on"},
		{"flows twice", "queue q on vlan1057 flows 10 flows 20 bandwidth 1M\n", "1: number of flows cannot be respecified"},
		{"quantum twice", "queue q on vlan1057 flows 10 quantum 10 quantum 20 bandwidth 1M\n", "1: quantum cannot be respecified"},
		{"divert-packet port", "pass in all divert-packet port 0\n", "1: invalid divert port"},
		{"set tos twice", "pass in all set tos 0x10 set tos 0x08\n", "1: tos cannot be respecified"},
		{"route-to twice", "pass out route-to (vlan1057 10.0.0.1) reply-to (vlan1057 10.0.0.2) all\n", "1: cannot respecify route-to/reply-to/dup-to"},
		{"max-pkt-rate twice", "pass in all max-pkt-rate 10/1 max-pkt-rate 20/1\n", "1: cannot respecify max-pkt-rate"},
		{"anchor name length", "anchor " + strings.Repeat("a", 1024) + "\n", "1: anchor name is longer than 1023"},
		{"anchor trailing slash", "anchor \"a/\"\n", "1: anchorrule: bad anchor name a/"},
		{"load anchor name", "load anchor from \"x\"\n", "1: anchor name is missing"},
		{"anchor empty name", "anchor \"\"\n", "1: anchor name must not be empty"},
		{"binat-to direction", "pass out on vlan1057 from 10.0.0.1 to any binat-to 192.0.2.1\n", "1: binat-to cannot be specified with a direction"},
		{"binat-to source table", "pass on vlan1057 from <t> to any binat-to 192.0.2.1\n", "1: invalid use of table <t> as the source address of a binat-to rule"},
		{"binat-to source if", "pass on vlan1057 from (vlan1057) to any binat-to 192.0.2.1\n", "1: invalid use of interface (vlan1057) as the source address of a binat-to rule"},
		{"binat-to redirect table", "pass on vlan1057 from 10.0.0.1 to any binat-to <t>\n", "1: tables cannot be used as the redirect address of a binat-to rule"},
		{"binat-to redirect if", "pass on vlan1057 from 10.0.0.1 to any binat-to (vlan1058)\n", "1: dynamic interfaces must be used with :0 in a binat-to rule"},
		{"binat-to any", "pass on vlan1057 from any to any binat-to 192.0.2.1\n", "1: source and redir addresess must have a matching network mask in binat-rule"},
		{"binat-to no-route", "pass on vlan1057 from no-route to any binat-to 192.0.2.1\n", "1: binat-to requires a specified source and redirect address"},
		{"nat-to families", "pass out on vlan1057 all nat-to { 192.0.2.1, 2001:db8::1 }\n", "1: translation spec contains addresses with different address families"},
		{"pool type table", "nat on vlan1057 from any to any -> <t> bitmask\n", "1: tables are not supported by pool type"},
	})
}

// TestChecksTableFile: process_tabledef's refusal of a table file with a
// word that is no address (pfr_buf_load, append_addr).
func TestChecksTableFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad")
	if err := os.WriteFile(path, []byte("192.0.2.1\n192.0.2.0/33\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runCheckCases(t, []checkCase{
		{"bad data", "table <t> file \"" + path + "\"\n", "1: file \"" + path + "\" contains bad data"},
	})
}

// TestChecksOneDialectAccepts: inputs that one BSD's pfctl refuses and the
// other accepts; pfconf reads both dialects, so it accepts them (each row
// of CHECKS.md marked "dialect" names the side that refuses).
func TestChecksOneDialectAccepts(t *testing.T) {
	for _, src := range []string{
		// FreeBSD asks dup-to rules for a direction, OpenBSD does not.
		"pass dup-to (vlan1057 10.0.0.1) all\n",
		// FreeBSD's default require-order; OpenBSD has none.
		"pass all\nset block-policy drop\n",
		// OpenBSD dropped route_host_list's family check.
		"pass out route-to { (vlan1057 10.0.0.1), (vlan1057 2001:db8::1) } all\n",
		// OpenBSD refuses os/user without a tcp or udp protocol per
		// expanded rule; FreeBSD only refuses a proto list without tcp.
		"pass in from any os Linux to any\n",
		"pass in all user root\n",
		// A binat-to rule has no direction (it is split in two); not
		// dialect, but checked here as one more accepted input.
		"pass on vlan1057 from 10.0.0.1 to any binat-to 192.0.2.1\n",
		// FreeBSD accepts route-to on block rules (OpenBSD rule_consistent).
		"block out route-to (vlan1057 10.0.0.1) all\n",
	} {
		if out, serr, failed := runPfctl("checks.conf", []byte(src), bsdhost.Static(), nil); failed {
			t.Errorf("%q refused:\n%s%s", src, serr, out)
		}
	}
}

// TestChecksOnePerProblem: a problem that every expanded rule of one
// statement shares is reported once (pfctl prints it per expanded rule);
// distinct problems of one rule, and the same problem on two lines, are
// each reported.
func TestChecksOnePerProblem(t *testing.T) {
	src := "block return-rst in on { vlan1057 vlan1058 } proto { udp icmp } all allow-opts\n" +
		"block return-rst in proto udp all\n"
	_, serr, failed := runPfctl("checks.conf", []byte(src), bsdhost.Static(), nil)
	if !failed {
		t.Fatal("accepted")
	}
	for line, want := range map[string]int{
		"checks.conf:1: return-rst can only be applied to TCP rules":     1,
		"checks.conf:1: allow-opts can only be specified for pass rules": 1,
		"checks.conf:2: return-rst can only be applied to TCP rules":     1,
	} {
		if n := strings.Count(serr, line+"\n"); n != want {
			t.Errorf("%q printed %d times, want %d; stderr:\n%s", line, n, want, serr)
		}
	}
}

// TestErrorListDedup: ErrorList.Add keeps one entry per position and
// message.
func TestErrorListDedup(t *testing.T) {
	var l ErrorList
	p := Position{Filename: "f", Line: 3, Column: 1}
	l.Add(p, "a")
	l.Add(p, "a")
	l.Add(p, "b")
	l.Add(Position{Filename: "f", Line: 4, Column: 1}, "a")
	if got := l.PfctlString(); got != "f:3: a\nf:3: b\nf:4: a\n" {
		t.Fatalf("got %q", got)
	}
}

// TestScrubTaggedRtable: FreeBSD scrub rules take tagged and rtable
// (parse.y scrub_opt) and print them back.
func TestScrubTaggedRtable(t *testing.T) {
	runFixCases(t, []fixCase{
		{name: "tagged rtable", src: "scrub in all ! tagged foo rtable 1 no-df\n",
			out: "scrub in all no-df fragment reassemble ! tagged foo rtable 1\n"},
	})
}
