package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// LoadOptions configure StartLoad. Rate, Duration and URL are required.
type LoadOptions struct {
	// Node is the node the connections start from. Default "client".
	Node string
	// Srcs are the source addresses, taken in turn. Default: the plan's
	// client addresses (ClientAddrs).
	Srcs []netip.Addr
	// URL is the server's base URL, "http://host[:port]" (the external VIP).
	URL string
	// Rate is new connections per second (open loop: a connection is
	// started every 1/Rate s whether or not earlier ones have finished).
	Rate float64
	// Duration is how long new connections are started.
	Duration time.Duration
	// StreamSeconds and StreamRate shape each connection: GET
	// /stream?seconds=StreamSeconds&rate=StreamRate. Defaults 3 and 16384.
	StreamSeconds int
	StreamRate    int64
	// Long streams start with the load and last LongSeconds (default
	// Duration plus StreamSeconds, rounded up), same rate.
	Long        int
	LongSeconds int
	// Timeout bounds each connection from its start. Default the stream's
	// length plus 15 s (a few SYN and data retransmissions).
	Timeout time.Duration
	// MaxConns bounds the short connections (default and cap:
	// Rate*Duration+1, at most maxLoadConns).
	MaxConns int
}

// maxLoadConns bounds what one Load keeps.
const maxLoadConns = 200000

// Outcome is how one connection of a Load ended.
type Outcome int

const (
	OutcomeOK      Outcome = iota // status 200 and exactly the expected bytes
	OutcomeReset                  // the connection was reset (ECONNRESET)
	OutcomeRefused                // the connect was answered with a reset (ECONNREFUSED)
	OutcomeTimeout                // the connection's Timeout passed
	OutcomeShort                  // the body ended early (EOF before the expected bytes)
	OutcomeBad                    // wrong bytes or too many of them
	OutcomeStatus                 // a status other than 200
	OutcomeFailed                 // any other error (no route, ...)
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"ok", "reset", "refused", "timeout", "short", "bad", "status", "failed"}

func (o Outcome) String() string {
	if o >= 0 && o < numOutcomes {
		return outcomeNames[o]
	}
	return "Outcome(" + strconv.Itoa(int(o)) + ")"
}

// LoadConn is the record of one connection of a Load.
type LoadConn struct {
	Long       bool           // one of the long streams
	Src        netip.Addr     // the source address asked for
	Local      netip.AddrPort // the connection's own address; zero if it never connected
	Start, End time.Time
	// Connected is when the connection was established (the handshake
	// done: a lost SYN shows as a second or more after Start); zero if it
	// never was.
	Connected time.Time
	Server    int   // the backend that answered (X-Lab-Server); 0 if none
	Want, Got int64 // body bytes expected and received
	Outcome   Outcome
	Err       error // nil iff Outcome is OutcomeOK
	// Stall is the longest time without progress: the largest gap between
	// two of start, response header, each read that returned bytes, and
	// end. StallAt is when that gap began.
	Stall   time.Duration
	StallAt time.Time
}

// Load is a running open-loop load generator (StartLoad): it owns one
// scheduling goroutine and one per connection, all bounded in time; it
// stops by itself. Wait returns the records. Its methods are safe for
// concurrent use.
type Load struct {
	o      LoadOptions
	dial   func(ctx context.Context, src netip.Addr, network, addr string) (net.Conn, error)
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   chan struct{}
	t0     time.Time

	mu    sync.Mutex // guards conns and lag
	conns []*LoadConn
	lag   time.Duration // how late the scheduler started a connection at worst
}

// StartLoad starts an open-loop load from o.Node through o.URL: a new TCP
// connection every 1/o.Rate s for o.Duration, from o.Srcs in turn, each
// fetching a stream whose status and every byte are checked (VerifyContent),
// plus o.Long long streams across the whole run.
func (l *Lab) StartLoad(o LoadOptions) (*Load, error) {
	if o.Node == "" {
		o.Node = "client"
	}
	if _, err := l.node(o.Node); err != nil {
		return nil, err
	}
	if len(o.Srcs) == 0 {
		o.Srcs = l.plan.ClientAddrs()
	}
	node := o.Node
	return startLoad(o, func(ctx context.Context, src netip.Addr, network, addr string) (net.Conn, error) {
		return l.DialFrom(ctx, node, src, network, addr)
	})
}

func startLoad(o LoadOptions, dial func(ctx context.Context, src netip.Addr, network, addr string) (net.Conn, error)) (*Load, error) {
	if o.URL == "" {
		return nil, errors.New("load: no URL")
	}
	if len(o.Srcs) == 0 {
		return nil, errors.New("load: no source address")
	}
	if o.Rate <= 0 || o.Rate > 100000 {
		return nil, fmt.Errorf("load: rate %v: want 0 < rate <= 100000 per second", o.Rate)
	}
	if o.Duration <= 0 || o.Duration > time.Hour {
		return nil, fmt.Errorf("load: duration %v: want 0 < duration <= 1h", o.Duration)
	}
	if o.StreamSeconds == 0 {
		o.StreamSeconds = 3
	}
	if o.StreamRate == 0 {
		o.StreamRate = 16384
	}
	if o.StreamSeconds < 1 || o.StreamSeconds > MaxStreamSeconds || o.StreamRate < 1 || o.StreamRate > MaxStreamRate {
		return nil, fmt.Errorf("load: stream of %d s at %d B/s is out of range", o.StreamSeconds, o.StreamRate)
	}
	if o.LongSeconds == 0 {
		o.LongSeconds = int((o.Duration+time.Second-1)/time.Second) + o.StreamSeconds
	}
	if o.Long < 0 || o.Long > 1000 || o.LongSeconds < 1 || o.LongSeconds > MaxStreamSeconds {
		return nil, fmt.Errorf("load: %d long streams of %d s: out of range", o.Long, o.LongSeconds)
	}
	if o.Timeout == 0 {
		o.Timeout = time.Duration(o.StreamSeconds)*time.Second + 15*time.Second
	}
	if n := int(o.Rate*o.Duration.Seconds()) + 1; o.MaxConns <= 0 || o.MaxConns > n {
		o.MaxConns = n
	}
	o.MaxConns = min(o.MaxConns, maxLoadConns)
	o.URL = strings.TrimSuffix(o.URL, "/")

	ctx, cancel := context.WithCancel(context.Background())
	ld := &Load{o: o, dial: dial, cancel: cancel, done: make(chan struct{}), t0: time.Now()}
	// One transport per source address: connections are never reused
	// (every request is a new TCP connection, a new state on the balancer).
	clients := make([]*http.Client, len(o.Srcs))
	for i, src := range o.Srcs {
		clients[i] = &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return dial(ctx, src, network, addr)
			},
			DisableKeepAlives:  true,
			DisableCompression: true,
			Proxy:              nil,
		}}
	}
	longTimeout := time.Duration(o.LongSeconds)*time.Second + (o.Timeout - time.Duration(o.StreamSeconds)*time.Second)
	for i := 0; i < o.Long; i++ {
		ld.run(ctx, clients, i, true, o.LongSeconds, longTimeout)
	}
	ld.wg.Add(1)
	go func() {
		defer ld.wg.Done()
		interval := time.Duration(float64(time.Second) / o.Rate)
		for i := 0; i < o.MaxConns; i++ {
			at := ld.t0.Add(time.Duration(i) * interval)
			if at.Sub(ld.t0) >= o.Duration {
				break
			}
			if d := time.Until(at); d > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(d):
				}
			} else if ctx.Err() != nil {
				return
			}
			if late := time.Since(at); late > 0 {
				ld.mu.Lock()
				ld.lag = max(ld.lag, late)
				ld.mu.Unlock()
			}
			ld.run(ctx, clients, i, false, o.StreamSeconds, o.Timeout)
		}
	}()
	go func() {
		ld.wg.Wait()
		for _, c := range clients {
			c.CloseIdleConnections()
		}
		cancel()
		close(ld.done)
	}()
	return ld, nil
}

// run starts connection i (of the long or the short ones).
func (ld *Load) run(ctx context.Context, clients []*http.Client, i int, long bool, secs int, timeout time.Duration) {
	c := &LoadConn{Long: long, Src: ld.o.Srcs[i%len(ld.o.Srcs)], Want: int64(secs) * ld.o.StreamRate, Start: time.Now()}
	ld.mu.Lock()
	ld.conns = append(ld.conns, c)
	ld.mu.Unlock()
	hc := clients[i%len(clients)]
	url := fmt.Sprintf("%s/stream?seconds=%d&rate=%d", ld.o.URL, secs, ld.o.StreamRate)
	ld.wg.Add(1)
	go func() {
		defer ld.wg.Done()
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		p := progress{last: c.Start}
		err := fetchStream(ctx, hc, url, c, &p)
		c.End = time.Now()
		p.mark(c.End)
		c.Stall, c.StallAt = p.stall, p.stallAt
		c.Err = err
		c.Outcome = classify(err, ctx.Err())
	}()
}

func fetchStream(ctx context.Context, hc *http.Client, url string, c *LoadConn, p *progress) error {
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) {
		c.Connected = time.Now()
		if a, ok := ci.Conn.LocalAddr().(*net.TCPAddr); ok {
			c.Local = a.AddrPort()
		}
	}})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }() // a close error loses nothing read
	p.mark(time.Now())
	c.Server, _ = strconv.Atoi(resp.Header.Get("X-Lab-Server"))
	if resp.StatusCode != http.StatusOK {
		return &statusError{resp.Status}
	}
	return VerifyContent(&progressReader{r: resp.Body, p: p, got: &c.Got}, c.Want)
}

type statusError struct{ status string }

func (e *statusError) Error() string { return "status " + e.status }

// progress tracks the longest gap between marks.
type progress struct {
	last, stallAt time.Time
	stall         time.Duration
}

func (p *progress) mark(now time.Time) {
	if d := now.Sub(p.last); d > p.stall {
		p.stall, p.stallAt = d, p.last
	}
	p.last = now
}

type progressReader struct {
	r   io.Reader
	p   *progress
	got *int64
}

func (r *progressReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	if n > 0 {
		*r.got += int64(n)
		r.p.mark(time.Now())
	}
	return n, err
}

// classify maps a connection's error to its Outcome; ctxErr is its
// context's error when it ended.
func classify(err, ctxErr error) Outcome {
	var se *statusError
	switch {
	case err == nil:
		return OutcomeOK
	case errors.As(err, &se):
		return OutcomeStatus
	case errors.Is(err, ErrContentDiffers), errors.Is(err, ErrContentTooLong):
		return OutcomeBad
	case errors.Is(err, syscall.ECONNRESET), strings.Contains(err.Error(), "connection reset by peer"):
		return OutcomeReset
	case errors.Is(err, syscall.ECONNREFUSED), strings.Contains(err.Error(), "connection refused"):
		return OutcomeRefused
	case ctxErr != nil, errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return OutcomeTimeout
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF), errors.Is(err, ErrContentTruncated):
		return OutcomeShort
	}
	return OutcomeFailed
}

// Stop cancels the connections in flight and waits for them.
func (ld *Load) Stop() {
	ld.cancel()
	<-ld.done
}

// Done is closed when every connection has ended.
func (ld *Load) Done() <-chan struct{} { return ld.done }

// Wait waits for every connection to end and returns their records in
// start order (the long streams first).
func (ld *Load) Wait() []LoadConn {
	<-ld.done
	return ld.Conns()
}

// Conns returns a copy of the records; those of connections still running
// have a zero End.
func (ld *Load) Conns() []LoadConn {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	out := make([]LoadConn, 0, len(ld.conns))
	select {
	case <-ld.done:
		for _, c := range ld.conns {
			out = append(out, *c)
		}
	default:
		// Running: only the start of each is safe to read.
		for _, c := range ld.conns {
			out = append(out, LoadConn{Long: c.Long, Src: c.Src, Start: c.Start, Want: c.Want})
		}
	}
	return out
}

// Lag is how late the scheduler started a connection at worst: when it is
// large the generator (not the cluster) could not keep the rate.
func (ld *Load) Lag() time.Duration {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	return ld.lag
}

// LoadSummary sums up a Load's records.
type LoadSummary struct {
	Conns, Long int               // short connections, long streams
	ByOutcome   [numOutcomes]int  // every connection, by outcome
	LongFailed  int               // long streams that did not end OK
	Stall       time.Duration     // longest stall of a connection that ended OK
	StallAt     time.Time         // when it began
	Failures    map[int][]Outcome // failed connections by start second relative to the reference time
	FirstErr    map[Outcome]error // the first error of each failed outcome
}

// Failed counts the connections that did not end OK.
func (s LoadSummary) Failed() int { return s.Conns + s.Long - s.ByOutcome[OutcomeOK] }

// Summarize sums up conns, the failures bucketed by start second relative
// to ref (a fault; second -1 is [ref-1s, ref)).
func Summarize(conns []LoadConn, ref time.Time) LoadSummary {
	s := LoadSummary{Failures: map[int][]Outcome{}, FirstErr: map[Outcome]error{}}
	for _, c := range conns {
		if c.Long {
			s.Long++
		} else {
			s.Conns++
		}
		s.ByOutcome[c.Outcome]++
		if c.Outcome == OutcomeOK {
			if c.Stall > s.Stall {
				s.Stall, s.StallAt = c.Stall, c.StallAt
			}
			continue
		}
		if c.Long {
			s.LongFailed++
		}
		sec := int(math.Floor(c.Start.Sub(ref).Seconds()))
		s.Failures[sec] = append(s.Failures[sec], c.Outcome)
		if _, ok := s.FirstErr[c.Outcome]; !ok {
			s.FirstErr[c.Outcome] = c.Err
		}
	}
	return s
}

// Others formats the failures other than resets, "2 timeout, 1 short", or
// "0".
func (s LoadSummary) Others() string {
	var parts []string
	for o := OutcomeRefused; o < numOutcomes; o++ {
		if n := s.ByOutcome[o]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, o))
		}
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, ", ")
}

// Timeline formats the failures by start second, "-1s: 3 reset; +0s: 2
// reset, 1 timeout", or "none".
func (s LoadSummary) Timeline() string {
	secs := make([]int, 0, len(s.Failures))
	for sec := range s.Failures {
		secs = append(secs, sec)
	}
	sort.Ints(secs)
	var parts []string
	for _, sec := range secs {
		var n [numOutcomes]int
		for _, o := range s.Failures[sec] {
			n[o]++
		}
		var kinds []string
		for o := OutcomeReset; o < numOutcomes; o++ {
			if n[o] > 0 {
				kinds = append(kinds, fmt.Sprintf("%d %s", n[o], o))
			}
		}
		parts = append(parts, fmt.Sprintf("%+ds: %s", sec, strings.Join(kinds, ", ")))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}
