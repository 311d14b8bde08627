// Package clock owns pfcarp's notion of time for protocol code: a Clock
// interface with a real implementation backed by package time and a Fake whose
// time moves only when a test calls Advance.
//
// Protocol packages (carp, pfsync) take a Clock in their constructors instead
// of calling time.Now or time.NewTimer, so every timer-driven transition can be
// tested deterministically. The package does not schedule work itself and has
// no global state.
package clock

import "time"

// Clock tells the time and makes timers.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a timer that delivers the time on C() after d.
	NewTimer(d time.Duration) Timer
	// AfterFunc calls f in its own goroutine (Real) or inside Advance (Fake)
	// after d.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is the part of *time.Timer protocol code uses.
type Timer interface {
	// C is the channel the time is delivered on; nil for AfterFunc timers.
	C() <-chan time.Time
	// Reset makes the timer expire after d; it reports whether the timer
	// was active. As with time.Timer since Go 1.23, no stale value is
	// received after Reset or Stop returns.
	Reset(d time.Duration) bool
	// Stop prevents the timer from firing; it reports whether it was active.
	Stop() bool
}

// Real is the Clock of package time. The zero value is ready to use.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// NewTimer wraps time.NewTimer.
func (Real) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

// AfterFunc wraps time.AfterFunc.
func (Real) AfterFunc(d time.Duration, f func()) Timer {
	return realTimer{time.AfterFunc(d, f)}
}

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time        { return r.t.C }
func (r realTimer) Reset(d time.Duration) bool { return r.t.Reset(d) }
func (r realTimer) Stop() bool                 { return r.t.Stop() }
