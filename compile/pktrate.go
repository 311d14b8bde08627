package compile

import (
	"fmt"

	"github.com/google/nftables/expr"

	"github.com/pfcarp/pfcarp/pfconf"
)

// max-pkt-rate N/S (OpenBSD): the rule stops matching while more than N
// of the packets that reached it came in the last S seconds (pf.conf(5);
// sys/net/pf.c, pf_add_threshold and pf_check_threshold on the rule's
// pktrate, a counter that decays in proportion to the time since the
// last packet and restarts after S seconds).
//
// Here the rule's match ends with an nftables packet limit, a token
// bucket that holds N packets and refills N/S per second: rate N/S per
// second with a burst of N (this kernel's bucket holds burst packets, as
// TestKernelMaxPktRate measures), so N packets at once and then N every S
// seconds pass, as pf lets them. Exactly that needs N/S whole; otherwise
// the nearest such bucket is loaded with a warning. The other
// differences are warned about too: pf's counter decays in proportion
// (a bucket refills steadily), so the two differ at the edge of the rate;
// the packets of the rule's states are not counted (the kernel passes
// them by the state before the rules), while pf counts those in the
// state's direction; and each kernel rule the pf rule becomes (per
// family, direction, flags) has a bucket of its own.

// pktRateLimit returns the limit expression for r's max-pkt-rate and the
// text of the difference from pf when it is not exact.
func pktRateLimit(r *pfconf.Rule) (*expr.Limit, string, string) {
	n, s := uint64(r.MaxPktRate.Limit), uint64(r.MaxPktRate.Seconds)
	if s == 0 {
		s = 1
	}
	rate := n / s
	if rate == 0 {
		rate = 1
	}
	burst := n
	var diff string
	if n%s != 0 {
		diff = fmt.Sprintf("the kernel's bucket holds %d packets and passes %d per second, not %d per %d seconds", burst, rate, n, s)
	}
	l := &expr.Limit{Type: expr.LimitTypePkts, Rate: rate, Unit: expr.LimitTimeSecond, Burst: uint32(burst)}
	return l, fmt.Sprintf("limit rate %d/second burst %d packets (max-pkt-rate %d/%d)", rate, burst, n, s), diff
}

// addPktRate ends b's match with r's max-pkt-rate limit, if it has one.
func (c *compiler) addPktRate(b *builder, r *pfconf.Rule) {
	if r.MaxPktRate.Limit == 0 {
		return
	}
	l, text, diff := pktRateLimit(r)
	b.add(text, l)
	if c.pktRateRules == nil {
		c.pktRateRules = map[*pfconf.Rule]int{}
	}
	if c.pktRateRules[r]++; c.pktRateRules[r] == 2 {
		c.warnf(r.Pos, "max-pkt-rate %d/%d: the rule is more than one kernel rule (families, directions, flags), each with its own limit", r.MaxPktRate.Limit, r.MaxPktRate.Seconds)
	}
	msg := fmt.Sprintf("max-pkt-rate %d/%d: loaded as a kernel packet limit (token bucket); pf's counter decays in proportion, so the two differ at the edge of the rate; the packets of the rule's states are not counted", r.MaxPktRate.Limit, r.MaxPktRate.Seconds)
	if diff != "" {
		msg += "; " + diff
	}
	c.warnf(r.Pos, "%s", msg)
}
