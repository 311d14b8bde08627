package netdb

// Placeholder tables, replaced by the full generated databases.

var stubServices = map[string]uint16{"ftp": 21, "ssh": 22, "smtp": 25, "domain": 53, "http": 80, "auth": 113, "https": 443}

func portByName(name, proto string) (uint16, bool) { p, ok := stubServices[name]; return p, ok }
func serviceByPort(port uint16, proto string) (string, bool) {
	for n, p := range stubServices {
		if p == port {
			return n, true
		}
	}
	return "", false
}
func protoByName(name string) (uint8, bool) {
	switch name {
	case "icmp":
		return 1, true
	case "tcp":
		return 6, true
	case "udp":
		return 17, true
	case "carp":
		return 112, true
	case "pfsync":
		return 240, true
	}
	return 0, false
}
func protoByNumber(n uint8) (string, bool) {
	for _, s := range []string{"icmp", "tcp", "udp", "carp", "pfsync"} {
		if m, _ := protoByName(s); m == n {
			return s, true
		}
	}
	return "", false
}
func icmpTypeByName(name string, v6 bool) (uint8, bool)              { return 0, false }
func icmpTypeName(t uint8, v6 bool) (string, bool)                   { return "", false }
func icmpCodeByName(name string, v6 bool) (typ, code uint8, ok bool) { return 0, 0, false }
func icmpCodeName(typ, code uint8, v6 bool) (string, bool)           { return "", false }
