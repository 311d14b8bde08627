package pfconf

import (
	"fmt"
	"math"
	"strings"

	"github.com/pfcarp/pfcarp/netdb"
)

var actionNames = [...]string{"pass", "block", "scrub", "no scrub", "nat", "no nat",
	"binat", "no binat", "rdr", "no rdr", "", "", "match"}

var anchorTypes = [...]string{"anchor", "anchor", "anchor", "anchor", "nat-anchor",
	"nat-anchor", "binat-anchor", "binat-anchor", "rdr-anchor", "rdr-anchor"}

func icmpCodeName(v uint16, v6 bool) string {
	if n, ok := netdb.ICMPCodeName(uint8(v>>8), uint8(v), v6); ok {
		return n
	}
	return fmt.Sprint(v & 255)
}

// rule prints one rule as pfctl's print_rule.
func (p *printer) rule(r *Rule) {
	if p.vv && !p.noNr {
		p.printf("@%d ", r.Nr)
	}
	call := r.AnchorCall
	switch {
	case r.Action == ActMatch && call == "":
		p.str("match")
	case int(r.Action) >= len(actionNames) || actionNames[r.Action] == "":
		p.printf("action(%d)", r.Action)
	case call != "":
		last := call
		if i := strings.LastIndexByte(call, '/'); i >= 0 {
			last = call[i+1:]
		}
		if strings.HasPrefix(last, "_") {
			p.str(anchorTypes[r.Action])
		} else {
			p.printf("%s \"%s\"", anchorTypes[r.Action], call)
		}
	default:
		p.str(actionNames[r.Action])
		if r.NatPass {
			p.str(" pass")
		}
	}
	if r.Action == ActBlock {
		switch r.Return {
		case ReturnBoth:
			p.str(" return")
		case ReturnRST:
			if r.ReturnTTL == 0 {
				p.str(" return-rst")
			} else {
				p.printf(" return-rst(ttl %d)", r.ReturnTTL)
			}
		case ReturnICMP:
			switch r.AF {
			case AFInet:
				p.printf(" return-icmp(%s)", icmpCodeName(r.ReturnICMP, false))
			case AFInet6:
				p.printf(" return-icmp6(%s)", icmpCodeName(r.ReturnICMP6, true))
			default:
				p.printf(" return-icmp(%s, %s)", icmpCodeName(r.ReturnICMP, false), icmpCodeName(r.ReturnICMP6, true))
			}
		default:
			p.str(" drop")
		}
	}
	switch r.Direction {
	case DirIn:
		p.str(" in")
	case DirOut:
		p.str(" out")
	}
	if r.Log != 0 {
		p.str(" log")
		if r.Log&^LogOn != 0 || r.LogIf != 0 {
			var opts []string
			if r.Log&LogAll != 0 {
				opts = append(opts, "all")
			}
			if r.Log&LogMatches != 0 {
				opts = append(opts, "matches")
			}
			if r.Log&LogSocket != 0 {
				opts = append(opts, "user")
			}
			if r.LogIf != 0 {
				opts = append(opts, fmt.Sprintf("to pflog%d", r.LogIf))
			}
			p.str(" (" + strings.Join(opts, ", ") + ")")
		}
	}
	if r.Quick {
		p.str(" quick")
	}
	if r.Ifname != "" {
		if r.IfNot {
			p.str(" on ! " + r.Ifname)
		} else {
			p.str(" on " + r.Ifname)
		}
	}
	if r.RouteType != RouteNone {
		switch r.RouteType {
		case RouteFastRoute:
			p.str(" fastroute")
		case RouteTo:
			p.str(" route-to")
		case RouteReplyTo:
			p.str(" reply-to")
		case RouteDupTo:
			p.str(" dup-to")
		}
		if r.RouteType != RouteFastRoute {
			p.str(" ")
			p.pool(&r.Route, 0, 0, r.AF, ActPass)
			if r.PreferIPv6Nexthop {
				p.str(" prefer-ipv6-nexthop")
			}
		}
	}
	switch r.AF {
	case AFInet:
		p.str(" inet")
	case AFInet6:
		p.str(" inet6")
	}
	if r.Proto != 0 {
		if n, ok := netdb.ProtoByNumber(r.Proto); ok {
			p.str(" proto " + n)
		} else {
			p.printf(" proto %d", r.Proto)
		}
	}
	p.fromTo(&r.Src, r.OS, &r.Dst, r.AF, r.Proto)
	if r.RcvIfname != "" {
		if r.RcvIfNot {
			p.str(" !received-on " + r.RcvIfname)
		} else {
			p.str(" received-on " + r.RcvIfname)
		}
	}
	if r.UID.Set {
		p.ugid(r.UID, "user")
	}
	if r.GID.Set {
		p.ugid(r.GID, "group")
	}
	if r.Flags != 0 || r.FlagSet != 0 {
		p.printf(" flags %s/%s", flagString(r.Flags), flagString(r.FlagSet))
	} else if (r.Action == ActPass || r.Action == ActMatch) && (r.Proto == 0 || r.Proto == 6) &&
		!r.Fragment && call == "" && r.KeepState != StateNone {
		p.str(" flags any")
	}
	if r.ICMPType != 0 {
		v6 := r.AF != AFInet
		kw := "icmp6-type"
		if !v6 {
			kw = "icmp-type"
		}
		if n, ok := netdb.ICMPTypeName(r.ICMPType-1, v6); ok {
			p.printf(" %s %s", kw, n)
		} else {
			p.printf(" %s %d", kw, r.ICMPType-1)
		}
		if r.ICMPCode != 0 {
			if n, ok := netdb.ICMPCodeName(r.ICMPType-1, r.ICMPCode-1, v6); ok {
				p.printf(" code %s", n)
			} else {
				p.printf(" code %d", r.ICMPCode-1)
			}
		}
	}
	if r.TOS != 0 {
		p.printf(" tos 0x%2.2x", r.TOS)
	}
	if r.Prio != 0 {
		v := r.Prio
		if v == prioZero {
			v = 0
		}
		p.printf(" prio %d", v)
	}
	if r.MaxPktRate.Limit != 0 {
		p.printf(" max-pkt-rate %d/%d", r.MaxPktRate.Limit, r.MaxPktRate.Seconds)
	}
	if r.MaxPktSize != 0 {
		p.printf(" max-pkt-size %d", r.MaxPktSize)
	}
	if r.SetPrioSet || (r.SetTOSSet && r.Action != ActScrub) {
		comma := ""
		p.str(" set (")
		if r.SetPrioSet {
			if r.SetPrio[0] == r.SetPrio[1] {
				p.printf("%s prio %d", comma, r.SetPrio[0])
			} else {
				p.printf("%s prio(%d, %d)", comma, r.SetPrio[0], r.SetPrio[1])
			}
			comma = ","
		}
		if r.SetTOSSet && r.Action != ActScrub {
			p.printf("%s tos 0x%2.2x", comma, r.SetTOS)
		}
		p.str(" )")
	}
	switch {
	case r.KeepState == StateNone && r.Action == ActPass && call == "":
		p.str(" no state")
	case r.KeepState == StateNormal && r.Action != ActMatch:
		p.str(" keep state")
	case r.KeepState == StateModulate:
		p.str(" modulate state")
	case r.KeepState == StateSynproxy:
		p.str(" synproxy state")
	}
	if r.Prob != 0 {
		s := fmt.Sprintf("%f", float64(r.Prob)*100.0/(float64(math.MaxUint32)+1.0))
		i := len(s) - 1
		for ; i > 0; i-- {
			if s[i] == '0' {
				continue
			}
			if s[i] == '.' {
				i--
			}
			break
		}
		p.printf(" probability %s%%", s[:i+1])
	}
	p.stateOpts(r)
	if r.StateLimiterSet {
		p.printf(" state limiter id %d", r.StateLimiter)
		if r.StateLimiterNoMatch {
			p.str(" (no-match)")
		}
	}
	if r.AllowOpts {
		p.str(" allow-opts")
	}
	if r.Fragment {
		p.str(" fragment")
	}
	if r.Action == ActScrub {
		s := &r.Scrub
		if s.NoDF {
			p.str(" no-df")
		}
		if s.RandomID {
			p.str(" random-id")
		}
		if s.MinTTL != 0 {
			p.printf(" min-ttl %d", s.MinTTL)
		}
		if s.MaxMSS != 0 {
			p.printf(" max-mss %d", s.MaxMSS)
		}
		if s.SetTOSSet {
			p.printf(" set-tos 0x%2.2x", s.SetTOS)
		}
		if s.ReassembleTCP {
			p.str(" reassemble tcp")
		}
		if s.NoReassemble {
			p.str(" fragment no reassemble")
		} else {
			p.str(" fragment reassemble")
		}
	} else if s := &r.Scrub; s.Set {
		var opts []string
		if s.NoDF {
			opts = append(opts, "no-df")
		}
		if s.RandomID {
			opts = append(opts, "random-id")
		}
		if s.MinTTL != 0 {
			opts = append(opts, fmt.Sprintf("min-ttl %d", s.MinTTL))
		}
		if s.MaxMSS != 0 {
			opts = append(opts, fmt.Sprintf("max-mss %d", s.MaxMSS))
		}
		if s.SetTOSSet {
			opts = append(opts, fmt.Sprintf("set-tos 0x%2.2x", s.SetTOS))
		}
		if s.ReassembleTCP {
			opts = append(opts, "reassemble tcp")
		}
		p.str(" scrub (" + strings.Join(opts, ", ") + ")")
	}
	for _, l := range r.Labels {
		p.printf(" label \"%s\"", l)
	}
	if r.Ridentifier != 0 {
		p.printf(" ridentifier %d", r.Ridentifier)
	}
	if r.Dnpipe != 0 || r.Dnrpipe != 0 {
		kw := "dnpipe"
		if r.DnQueue {
			kw = "dnqueue"
		}
		if r.Dnrpipe != 0 {
			p.printf(" %s(%d, %d)", kw, r.Dnpipe, r.Dnrpipe)
		} else {
			p.printf(" %s %d", kw, r.Dnpipe)
		}
	}
	if r.Queue != "" && r.PQueue != "" {
		p.printf(" queue(%s, %s)", r.Queue, r.PQueue)
	} else if r.Queue != "" {
		p.printf(" queue %s", r.Queue)
	}
	if r.Tag != "" {
		p.printf(" tag %s", r.Tag)
	}
	if r.Tagged != "" {
		if r.TaggedNot {
			p.str(" !")
		}
		p.printf(" tagged %s", r.Tagged)
	}
	if r.Rtable >= 0 {
		p.printf(" rtable %d", r.Rtable)
	}
	if r.DivertPort != 0 {
		p.printf(" divert-to %d", r.DivertPort)
	}
	if r.DivertReply {
		p.str(" divert-reply")
	}
	if call == "" {
		switch {
		case r.AFTo && !r.NAT.Empty():
			naf := "inet"
			if r.NAF == AFInet6 {
				naf = "inet6"
			}
			p.printf(" af-to %s from ", naf)
			p.pool(&r.NAT, r.NAT.ProxyPort[0], r.NAT.ProxyPort[1], r.NAF, ActNAT)
			if !r.RDR.Empty() {
				p.str(" to ")
				p.pool(&r.RDR, r.RDR.ProxyPort[0], r.RDR.ProxyPort[1], r.NAF, ActRDR)
			}
		case r.Action == ActNAT || r.Action == ActBINAT || r.Action == ActRDR:
			if !r.NAT.Empty() {
				p.str(" -> ")
				p.pool(&r.NAT, r.NAT.ProxyPort[0], r.NAT.ProxyPort[1], r.AF, r.Action)
			}
		default:
			if !r.NAT.Empty() {
				p.str(" nat-to ")
				p.pool(&r.NAT, r.NAT.ProxyPort[0], r.NAT.ProxyPort[1], r.AF, ActNAT)
			}
			if !r.RDR.Empty() {
				p.str(" rdr-to ")
				p.pool(&r.RDR, r.RDR.ProxyPort[0], r.RDR.ProxyPort[1], r.AF, ActRDR)
			}
		}
	}
	if r.Once {
		p.str(" once")
	}
}

func (p *printer) stateOpts(r *Rule) {
	so := &r.StateOpts
	var opts []string
	if so.Max != 0 {
		opts = append(opts, fmt.Sprintf("max %d", so.Max))
	}
	if so.NoSync {
		opts = append(opts, "no-sync")
	}
	if so.SourceTrack {
		if so.SourceTrackRule {
			opts = append(opts, "source-track rule")
		} else {
			opts = append(opts, "source-track global")
		}
	}
	if so.MaxSrcStates != 0 {
		opts = append(opts, fmt.Sprintf("max-src-states %d", so.MaxSrcStates))
	}
	if so.MaxSrcConn != 0 {
		opts = append(opts, fmt.Sprintf("max-src-conn %d", so.MaxSrcConn))
	}
	if so.MaxSrcConnRate.Limit != 0 {
		opts = append(opts, fmt.Sprintf("max-src-conn-rate %d/%d", so.MaxSrcConnRate.Limit, so.MaxSrcConnRate.Seconds))
	}
	if so.MaxSrcNodes != 0 {
		opts = append(opts, fmt.Sprintf("max-src-nodes %d", so.MaxSrcNodes))
	}
	if so.Overload != "" {
		s := fmt.Sprintf("overload <%s>", so.Overload)
		if so.Flush {
			s += " flush"
		}
		if so.FlushGlobal {
			s += " global"
		}
		opts = append(opts, s)
	}
	if so.IfBound {
		opts = append(opts, "if-bound")
	}
	if so.Sloppy {
		opts = append(opts, "sloppy")
	}
	if so.Pflow {
		opts = append(opts, "pflow")
	}
	for i := 0; i < TmMax; i++ {
		if so.Timeouts[i] != 0 {
			opts = append(opts, fmt.Sprintf("%s %d", timeoutName(i), so.Timeouts[i]))
		}
	}
	if len(opts) > 0 {
		p.str(" (" + strings.Join(opts, ", ") + ")")
	}
}

func (p *printer) fromTo(src *RuleAddr, os string, dst *RuleAddr, af AF, proto uint8) {
	pname := "udp"
	if proto == 6 {
		pname = "tcp"
	}
	if src.Addr.Type == AddrMask && dst.Addr.Type == AddrMask && src.Addr.IsAny() && dst.Addr.IsAny() &&
		src.Addr.Bits == 0 && dst.Addr.Bits == 0 && !src.Neg && !dst.Neg &&
		src.PortOp == OpNone && dst.PortOp == OpNone && os == "" {
		p.str(" all")
		return
	}
	p.str(" from ")
	if src.Neg {
		p.str("! ")
	}
	p.str(addrString(src.Addr, af, p.vv))
	if src.PortOp != OpNone {
		p.str(portString(src.PortOp, src.Port[0], src.Port[1], pname))
	}
	if os != "" {
		p.printf(" os \"%s\"", os)
	}
	p.str(" to ")
	if dst.Neg {
		p.str("! ")
	}
	p.str(addrString(dst.Addr, af, p.vv))
	if dst.PortOp != OpNone {
		p.str(portString(dst.PortOp, dst.Port[0], dst.Port[1], pname))
	}
}

func (p *printer) ugid(m IDMatch, kw string) {
	a1 := fmt.Sprint(m.ID[0])
	a2 := fmt.Sprint(m.ID[1])
	if m.ID[0] == math.MaxUint32 && (m.Op == OpEQ || m.Op == OpNE) {
		a1 = "unknown"
	}
	p.str(" " + kw + opString(m.Op, a1, a2))
}

// pool prints a translation or routing pool as pfctl's print_pool.
func (p *printer) pool(pl *Pool, p1, p2 uint16, af AF, id Action) {
	multi := len(pl.Addrs) > 1
	if multi {
		p.str("{ ")
	}
	for i, pa := range pl.Addrs {
		af := af
		if pa.Addr.Type == AddrMask && pa.Addr.Addr.IsValid() {
			af = afOf(pa.Addr.Addr)
		}
		switch id {
		case ActNAT, ActRDR, ActBINAT:
			p.str(addrString(pa.Addr, af, false))
		default:
			if pa.Addr.Type == AddrMask && !pa.Addr.Addr.IsValid() {
				p.str(pa.Ifname)
			} else {
				p.str("(" + pa.Ifname + " " + addrString(pa.Addr, af, false) + ")")
			}
		}
		if i+1 < len(pl.Addrs) {
			p.str(", ")
		} else if multi {
			p.str(" }")
		}
	}
	switch id {
	case ActNAT:
		if (p1 != natProxyPortLow || p2 != natProxyPortHigh) && (p1 != 0 || p2 != 0) {
			if p1 == p2 {
				p.printf(" port %d", p1)
			} else {
				p.printf(" port %d:%d", p1, p2)
			}
		}
	case ActRDR:
		if p1 != 0 {
			p.printf(" port %d", p1)
			if p2 != 0 && p2 != p1 {
				p.printf(":%d", p2)
			}
		}
	}
	switch pl.Type {
	case PoolBitmask:
		p.str(" bitmask")
	case PoolRandom:
		p.str(" random")
	case PoolSourceHash:
		p.printf(" source-hash 0x%08x%08x%08x%08x", pl.Key[0], pl.Key[1], pl.Key[2], pl.Key[3])
	case PoolRoundRobin:
		p.str(" round-robin")
	}
	if pl.Sticky {
		p.str(" sticky-address")
	}
	if pl.EndpointIndependent {
		p.str(" endpoint-independent")
	}
	if id == ActNAT && p1 == 0 && p2 == 0 {
		p.str(" static-port")
	}
	if pl.MapE.Offset > 0 {
		p.printf(" map-e-portset %d/%d/%d", pl.MapE.Offset, pl.MapE.PSIDLen, pl.MapE.PSID)
	}
}

// etherRule prints an ether rule as pfctl's print_eth_rule.
func (p *printer) etherRule(r *EtherRule) {
	if p.vv {
		p.printf("@%d ", r.Nr)
	}
	p.str("ether ")
	switch {
	case r.AnchorCall != "" && strings.HasPrefix(r.AnchorCall, "_"):
		p.str("anchor")
	case r.AnchorCall != "":
		p.printf("anchor \"%s\"", r.AnchorCall)
	default:
		p.str(actionNames[r.Action])
	}
	switch r.Direction {
	case DirIn:
		p.str(" in")
	case DirOut:
		p.str(" out")
	}
	if r.Quick {
		p.str(" quick")
	}
	if r.Ifname != "" {
		if r.IfNot {
			p.str(" on ! " + r.Ifname)
		} else {
			p.str(" on " + r.Ifname)
		}
	}
	if r.BridgeTo != "" {
		p.str(" bridge-to " + r.BridgeTo)
	}
	if r.Proto != 0 {
		p.printf(" proto 0x%04x", r.Proto)
	}
	if r.Src.Set {
		p.str(" from ")
		p.str(etherAddrString(&r.Src))
	}
	if r.Dst.Set {
		p.str(" to ")
		p.str(etherAddrString(&r.Dst))
	}
	p.str(" l3")
	af := AFInet6
	if r.Proto == 0x0800 {
		af = AFInet
	}
	p.fromTo(&r.IPSrc, "", &r.IPDst, af, 0)
	for _, l := range r.Labels {
		p.printf(" label \"%s\"", l)
	}
	if r.Ridentifier != 0 {
		p.printf(" ridentifier %d", r.Ridentifier)
	}
	if r.Queue != "" {
		p.printf(" queue %s", r.Queue)
	}
	if r.Tag != "" {
		p.printf(" tag %s", r.Tag)
	}
	if r.Tagged != "" {
		if r.TaggedNot {
			p.str(" !")
		}
		p.printf(" tagged %s", r.Tagged)
	}
	if r.Dnpipe != 0 {
		kw := "dnpipe"
		if r.DnQueue {
			kw = "dnqueue"
		}
		p.printf(" %s %d", kw, r.Dnpipe)
	}
}

func etherAddrString(a *EtherAddr) string {
	zero := true
	for _, b := range a.Addr {
		if b != 0 {
			zero = false
		}
	}
	if zero {
		return ""
	}
	var s strings.Builder
	if a.Neg {
		s.WriteString("! ")
	}
	fmt.Fprintf(&s, "%02x:%02x:%02x:%02x:%02x:%02x", a.Addr[0], a.Addr[1], a.Addr[2], a.Addr[3], a.Addr[4], a.Addr[5])
	masklen := 48
	seenUnset := false
	i := 0
	for ; i < 48; i++ {
		isset := a.Mask[i/8]&(1<<uint(i%8)) != 0
		if !seenUnset {
			if isset {
				continue
			}
			seenUnset = true
			masklen = i
		} else if isset {
			break
		}
	}
	if masklen == 48 {
		return s.String()
	}
	if i == 48 {
		fmt.Fprintf(&s, "/%d", masklen)
		return s.String()
	}
	fmt.Fprintf(&s, "&%02x:%02x:%02x:%02x:%02x:%02x", a.Mask[0], a.Mask[1], a.Mask[2], a.Mask[3], a.Mask[4], a.Mask[5])
	return s.String()
}
