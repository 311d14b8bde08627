package netdb

import (
	"sort"
	"strings"
)

// Protocol tags of the services tables.
const (
	protoTCP uint8 = 6
	protoUDP uint8 = 17
)

type serviceName struct {
	name  string
	port  uint16
	proto uint8
}

type servicePort struct {
	port  uint16
	proto uint8
	name  string
}

type protocolName struct {
	name   string
	number uint8
}

// serviceProto maps "tcp"/"udp" to a table tag; anything else has no services.
func serviceProto(proto string) (uint8, bool) {
	switch proto {
	case "tcp":
		return protoTCP, true
	case "udp":
		return protoUDP, true
	}
	return 0, false
}

func portByName(name, proto string) (uint16, bool) {
	p, ok := serviceProto(proto)
	if !ok {
		return 0, false
	}
	t := serviceNames[:]
	i := sort.Search(len(t), func(i int) bool {
		if c := strings.Compare(t[i].name, name); c != 0 {
			return c > 0
		}
		return t[i].proto >= p
	})
	if i < len(t) && t[i].name == name && t[i].proto == p {
		return t[i].port, true
	}
	return 0, false
}

func serviceByPort(port uint16, proto string) (string, bool) {
	p, ok := serviceProto(proto)
	if !ok {
		return "", false
	}
	t := servicePorts[:]
	i := sort.Search(len(t), func(i int) bool {
		if t[i].proto != p {
			return t[i].proto > p
		}
		return t[i].port >= port
	})
	if i < len(t) && t[i].port == port && t[i].proto == p {
		return t[i].name, true
	}
	return "", false
}

func protoByName(name string) (uint8, bool) {
	t := protocolNames[:]
	i := sort.Search(len(t), func(i int) bool { return t[i].name >= name })
	if i < len(t) && t[i].name == name {
		return t[i].number, true
	}
	return 0, false
}

func protoByNumber(n uint8) (string, bool) {
	s := protocolByNumber[n]
	return s, s != ""
}

// icmpTypeEnt is one entry of pfctl's ICMP type tables.
type icmpTypeEnt struct {
	name string
	typ  uint8
}

// icmpCodeEnt is one entry of pfctl's ICMP code tables.
type icmpCodeEnt struct {
	name      string
	typ, code uint8
}

// ICMP type names as in pfctl_parser.c's icmp_type, in its order (lookups by
// number return the first match, so the order is significant).
var icmpTypes = [...]icmpTypeEnt{
	{"echoreq", 8}, {"echorep", 0}, {"unreach", 3}, {"squench", 4},
	{"redir", 5}, {"althost", 6}, {"routeradv", 9}, {"routersol", 10},
	{"timex", 11}, {"paramprob", 12}, {"timereq", 13}, {"timerep", 14},
	{"inforeq", 15}, {"inforep", 16}, {"maskreq", 17}, {"maskrep", 18},
	{"trace", 30}, {"dataconv", 31}, {"mobredir", 32}, {"ipv6-where", 33},
	{"ipv6-here", 34}, {"mobregreq", 35}, {"mobregrep", 36}, {"skip", 39},
	{"photuris", 40},
}

// ICMPv6 type names as in pfctl_parser.c's icmp6_type. Several names share a
// number (groupqry/listqry 130, wrureq/fqdnreq/niqry 139, ...); the first is
// the one pfctl prints.
var icmp6Types = [...]icmpTypeEnt{
	{"unreach", 1}, {"toobig", 2}, {"timex", 3}, {"paramprob", 4},
	{"echoreq", 128}, {"echorep", 129}, {"groupqry", 130}, {"listqry", 130},
	{"grouprep", 131}, {"listenrep", 131}, {"groupterm", 132}, {"listendone", 132},
	{"routersol", 133}, {"routeradv", 134}, {"neighbrsol", 135}, {"neighbradv", 136},
	{"redir", 137}, {"routrrenum", 138}, {"wrureq", 139}, {"wrurep", 140},
	{"fqdnreq", 139}, {"fqdnrep", 140}, {"niqry", 139}, {"nirep", 140},
	{"mtraceresp", 200}, {"mtrace", 201},
}

// ICMP code names as in pfctl_parser.c's icmp_code.
var icmpCodes = [...]icmpCodeEnt{
	{"net-unr", 3, 0}, {"host-unr", 3, 1}, {"proto-unr", 3, 2}, {"port-unr", 3, 3},
	{"needfrag", 3, 4}, {"srcfail", 3, 5}, {"net-unk", 3, 6}, {"host-unk", 3, 7},
	{"isolate", 3, 8}, {"net-prohib", 3, 9}, {"host-prohib", 3, 10}, {"net-tos", 3, 11},
	{"host-tos", 3, 12}, {"filter-prohib", 3, 13}, {"host-preced", 3, 14}, {"cutoff-preced", 3, 15},
	{"redir-net", 5, 0}, {"redir-host", 5, 1}, {"redir-tos-net", 5, 2}, {"redir-tos-host", 5, 3},
	{"normal-adv", 9, 0}, {"common-adv", 9, 16},
	{"transit", 11, 0}, {"reassemb", 11, 1},
	{"badhead", 12, 0}, {"optmiss", 12, 1}, {"badlen", 12, 2},
	{"unknown-ind", 40, 1}, {"auth-fail", 40, 2}, {"decrypt-fail", 40, 3},
}

// ICMPv6 code names as in pfctl_parser.c's icmp6_code. notnbr-unr and
// beyond-unr are both type 1 code 2 (the BSD headers define the same value);
// pfctl prints notnbr-unr.
var icmp6Codes = [...]icmpCodeEnt{
	{"admin-unr", 1, 1}, {"noroute-unr", 1, 0}, {"notnbr-unr", 1, 2}, {"beyond-unr", 1, 2},
	{"addr-unr", 1, 3}, {"port-unr", 1, 4},
	{"transit", 3, 0}, {"reassemb", 3, 1},
	{"badhead", 4, 0}, {"nxthdr", 4, 1},
	{"redironlink", 137, 0}, {"redirrouter", 137, 1},
}

func typeTable(v6 bool) []icmpTypeEnt {
	if v6 {
		return icmp6Types[:]
	}
	return icmpTypes[:]
}

func codeTable(v6 bool) []icmpCodeEnt {
	if v6 {
		return icmp6Codes[:]
	}
	return icmpCodes[:]
}

func icmpTypeByName(name string, v6 bool) (uint8, bool) {
	for _, e := range typeTable(v6) {
		if e.name == name {
			return e.typ, true
		}
	}
	return 0, false
}

func icmpTypeName(t uint8, v6 bool) (string, bool) {
	for _, e := range typeTable(v6) {
		if e.typ == t {
			return e.name, true
		}
	}
	return "", false
}

func icmpCodeByName(name string, v6 bool) (typ, code uint8, ok bool) {
	for _, e := range codeTable(v6) {
		if e.name == name {
			return e.typ, e.code, true
		}
	}
	return 0, 0, false
}

func icmpCodeName(typ, code uint8, v6 bool) (string, bool) {
	for _, e := range codeTable(v6) {
		if e.typ == typ && e.code == code {
			return e.name, true
		}
	}
	return "", false
}
