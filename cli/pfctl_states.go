package cli

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/pfcarp/pfcarp/compile"
	"github.com/pfcarp/pfcarp/netdb"
	"github.com/pfcarp/pfcarp/pfsync"
)

// pfctl -s states prints conntrack entries in pf's state format:
//
//	all tcp 192.168.10.20:80 <- 192.168.1.51:80 <- 192.168.1.89:62414       ESTABLISHED:ESTABLISHED
//
// Which form, from conntrack's tuples (pf knows a state's direction;
// conntrack knows only what was translated):
//
//	destination NAT (rdr), with or without SNAT: backend <- original destination <- source
//	source NAT only (nat):                        source -> translated source -> destination
//	no translation:                               source -> destination
//
// IPv6 ports print as addr[port], as pfctl does. The two state words are
// the original direction's side then the reply side's, mapped from the
// one conntrack TCP state (the side that sent the first FIN is the one
// conntrack flags with CLOSE_INIT):
//
//	conntrack      closer:other (pf names)
//	NONE, CLOSE    CLOSED:CLOSED
//	SYN_SENT       SYN_SENT:CLOSED
//	SYN_SENT2      SYN_SENT:SYN_SENT   (simultaneous open)
//	SYN_RECV       SYN_SENT:SYN_SENT   (pf: SYN seen both ways, no final ACK yet)
//	ESTABLISHED    ESTABLISHED:ESTABLISHED
//	FIN_WAIT       FIN_WAIT_2:ESTABLISHED
//	CLOSE_WAIT     FIN_WAIT_2:CLOSE_WAIT
//	LAST_ACK       FIN_WAIT_2:LAST_ACK
//	TIME_WAIT      TIME_WAIT:TIME_WAIT
//
// UDP and other protocols: MULTIPLE:MULTIPLE once replies were seen,
// else SINGLE:NO_TRAFFIC. ICMP prints 0:0.
var tcpStateWords = [...][2]string{
	pfsync.TCPNone:        {"CLOSED", "CLOSED"},
	pfsync.TCPSynSent:     {"SYN_SENT", "CLOSED"},
	pfsync.TCPSynRecv:     {"SYN_SENT", "SYN_SENT"},
	pfsync.TCPEstablished: {"ESTABLISHED", "ESTABLISHED"},
	pfsync.TCPFinWait:     {"FIN_WAIT_2", "ESTABLISHED"},
	pfsync.TCPCloseWait:   {"FIN_WAIT_2", "CLOSE_WAIT"},
	pfsync.TCPLastAck:     {"FIN_WAIT_2", "LAST_ACK"},
	pfsync.TCPTimeWait:    {"TIME_WAIT", "TIME_WAIT"},
	pfsync.TCPClose:       {"CLOSED", "CLOSED"},
	pfsync.TCPSynSent2:    {"SYN_SENT", "SYN_SENT"},
}

// stateWords returns the two state words of s.
func stateWords(s *pfsync.State) string {
	switch s.Proto {
	case 6:
		if int(s.TCP.State) >= len(tcpStateWords) {
			return "CLOSED:CLOSED"
		}
		w := tcpStateWords[s.TCP.State]
		closer, other := w[0], w[1]
		switch s.TCP.State {
		case pfsync.TCPFinWait, pfsync.TCPCloseWait, pfsync.TCPLastAck:
			if s.TCP.Flags[1]&pfsync.TCPFlagCloseInit != 0 && s.TCP.Flags[0]&pfsync.TCPFlagCloseInit == 0 {
				closer, other = other, closer // the reply side closed first
			}
		}
		return closer + ":" + other
	case 1, 58:
		return "0:0"
	}
	if s.Status&pfsync.StatusSeenReply != 0 {
		return "MULTIPLE:MULTIPLE"
	}
	return "SINGLE:NO_TRAFFIC"
}

func hostPort(a netip.Addr, port uint16, proto uint8) string {
	hasPort := proto == 6 || proto == 17 || proto == 132 || proto == 33 || proto == 136 || proto == 1 || proto == 58
	if !hasPort {
		return a.String()
	}
	if a.Is4() {
		return fmt.Sprintf("%s:%d", a, port)
	}
	return fmt.Sprintf("%s[%d]", a, port)
}

// stateLine is the first line of one state in pfctl -s states.
func stateLine(s *pfsync.State) string {
	proto, ok := netdb.ProtoByNumber(s.Proto)
	if !ok {
		proto = fmt.Sprint(s.Proto)
	}
	icmp := s.Proto == 1 || s.Proto == 58
	port := func(p uint16) uint16 {
		if icmp {
			return s.Orig.SrcPort // pf prints the ICMP id on both sides
		}
		return p
	}
	src := hostPort(s.Orig.Src, port(s.Orig.SrcPort), s.Proto)
	dst := hostPort(s.Orig.Dst, port(s.Orig.DstPort), s.Proto)
	dnat, snat := s.NAT()
	var addrs string
	switch {
	case dnat.IsValid():
		addrs = hostPort(dnat.Addr(), port(dnat.Port()), s.Proto) + " <- " + dst + " <- " + src
	case snat.IsValid():
		addrs = src + " -> " + hostPort(snat.Addr(), port(snat.Port()), s.Proto) + " -> " + dst
	default:
		addrs = src + " -> " + dst
	}
	line := "all " + proto + " " + addrs
	// pfctl pads the addresses so the state words line up.
	if n := len(line); n < 62 {
		line += strings.Repeat(" ", 62-n)
	}
	return line + "       " + stateWords(s)
}

// stateDetail is the -v line: age (when the kernel timestamps entries),
// expiry, packets and bytes per direction, and the pf rule that made it.
func stateDetail(s *pfsync.State, start time.Time, now time.Time) string {
	var b strings.Builder
	b.WriteString("  ")
	if !start.IsZero() && !now.Before(start) {
		b.WriteString(" age " + hms(now.Sub(start)) + ",")
	}
	fmt.Fprintf(&b, " expires in %s, %d:%d pkts, %d:%d bytes", hms(time.Duration(s.Timeout)*time.Second),
		s.Packets[0], s.Packets[1], s.Bytes[0], s.Bytes[1])
	if nr := s.Mark & compile.CtMarkRuleMask; nr != 0 {
		fmt.Fprintf(&b, ", rule %d", nr-1)
	}
	if s.Mark&compile.CtMarkNoSync != 0 {
		b.WriteString(", no-sync")
	}
	return b.String()
}

func hms(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	sec := int64(d / time.Second)
	return fmt.Sprintf("%02d:%02d:%02d", sec/3600, sec/60%60, sec%60)
}

// printStates prints states as pfctl -s states [-v] does; starts holds
// the kernel's start timestamps by index (may be nil).
func printStates(w io.Writer, states []pfsync.State, starts []time.Time, now time.Time, verbose int) {
	var b strings.Builder
	for i := range states {
		b.WriteString(stateLine(&states[i]))
		b.WriteByte('\n')
		if verbose > 0 {
			var st time.Time
			if i < len(starts) {
				st = starts[i]
			}
			b.WriteString(stateDetail(&states[i], st, now))
			b.WriteByte('\n')
		}
	}
	io.WriteString(w, b.String())
}

// killMatch reports whether s is killed by `-k src [-k dst]`: its source
// (original, or translated by nat) is in src and, with a second -k, its
// destination (original, or the rdr backend) is in dst.
func killMatch(s *pfsync.State, src, dst []netip.Prefix) bool {
	in := func(ps []netip.Prefix, addrs ...netip.Addr) bool {
		for _, p := range ps {
			for _, a := range addrs {
				if a.IsValid() && p.Contains(a.Unmap()) {
					return true
				}
			}
		}
		return false
	}
	dnat, snat := s.NAT()
	if !in(src, s.Orig.Src, snat.Addr()) {
		return false
	}
	return dst == nil || in(dst, s.Orig.Dst, dnat.Addr())
}

// parseKillHost turns a -k argument into prefixes: an address, a CIDR
// prefix, or a host name resolved by lookup.
func parseKillHost(h string, lookup func(string) ([]netip.Addr, error)) ([]netip.Prefix, error) {
	if p, err := netip.ParsePrefix(h); err == nil {
		return []netip.Prefix{p.Masked()}, nil
	}
	if a, err := netip.ParseAddr(h); err == nil {
		return []netip.Prefix{netip.PrefixFrom(a, a.BitLen())}, nil
	}
	addrs, err := lookup(h)
	if err != nil || len(addrs) == 0 {
		return nil, fmt.Errorf("-k %s: not an address, prefix or known host name", h)
	}
	out := make([]netip.Prefix, len(addrs))
	for i, a := range addrs {
		a = a.Unmap()
		out[i] = netip.PrefixFrom(a, a.BitLen())
	}
	return out, nil
}
