package relayd

import (
	"context"
	"fmt"
	"sync"

	"github.com/pfcarp/pfcarp/internal/clock"
)

// Status is one host's state and counters after a check, as relayctl(8)
// shows them.
type Status struct {
	Table      string // table name
	TableID    int
	Port       uint16
	HostID     int
	Host       string
	State      State
	Previous   State
	Changed    bool // State differs from Previous
	CheckCount uint64
	UpCount    uint64
	RetryCount int // retries left before a failure counts
}

// Availability is relayctl's print_availability: up checks over checks,
// in percent; 0 before the first check.
func (s Status) Availability() float64 {
	if s.CheckCount == 0 {
		return 0
	}
	return float64(s.UpCount) * 100 / float64(s.CheckCount)
}

// Options configures a Checker.
type Options struct {
	// OnStatus is called after every check of every host, in one
	// goroutine at a time; nil ignores results.
	OnStatus func(Status)
	// Probe runs one check; nil uses the real checks.
	Probe Probe
}

type hostState struct {
	h        *Host
	t        *Table
	up       State
	retryCnt int
	checks   uint64
	ups      uint64
	children []*hostState
}

// Checker runs the host checks of every enabled table of a Config on a
// clock, like relayd's hce: a round every global interval, tables with an
// interval skip rounds, hosts with a parent take the parent's state.
type Checker struct {
	cfg      *Config
	clk      clock.Clock
	opts     Options
	mu       sync.Mutex // guards hosts' state and skipped
	hosts    []*hostState
	skipped  map[int]int
	timer    clock.Timer
	ctx      context.Context
	cancel   context.CancelFunc
	rounds   sync.WaitGroup
	notifyMu sync.Mutex
}

// NewChecker makes a Checker for cfg; every checked host needs a numeric
// address (name resolution is the caller's).
func NewChecker(cfg *Config, clk clock.Clock, opts Options) (*Checker, error) {
	if opts.Probe == nil {
		opts.Probe = probe
	}
	c := &Checker{cfg: cfg, clk: clk, opts: opts, skipped: map[int]int{}}
	byID := map[int]*hostState{}
	for _, t := range cfg.Instances {
		for _, h := range t.Hosts {
			if !h.Addr.IsValid() && t.Check.Kind != CheckScript {
				return nil, fmt.Errorf("%s: table %s: host %s has no address", h.Pos, t.Name, h.Name)
			}
			hs := &hostState{h: h, t: t}
			byID[h.ID] = hs
			c.hosts = append(c.hosts, hs)
		}
	}
	for _, hs := range c.hosts {
		if p := byID[hs.h.ParentID]; hs.h.ParentID != 0 && p != nil {
			p.children = append(p.children, hs)
		}
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// Start runs the first round now and one every global interval after it.
func (c *Checker) Start() {
	c.mu.Lock()
	c.timer = c.clk.AfterFunc(0, c.tick)
	c.mu.Unlock()
}

// Stop ends the rounds and waits for running checks.
func (c *Checker) Stop() {
	c.cancel()
	c.mu.Lock()
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
	c.rounds.Wait()
}

func (c *Checker) tick() {
	if c.ctx.Err() != nil {
		return
	}
	c.rounds.Add(1)
	go func() {
		defer c.rounds.Done()
		c.Round(c.ctx)
	}()
	c.mu.Lock()
	c.timer.Reset(c.cfg.Interval)
	c.mu.Unlock()
}

// Round runs one round of checks (hce_launch_checks) and returns when
// every result has been applied and reported.
func (c *Checker) Round(ctx context.Context) {
	var wg sync.WaitGroup
	c.mu.Lock()
	var due []*hostState
	for _, t := range c.cfg.Instances {
		if t.Disabled {
			continue
		}
		// A table with an interval is checked on the first round and
		// then every Skip+1 rounds (relayd's skip_cnt).
		n := c.skipped[t.ID]
		c.skipped[t.ID] = (n + 1) % (t.Skip + 1)
		if n != 0 {
			continue
		}
		for _, hs := range c.hosts {
			if hs.t == t && hs.h.ParentID == 0 {
				due = append(due, hs)
			}
		}
	}
	c.mu.Unlock()
	for _, hs := range due {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := c.opts.Probe(ctx, hs.t, hs.h, hs.t.Timeout)
			if ctx.Err() != nil {
				return
			}
			c.apply(hs, res)
		}()
	}
	wg.Wait()
}

// apply is hce_notify_done: a failure while retries are left keeps the
// previous state and uses one retry; any other result sets the state and
// refills the retries. Children take their parent's result.
func (c *Checker) apply(hs *hostState, res State) {
	c.mu.Lock()
	sts := c.applyLocked(hs, res, nil)
	c.mu.Unlock()
	if c.opts.OnStatus == nil {
		return
	}
	c.notifyMu.Lock()
	defer c.notifyMu.Unlock()
	for _, s := range sts {
		c.opts.OnStatus(s)
	}
}

func (c *Checker) applyLocked(hs *hostState, res State, out []Status) []Status {
	prev := hs.up
	if res == Down && hs.retryCnt > 0 {
		res = prev
		hs.retryCnt--
	} else {
		hs.retryCnt = hs.h.Retry
	}
	hs.up = res
	if res != Unknown {
		hs.checks++
		if res == Up {
			hs.ups++
		}
	}
	out = append(out, c.statusLocked(hs, prev))
	for _, ch := range hs.children {
		out = c.applyLocked(ch, res, out)
	}
	return out
}

func (c *Checker) statusLocked(hs *hostState, prev State) Status {
	return Status{Table: hs.t.Name, TableID: hs.t.ID, Port: hs.t.Port, HostID: hs.h.ID, Host: hs.h.Name,
		State: hs.up, Previous: prev, Changed: hs.up != prev, CheckCount: hs.checks, UpCount: hs.ups,
		RetryCount: hs.retryCnt}
}

// Hosts returns every host's current status, in table and host order.
func (c *Checker) Hosts() []Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Status, 0, len(c.hosts))
	for _, hs := range c.hosts {
		out = append(out, c.statusLocked(hs, hs.up))
	}
	return out
}

// TableUp is the number of hosts up in the table with ID id.
func (c *Checker) TableUp(id int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, hs := range c.hosts {
		if hs.t.ID == id && hs.up == Up {
			n++
		}
	}
	return n
}
