package clock

import (
	"testing"
	"time"
)

var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func TestFakeTimerOrderAndAdvance(t *testing.T) {
	f := NewFake(epoch)
	var got []string
	f.AfterFunc(3*time.Second, func() { got = append(got, "c@"+f.Now().Sub(epoch).String()) })
	f.AfterFunc(1*time.Second, func() { got = append(got, "a@"+f.Now().Sub(epoch).String()) })
	f.AfterFunc(1*time.Second, func() { got = append(got, "b@"+f.Now().Sub(epoch).String()) })
	f.Advance(2 * time.Second)
	if want := "[a@1s b@1s]"; fmtSlice(got) != want {
		t.Fatalf("after 2s fired %v, want %s", got, want)
	}
	if n := f.Now().Sub(epoch); n != 2*time.Second {
		t.Fatalf("now = %v, want 2s", n)
	}
	f.Advance(time.Second)
	if want := "[a@1s b@1s c@3s]"; fmtSlice(got) != want {
		t.Fatalf("fired %v, want %s", got, want)
	}
	if f.Pending() != 0 {
		t.Fatalf("pending = %d, want 0", f.Pending())
	}
}

func TestFakeCallbackReschedules(t *testing.T) {
	f := NewFake(epoch)
	n := 0
	var tm Timer
	tm = f.AfterFunc(time.Second, func() {
		n++
		tm.Reset(time.Second)
	})
	f.Advance(10 * time.Second)
	if n != 10 {
		t.Fatalf("periodic timer fired %d times in 10s, want 10", n)
	}
}

func TestFakeChannelTimerStopReset(t *testing.T) {
	f := NewFake(epoch)
	tm := f.NewTimer(time.Second)
	f.Advance(time.Second)
	select {
	case at := <-tm.C():
		if !at.Equal(epoch.Add(time.Second)) {
			t.Fatalf("fired at %v", at)
		}
	default:
		t.Fatal("timer did not fire")
	}
	tm.Reset(time.Second)
	if !tm.Stop() {
		t.Fatal("Stop of an active timer reported inactive")
	}
	f.Advance(5 * time.Second)
	select {
	case <-tm.C():
		t.Fatal("stopped timer fired")
	default:
	}
	tm.Reset(time.Second)
	f.Advance(time.Second)
	tm.Reset(time.Second) // must drain the pending tick
	select {
	case <-tm.C():
		t.Fatal("stale tick after Reset")
	default:
	}
	if d, ok := f.NextDeadline(); !ok || !d.Equal(epoch.Add(8*time.Second)) {
		t.Fatalf("NextDeadline = %v %v", d, ok)
	}
}

func TestRealClock(t *testing.T) {
	var c Clock = Real{}
	tm := c.NewTimer(time.Millisecond)
	deadline := time.After(10 * time.Second)
	select {
	case <-tm.C():
	case <-deadline:
		t.Fatal("real timer never fired")
	}
	if c.Now().IsZero() {
		t.Fatal("zero time")
	}
}

func fmtSlice(s []string) string {
	out := "["
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out + "]"
}
