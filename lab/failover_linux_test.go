package lab

import (
	"errors"
	"testing"
	"time"
)

func TestOutageAfter(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	bad := errors.New("timeout")
	c := &ClientLoop{fetches: []Fetch{
		{Start: at(0), End: at(10)},
		{Start: at(20), End: at(30)},            // last success before the outage
		{Start: at(40), End: at(290), Err: bad}, // first failure
		{Start: at(300), End: at(550), Err: bad},
		{Start: at(560), End: at(570)}, // resumed
		{Start: at(580), End: at(600), Err: bad},
	}}
	o, ok := c.OutageAfter(at(35))
	if !ok || o.Failed != 2 || !o.LastOK.Equal(at(30)) || !o.Resumed.Equal(at(570)) || o.Gap() != 540*time.Millisecond || o.FirstErr != bad {
		t.Errorf("OutageAfter(35ms) = %+v, %v", o, ok)
	}
	// The second outage has not resumed yet.
	o, ok = c.OutageAfter(at(575))
	if !ok || o.Failed != 1 || !o.Resumed.IsZero() || o.Gap() != 0 {
		t.Errorf("OutageAfter(575ms) = %+v, %v", o, ok)
	}
	if _, ok := c.OutageAfter(at(600)); ok {
		t.Error("OutageAfter(600ms): want none")
	}
	if got := c.LastOK(); !got.Equal(at(570)) {
		t.Errorf("LastOK = %v", got)
	}
	if got := (&ClientLoop{}).LastOK(); !got.IsZero() {
		t.Errorf("empty LastOK = %v", got)
	}
}
