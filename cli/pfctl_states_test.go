package cli

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pfcarp/pfcarp/pfsync"
)

func tup(src string, sp uint16, dst string, dp uint16) pfsync.Tuple {
	return pfsync.Tuple{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), SrcPort: sp, DstPort: dp}
}

// The seed's two example states, rebuilt as conntrack holds them.
func seedStates() []pfsync.State {
	return []pfsync.State{
		{ // rdr of the external VIP to s1, closing
			Proto: 6, Status: pfsync.StatusDstNAT | pfsync.StatusSeenReply | pfsync.StatusAssured,
			Orig:  tup("192.168.1.89", 62414, "192.168.1.51", 80),
			Reply: tup("192.168.10.20", 80, "192.168.1.89", 62414),
			TCP:   pfsync.TCPInfo{State: pfsync.TCPTimeWait}, Timeout: 45, Mark: 4 | 1<<31,
			Packets: [2]uint64{7, 5}, Bytes: [2]uint64{580, 1200},
		},
		{ // outbound NAT of s2 to the balancer's address
			Proto: 6, Status: pfsync.StatusSrcNAT | pfsync.StatusSeenReply,
			Orig:  tup("192.168.10.21", 65346, "130.104.5.67", 25),
			Reply: tup("130.104.5.67", 25, "192.168.1.52", 61575),
			TCP:   pfsync.TCPInfo{State: pfsync.TCPFinWait, Flags: [2]uint8{pfsync.TCPFlagCloseInit, 0}}, Timeout: 30,
		},
		{Proto: 17, Status: pfsync.StatusSeenReply, Orig: tup("2001:db8::1", 5353, "2001:db8::2", 53), Reply: tup("2001:db8::2", 53, "2001:db8::1", 5353), Timeout: 20},
		{Proto: 17, Orig: tup("192.0.2.1", 5000, "192.0.2.2", 53), Reply: tup("192.0.2.2", 53, "192.0.2.1", 5000), Timeout: 20},
		{Proto: 1, Orig: tup("192.0.2.1", 77, "192.0.2.2", 8<<8), Reply: tup("192.0.2.2", 77, "192.0.2.1", 0), Timeout: 20},
	}
}

func TestStatesFormat(t *testing.T) {
	var b strings.Builder
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	printStates(&b, seedStates(), []time.Time{start}, start.Add(62*time.Second), 1)
	want := []string{
		"all tcp 192.168.10.20:80 <- 192.168.1.51:80 <- 192.168.1.89:62414", "TIME_WAIT:TIME_WAIT",
		"   age 00:01:02, expires in 00:00:45, 7:5 pkts, 580:1200 bytes, rule 3, no-sync",
		"all tcp 192.168.10.21:65346 -> 192.168.1.52:61575 -> 130.104.5.67:25", "FIN_WAIT_2:ESTABLISHED",
		"all udp 2001:db8::1[5353] -> 2001:db8::2[53]", "MULTIPLE:MULTIPLE",
		"all udp 192.0.2.1:5000 -> 192.0.2.2:53", "SINGLE:NO_TRAFFIC",
		"all icmp 192.0.2.1:77 -> 192.0.2.2:77", "0:0",
		"  expires in 00:00:30, 0:0 pkts, 0:0 bytes\n",
	}
	out := b.String()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	// The reply side closing first swaps the words.
	s := seedStates()[1]
	s.TCP.Flags = [2]uint8{0, pfsync.TCPFlagCloseInit}
	if got := stateWords(&s); got != "ESTABLISHED:FIN_WAIT_2" {
		t.Errorf("reply-side close: %s", got)
	}
}

func TestKillMatch(t *testing.T) {
	st := seedStates()
	p := func(s string) []netip.Prefix {
		ps, err := parseKillHost(s, func(string) ([]netip.Addr, error) { return nil, nil })
		if err != nil {
			t.Fatal(err)
		}
		return ps
	}
	cases := []struct {
		src, dst string
		want     []bool
	}{
		{"192.168.1.89", "", []bool{true, false, false, false, false}},
		{"192.168.1.0/24", "192.168.10.20", []bool{true, false, false, false, false}},
		{"192.168.1.52", "", []bool{false, true, false, false, false}}, // the translated source
		{"192.0.2.1", "192.0.2.2", []bool{false, false, false, true, true}},
		{"2001:db8::/32", "", []bool{false, false, true, false, false}},
	}
	for _, c := range cases {
		var dst []netip.Prefix
		if c.dst != "" {
			dst = p(c.dst)
		}
		for i := range st {
			if got := killMatch(&st[i], p(c.src), dst); got != c.want[i] {
				t.Errorf("-k %s -k %q state %d: %v, want %v", c.src, c.dst, i, got, c.want[i])
			}
		}
	}
	if _, err := parseKillHost("no.such.host.invalid", func(string) ([]netip.Addr, error) { return nil, nil }); err == nil {
		t.Error("unknown host accepted")
	}
}
