package pfsync

import "time"

// LagBounds are the upper bounds of the sync lag histogram's buckets
// (Lag): from a few hundred microseconds, where a quiet pair sits, to a
// second, where a peer is in trouble.
var LagBounds = [...]time.Duration{
	250 * time.Microsecond, 500 * time.Microsecond, time.Millisecond,
	2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond,
	250 * time.Millisecond, 500 * time.Millisecond, time.Second,
}

// Lag is a histogram of sync lags: for each state update received outside
// a bulk update, the time from the peer's engine taking in the conntrack
// event (the update's timestamp, stamped with the peer's clock) to the
// state being written into this node's kernel. It is only as good as the
// two clocks' agreement (NTP keeps them within a millisecond or so on one
// network); a lag that comes out negative is counted as zero.
type Lag struct {
	// Counts[i] counts lags <= LagBounds[i] and > LagBounds[i-1]; the
	// last element counts those above every bound.
	Counts [13]uint64    `json:"counts"`
	Sum    time.Duration `json:"sum_ns"`
	Count  uint64        `json:"count"`
}

// observe adds one lag.
func (l *Lag) observe(d time.Duration) {
	d = max(d, 0)
	i := 0
	for i < len(LagBounds) && d > LagBounds[i] {
		i++
	}
	l.Counts[i]++
	l.Sum += d
	l.Count++
}

// Quantile estimates the q-quantile (0 < q <= 1) as the upper bound of the
// bucket that holds it (the largest bound for the last bucket); 0 when
// nothing was observed.
func (l *Lag) Quantile(q float64) time.Duration {
	if l.Count == 0 {
		return 0
	}
	rank := uint64(q*float64(l.Count) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for i, n := range l.Counts {
		seen += n
		if seen >= rank {
			if i < len(LagBounds) {
				return LagBounds[i]
			}
			break
		}
	}
	return LagBounds[len(LagBounds)-1]
}
