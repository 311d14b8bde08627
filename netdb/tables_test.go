package netdb

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

func TestServices(t *testing.T) {
	for _, tc := range []struct {
		name  string
		proto string
		port  uint16
	}{
		{"ftp", "tcp", 21}, {"ssh", "tcp", 22}, {"smtp", "tcp", 25}, {"domain", "tcp", 53},
		{"domain", "udp", 53}, {"http", "tcp", 80}, {"auth", "tcp", 113}, {"https", "tcp", 443},
		{"pip", "tcp", 321}, {"ntp", "udp", 123}, {"ircd", "tcp", 6667},
		// aliases resolve name -> port
		{"www", "tcp", 80}, {"www-http", "udp", 80}, {"ident", "tcp", 113}, {"mail", "tcp", 25},
		{"nfs", "udp", 2049}, {"dhcps", "udp", 67}, {"spop3", "tcp", 995},
		// a name listed twice resolves to its first port
		{"rap", "tcp", 38}, {"mit-ml-dev", "tcp", 83}, {"csdmbase", "udp", 1467}, {"cadlock", "tcp", 770},
		// names differ per protocol
		{"exec", "tcp", 512}, {"biff", "udp", 512}, {"raid-cc", "udp", 2006}, {"raid-cc", "tcp", 2011},
	} {
		if got, ok := PortByName(tc.name, tc.proto); !ok || got != tc.port {
			t.Errorf("PortByName(%q, %q) = %d, %v; want %d", tc.name, tc.proto, got, ok, tc.port)
		}
	}
	for _, tc := range []struct{ name, proto string }{
		{"ircd", "udp"}, {"radius", "tcp"}, {"exec", "udp"}, {"ssh", "icmp"}, {"ssh", ""},
		{"SSH", "tcp"}, {"nosuchservice", "tcp"}, {"", "tcp"},
	} {
		if got, ok := PortByName(tc.name, tc.proto); ok {
			t.Errorf("PortByName(%q, %q) = %d; want not found", tc.name, tc.proto, got)
		}
	}
	for _, tc := range []struct {
		port  uint16
		proto string
		name  string
	}{
		{21, "tcp", "ftp"}, {22, "udp", "ssh"}, {80, "tcp", "http"}, {113, "tcp", "auth"},
		{6667, "tcp", "ircd"}, {1, "tcp", "tcpmux"}, {26208, "tcp", "wnn6_DS"}, {47557, "udp", "dbbrowse"},
		// first entry in file order wins for a port
		{351, "tcp", "matip-type-b"}, {352, "udp", "dtag-ste-sb"}, {666, "tcp", "mdqs"},
		{751, "tcp", "kerberos_master"}, {1525, "tcp", "prospero-np"}, {22273, "tcp", "wnn4"},
		{999, "tcp", "garcon"}, {999, "udp", "applix"}, {4444, "tcp", "krb524"},
		{750, "udp", "kerberos-iv"}, {514, "udp", "syslog"}, {520, "udp", "router"},
	} {
		if got, ok := ServiceByPort(tc.port, tc.proto); !ok || got != tc.name {
			t.Errorf("ServiceByPort(%d, %q) = %q, %v; want %q", tc.port, tc.proto, got, ok, tc.name)
		}
	}
	for _, tc := range []struct {
		port  uint16
		proto string
	}{
		{6667, "udp"}, {6668, "tcp"}, {1234, "tcp"}, {2413, "tcp"}, {0, "tcp"}, {65535, "udp"},
		{80, "sctp"}, {1812, "tcp"},
	} {
		if got, ok := ServiceByPort(tc.port, tc.proto); ok {
			t.Errorf("ServiceByPort(%d, %q) = %q; want not found", tc.port, tc.proto, got)
		}
	}
}

func TestServicesRoundTrip(t *testing.T) {
	// Every primary name must resolve, to a port whose primary name it is
	// (its own port, or an earlier one when the name is listed twice).
	for _, e := range servicePorts {
		proto := map[uint8]string{protoTCP: "tcp", protoUDP: "udp"}[e.proto]
		if p, ok := PortByName(e.name, proto); !ok {
			t.Errorf("%s/%s: name of port %d does not resolve", e.name, proto, e.port)
		} else if n, _ := ServiceByPort(p, proto); n != e.name {
			t.Errorf("%s/%s: resolves to %d (%s), listed for %d", e.name, proto, p, n, e.port)
		}
	}
}

func TestProtocols(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    uint8
	}{
		{"ip", 0}, {"icmp", 1}, {"ICMP", 1}, {"igmp", 2}, {"tcp", 6}, {"udp", 17}, {"ipv6", 41},
		{"gre", 47}, {"esp", 50}, {"ah", 51}, {"ipv6-icmp", 58}, {"icmp6", 58}, {"ospf", 89},
		{"OSPFIGP", 89}, {"pim", 103}, {"carp", 112}, {"vrrp", 112}, {"sctp", 132}, {"pfsync", 240},
	} {
		if got, ok := ProtoByName(tc.name); !ok || got != tc.n {
			t.Errorf("ProtoByName(%q) = %d, %v; want %d", tc.name, got, ok, tc.n)
		}
	}
	for _, tc := range []struct {
		n    uint8
		name string
	}{
		{0, "ip"}, {1, "icmp"}, {6, "tcp"}, {17, "udp"}, {58, "ipv6-icmp"}, {103, "pim"},
		{112, "carp"}, {240, "pfsync"}, {137, "mpls-in-ip"},
	} {
		if got, ok := ProtoByNumber(tc.n); !ok || got != tc.name {
			t.Errorf("ProtoByNumber(%d) = %q, %v; want %q", tc.n, got, ok, tc.name)
		}
	}
	for _, n := range []uint8{61, 63, 99, 114, 138, 200, 255} {
		if got, ok := ProtoByNumber(n); ok {
			t.Errorf("ProtoByNumber(%d) = %q; want not found", n, got)
		}
	}
	for _, name := range []string{"divert", "", "Tcp", "nosuch"} {
		if got, ok := ProtoByName(name); ok {
			t.Errorf("ProtoByName(%q) = %d; want not found", name, got)
		}
	}
}

func TestICMP(t *testing.T) {
	for _, tc := range []struct {
		name string
		v6   bool
		typ  uint8
	}{
		{"echoreq", false, 8}, {"echorep", false, 0}, {"unreach", false, 3}, {"squench", false, 4},
		{"redir", false, 5}, {"timex", false, 11}, {"photuris", false, 40}, {"skip", false, 39},
		{"echoreq", true, 128}, {"echorep", true, 129}, {"unreach", true, 1}, {"toobig", true, 2},
		{"neighbrsol", true, 135}, {"neighbradv", true, 136}, {"listqry", true, 130},
		{"niqry", true, 139}, {"mtrace", true, 201},
	} {
		if got, ok := ICMPTypeByName(tc.name, tc.v6); !ok || got != tc.typ {
			t.Errorf("ICMPTypeByName(%q, v6=%v) = %d, %v; want %d", tc.name, tc.v6, got, ok, tc.typ)
		}
	}
	if _, ok := ICMPTypeByName("toobig", false); ok {
		t.Error("toobig is an ICMPv6-only name")
	}
	if _, ok := ICMPTypeByName("althost", true); ok {
		t.Error("althost is an ICMP-only name")
	}
	for _, tc := range []struct {
		typ  uint8
		v6   bool
		name string
	}{
		{8, false, "echoreq"}, {0, false, "echorep"}, {3, false, "unreach"},
		{130, true, "groupqry"}, {131, true, "grouprep"}, {132, true, "groupterm"},
		{139, true, "wrureq"}, {140, true, "wrurep"}, {200, true, "mtraceresp"},
	} {
		if got, ok := ICMPTypeName(tc.typ, tc.v6); !ok || got != tc.name {
			t.Errorf("ICMPTypeName(%d, v6=%v) = %q, %v; want %q", tc.typ, tc.v6, got, ok, tc.name)
		}
	}
	if got, ok := ICMPTypeName(1, false); ok {
		t.Errorf("ICMP type 1 named %q", got)
	}
	for _, tc := range []struct {
		name      string
		v6        bool
		typ, code uint8
	}{
		{"port-unr", false, 3, 3}, {"net-unr", false, 3, 0}, {"needfrag", false, 3, 4},
		{"filter-prohib", false, 3, 13}, {"cutoff-preced", false, 3, 15}, {"redir-tos-host", false, 5, 3},
		{"common-adv", false, 9, 16}, {"reassemb", false, 11, 1}, {"badlen", false, 12, 2},
		{"decrypt-fail", false, 40, 3},
		{"port-unr", true, 1, 4}, {"noroute-unr", true, 1, 0}, {"admin-unr", true, 1, 1},
		{"beyond-unr", true, 1, 2}, {"reassemb", true, 3, 1}, {"nxthdr", true, 4, 1},
		{"redirrouter", true, 137, 1},
	} {
		typ, code, ok := ICMPCodeByName(tc.name, tc.v6)
		if !ok || typ != tc.typ || code != tc.code {
			t.Errorf("ICMPCodeByName(%q, v6=%v) = %d/%d, %v; want %d/%d", tc.name, tc.v6, typ, code, ok, tc.typ, tc.code)
		}
	}
	for _, tc := range []struct {
		typ, code uint8
		v6        bool
		name      string
	}{
		{3, 3, false, "port-unr"}, {3, 1, false, "host-unr"}, {1, 4, true, "port-unr"},
		{1, 2, true, "notnbr-unr"}, {3, 0, true, "transit"}, {11, 0, false, "transit"},
	} {
		if got, ok := ICMPCodeName(tc.typ, tc.code, tc.v6); !ok || got != tc.name {
			t.Errorf("ICMPCodeName(%d, %d, v6=%v) = %q, %v; want %q", tc.typ, tc.code, tc.v6, got, ok, tc.name)
		}
	}
	if got, ok := ICMPCodeName(3, 16, false); ok {
		t.Errorf("ICMP 3/16 named %q", got)
	}
	if _, _, ok := ICMPCodeByName("nxthdr", false); ok {
		t.Error("nxthdr is an ICMPv6-only code")
	}
}

// TestCorpusPorts checks every port the pfctl conformance corpus prints with
// = or != under a single protocol: names must resolve and map back to
// themselves, numbers must have no name (else pfctl would have printed it).
func TestCorpusPorts(t *testing.T) {
	files, err := filepath.Glob("../pfconf/testdata/conformance/*.ok")
	if err != nil || len(files) == 0 {
		t.Skipf("conformance corpus not found (%v)", err)
	}
	protoRe := regexp.MustCompile(`\bproto (tcp|udp)\b`)
	portRe := regexp.MustCompile(`\bport (?:=|!=) ([A-Za-z0-9_.+/*-]+)`)
	seen := 0
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for line := 1; sc.Scan(); line++ {
			m := protoRe.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			proto := m[1]
			for _, pm := range portRe.FindAllStringSubmatch(sc.Text(), -1) {
				seen++
				tok := pm[1]
				if n, err := strconv.ParseUint(tok, 10, 16); err == nil {
					if name, ok := ServiceByPort(uint16(n), proto); ok {
						t.Errorf("%s:%d: port %d/%s has name %q, corpus prints the number", f, line, n, proto, name)
					}
					continue
				}
				p, ok := PortByName(tok, proto)
				if !ok {
					t.Errorf("%s:%d: service %q/%s does not resolve", f, line, tok, proto)
					continue
				}
				if back, _ := ServiceByPort(p, proto); back != tok {
					t.Errorf("%s:%d: port %d/%s prints as %q, corpus has %q", f, line, p, proto, back, tok)
				}
			}
		}
		fh.Close()
	}
	if seen == 0 {
		t.Error("no ports found in the corpus")
	}
}

func BenchmarkPortByName(b *testing.B) {
	for b.Loop() {
		PortByName("https", "tcp")
	}
}

func BenchmarkServiceByPort(b *testing.B) {
	for b.Loop() {
		ServiceByPort(443, "tcp")
	}
}

// TestServicesFreeBSDAndOpenBSD: names of FreeBSD's services that the
// first data file lacked (found by pfconf's real-world corpus: "port mdns",
// "port ipp", "port sane-port") and OpenBSD-only names ("port spamd",
// "port ipsec-nat-t", "port domain-s", "port ssdp"). A port keeps its first
// name: 113/tcp stays "auth" although OpenBSD's line adds aliases.
func TestServicesFreeBSDAndOpenBSD(t *testing.T) {
	for _, c := range []struct {
		name, proto string
		port        uint16
	}{
		{"ipp", "tcp", 631}, {"mdns", "udp", 5353}, {"sane-port", "tcp", 6566},
		{"spamd", "tcp", 8025}, {"spamd-cfg", "tcp", 8026}, {"ipsec-nat-t", "udp", 4500},
		{"domain-s", "tcp", 853}, {"ssdp", "udp", 1900}, {"authentication", "tcp", 113},
		{"msa", "tcp", 587}, {"vnc", "tcp", 5900},
	} {
		if p, ok := PortByName(c.name, c.proto); !ok || p != c.port {
			t.Errorf("PortByName(%q, %q) = %d, %v; want %d", c.name, c.proto, p, ok, c.port)
		}
	}
	if _, ok := PortByName("spamd", "sctp"); ok {
		t.Error("spamd/sctp resolved")
	}
	for _, c := range []struct {
		port  uint16
		proto string
		name  string
	}{{113, "tcp", "auth"}, {631, "tcp", "ipp"}, {4500, "udp", "sae-urn"}, {8025, "tcp", "spamd"}} {
		if n, ok := ServiceByPort(c.port, c.proto); !ok || n != c.name {
			t.Errorf("ServiceByPort(%d, %q) = %q, %v; want %q", c.port, c.proto, n, ok, c.name)
		}
	}
}
