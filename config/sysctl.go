package config

import "strings"

// parseSysctl reads sysctl.conf lines ("name=value", # comments). pfcarp
// takes net.inet.carp.preempt (and the forwarding switches, as
// gateway_enable does); FreeBSD tunables with no pfcarp meaning are noted
// and ignored, since the Linux kernel has its own names for them.
func parseSysctl(n *Node, name string, src []byte, d *diagList) {
	s := newSource(name, src)
	off := 0
	for _, line := range strings.SplitAfter(string(src), "\n") {
		start := off
		off += len(line)
		body := line
		if i := strings.IndexByte(body, '#'); i >= 0 {
			body = body[:i]
		}
		lead := len(body) - len(strings.TrimLeft(body, " \t"))
		body = strings.TrimSpace(body)
		if body == "" {
			continue
		}
		pos := s.pos(start + lead)
		k, v, ok := strings.Cut(body, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			d.add(pos, Error, "syntax", "expected name=value")
			continue
		}
		bool01 := func() (bool, bool) {
			switch v {
			case "0":
				return false, true
			case "1":
				return true, true
			}
			d.add(pos, Error, "value", "%s=%s: want 0 or 1", k, v)
			return false, false
		}
		switch k {
		case "net.inet.carp.preempt":
			b, ok := bool01()
			if !ok {
				continue
			}
			if n.PreemptPos.IsValid() && n.PreemptPos.File != name && n.Preempt != b {
				d.addRel(pos, Error, "preempt-conflict", []Pos{n.PreemptPos}, "net.inet.carp.preempt=%s contradicts carp_preempt in the rc.conf", v)
				continue
			}
			n.Preempt, n.PreemptPos = b, pos
		case "net.inet.ip.forwarding":
			if b, ok := bool01(); ok {
				if n.GatewayEnablePos.IsValid() && n.GatewayEnable != b {
					d.addRel(pos, Error, "value", []Pos{n.GatewayEnablePos}, "net.inet.ip.forwarding=%s contradicts gateway_enable", v)
					continue
				}
				n.GatewayEnable = b
			}
		case "net.inet6.ip6.forwarding":
			if b, ok := bool01(); ok {
				n.IPv6GatewayEnable = b
			}
		case "net.inet.carp.allow":
			if b, ok := bool01(); ok && !b {
				d.add(pos, Warning, "sysctl-ignored", "net.inet.carp.allow=0 is ignored: remove the CARP groups to turn CARP off")
			}
		default:
			d.add(pos, Note, "sysctl-ignored", "%s is not a pfcarp setting; ignored (set the Linux equivalent with sysctl(8) if you need it)", k)
		}
	}
}
