package pfsync

import (
	"testing"
	"time"
)

func TestLagHistogram(t *testing.T) {
	var l Lag
	if l.Quantile(0.99) != 0 {
		t.Fatal("empty histogram has a quantile")
	}
	for _, d := range []time.Duration{-time.Millisecond, 100 * time.Microsecond, 800 * time.Microsecond, time.Millisecond, 3 * time.Millisecond, 2 * time.Second} {
		l.observe(d)
	}
	// -1ms counts as 0 (<= 250us), 100us too; 800us and 1ms <= 1ms; 3ms
	// <= 5ms; 2s above every bound.
	want := [13]uint64{0: 2, 2: 2, 4: 1, 12: 1}
	if l.Counts != want || l.Count != 6 {
		t.Fatalf("counts %v (n %d), want %v", l.Counts, l.Count, want)
	}
	if got := l.Quantile(0.5); got != time.Millisecond {
		t.Fatalf("p50 %v, want 1ms (the bucket of the third lag)", got)
	}
	if got := l.Quantile(0.99); got != time.Second {
		t.Fatalf("p99 %v, want the last bound", got)
	}
	if l.Sum != 100*time.Microsecond+800*time.Microsecond+time.Millisecond+3*time.Millisecond+2*time.Second {
		t.Fatalf("sum %v", l.Sum)
	}
}

// TestSyncLagMeasured: updates the peer sends as they happen are measured
// (their stamp to their injection here); those of a bulk update are not.
func TestSyncLagMeasured(t *testing.T) {
	p := newPair(t, nil)
	p.a.Local(&Event{Type: EventNew, State: tcpState(1)})
	p.advance(DefaultFlushInterval)
	lag := p.b.Stats().Lag
	if lag.Count != 1 {
		t.Fatalf("%d lags measured for one update, want 1", lag.Count)
	}
	// A new state is sent at once; the test's pump delivers it after its
	// first 10 ms step of fake time.
	if lag.Sum <= 0 || lag.Sum > 10*time.Millisecond {
		t.Fatalf("lag %v, want the pump's step (0 < lag <= 10ms)", lag.Sum)
	}
	// A bulk update of what A holds adds nothing.
	p.b.RequestBulk("test")
	p.advance(time.Second)
	if got := p.b.Stats(); got.BulkDone == 0 || got.Lag.Count != 1 {
		t.Fatalf("after a bulk update (%d done): %d lags, want 1", got.BulkDone, got.Lag.Count)
	}
}
