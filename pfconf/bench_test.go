package pfconf

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/pfcarp/pfcarp/internal/bsdhost"
)

// genRuleset returns a pf.conf with n rules of mixed kinds (filter rules
// with ports, lists, tables, state options, labels; nat and rdr), the kind
// of file a large site has.
func genRuleset(n int) []byte {
	var b bytes.Buffer
	b.WriteString("ext_if = \"vlan1057\"\nint_if = \"vlan1058\"\nweb = \"{ 80, 443 }\"\n")
	b.WriteString("table <bad> persist { 192.0.2.0/24 !192.0.2.1 }\nset block-policy drop\nset skip on lo0\n")
	for i := 0; i < n; i++ {
		a, c := i%250+1, (i/250)%250+1
		switch i % 10 {
		case 0:
			fmt.Fprintf(&b, "nat on $ext_if from 10.%d.%d.0/24 to any -> ($ext_if)\n", c, a)
		case 1:
			fmt.Fprintf(&b, "rdr on $ext_if proto tcp from any to 198.51.100.%d port $web -> { 10.%d.%d.1, 10.%d.%d.2 } round-robin sticky-address\n", a, c, a, c, a)
		case 2:
			fmt.Fprintf(&b, "block in quick on $ext_if from <bad> to any label \"bad-$nr\"\n")
		case 3:
			fmt.Fprintf(&b, "pass in on $ext_if inet proto tcp from any to 203.0.113.%d port %d flags S/SA keep state (max-src-conn 100, max-src-conn-rate 15/5, overload <bad> flush global)\n", a, 1000+i%60000)
		case 4:
			fmt.Fprintf(&b, "pass out on $int_if proto { tcp udp } from 10.%d.%d.0/24 to any port { 53 123 } keep state\n", c, a)
		case 5:
			fmt.Fprintf(&b, "pass in inet proto icmp all icmp-type echoreq code 0 keep state\n")
		case 6:
			fmt.Fprintf(&b, "block return in log on ! $int_if inet from 10.%d.%d.%d to any\n", c, a, i%200)
		case 7:
			fmt.Fprintf(&b, "pass in on $int_if proto udp from any port 68 to 255.255.255.255 port 67 no state\n")
		case 8:
			fmt.Fprintf(&b, "match out on $ext_if inet from 10.%d.0.0/16 to any nat-to ($ext_if) tag OUT%d\n", a, i)
		case 9:
			fmt.Fprintf(&b, "pass quick on $ext_if proto tcp from 2001:db8::%x to any port ssh user root label \"$srcaddr:$dstport\"\n", i)
		}
	}
	return b.Bytes()
}

// BenchmarkParseExpand10k parses and expands a generated 10,000-rule file
// (the goal: well under 200 ms per op).
func BenchmarkParseExpand10k(b *testing.B) {
	src := genRuleset(10000)
	host := bsdhost.Static()
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	var rules int
	for b.Loop() {
		f, err := Parse("bench.conf", src, ParseOptions{})
		if err != nil {
			b.Fatal(err)
		}
		rs, err := Expand(f, host)
		if err != nil {
			b.Fatal(err)
		}
		rules = len(rs.Main.Filter) + len(rs.Main.NAT) + len(rs.Main.RDR)
	}
	b.ReportMetric(float64(rules), "rules")
}

// BenchmarkPrint10k prints the expanded 10,000-rule file in -nv form.
func BenchmarkPrint10k(b *testing.B) {
	src := genRuleset(10000)
	f, err := Parse("bench.conf", src, ParseOptions{})
	if err != nil {
		b.Fatal(err)
	}
	rs, err := Expand(f, bsdhost.Static())
	if err != nil {
		b.Fatal(err)
	}
	var out bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		out.Reset()
		if err := rs.Print(&out, 1); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(out.Len()))
}
