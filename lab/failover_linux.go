package lab

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// Fetch is one request of a ClientLoop.
type Fetch struct {
	Start, End time.Time
	Err        error
}

// ClientLoop fetches a URL from a node over and over, each time on a NEW
// TCP connection (so every request needs a working path through the
// balancer, as a new client would), and records the outcome. It owns one
// goroutine; Stop ends it. Its methods are safe for concurrent use.
type ClientLoop struct {
	stop chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex // guards fetches
	fetches []Fetch
}

// maxFetches bounds what a loop keeps (the oldest are dropped).
const maxFetches = 100000

// StartClientLoop starts fetching url from node (source src) every
// interval, each request bounded by timeout.
func (l *Lab) StartClientLoop(node string, src netip.Addr, url string, interval, timeout time.Duration) (*ClientLoop, error) {
	if _, err := l.node(node); err != nil {
		return nil, err
	}
	if interval <= 0 || timeout <= 0 {
		return nil, errors.New("client loop: interval and timeout must be positive")
	}
	c := &ClientLoop{stop: make(chan struct{})}
	hc := l.HTTPClient(node, src)
	hc.Timeout = timeout
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer hc.CloseIdleConnections()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			f := Fetch{Start: time.Now()}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			f.Err = fetchOnce(ctx, hc, url, c.stop)
			cancel()
			f.End = time.Now()
			c.mu.Lock()
			if len(c.fetches) >= maxFetches {
				c.fetches = c.fetches[1:]
			}
			c.fetches = append(c.fetches, f)
			c.mu.Unlock()
			select {
			case <-c.stop:
				return
			case <-t.C:
			}
		}
	}()
	return c, nil
}

func fetchOnce(ctx context.Context, hc *http.Client, url string, stop <-chan struct{}) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }() // a close error loses nothing read
	buf := make([]byte, 512)
	for {
		if _, err := resp.Body.Read(buf); err != nil {
			break
		}
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// Stop ends the loop and waits for the request in flight.
func (c *ClientLoop) Stop() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	c.wg.Wait()
}

// Fetches returns a copy of the outcomes so far, oldest first.
func (c *ClientLoop) Fetches() []Fetch {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Fetch(nil), c.fetches...)
}

// LastOK returns when the latest successful request ended (zero: none).
func (c *ClientLoop) LastOK() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.fetches) - 1; i >= 0; i-- {
		if c.fetches[i].Err == nil {
			return c.fetches[i].End
		}
	}
	return time.Time{}
}

// Outage describes the service interruption a ClientLoop saw.
type Outage struct {
	Failed   int       // failed requests in the interruption
	LastOK   time.Time // end of the last success before it
	Resumed  time.Time // end of the first success after it; zero if none yet
	FirstErr error     // the first failure's error
}

// Gap is the time without a successful request: Resumed - LastOK.
func (o Outage) Gap() time.Duration {
	if o.Resumed.IsZero() || o.LastOK.IsZero() {
		return 0
	}
	return o.Resumed.Sub(o.LastOK)
}

// OutageAfter returns the first interruption whose first failed request
// ended after t. ok is false when no request failed after t.
func (c *ClientLoop) OutageAfter(t time.Time) (o Outage, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	first := -1
	for i, f := range c.fetches {
		if f.Err != nil && f.End.After(t) {
			first = i
			break
		}
	}
	if first < 0 {
		return Outage{}, false
	}
	o.FirstErr = c.fetches[first].Err
	for i := first - 1; i >= 0; i-- {
		if c.fetches[i].Err == nil {
			o.LastOK = c.fetches[i].End
			break
		}
	}
	for _, f := range c.fetches[first:] {
		if f.Err != nil {
			o.Failed++
			continue
		}
		o.Resumed = f.End
		break
	}
	return o, true
}

// WaitAnswer polls dst (an address and a TCP port) from node until some
// host answers for it, with a SYN-ACK or a reset, and returns when. It is
// how a client sees a virtual IP come alive: after the old master lost its
// cable only the new master can answer. Each try is bounded by try.
func (l *Lab) WaitAnswer(ctx context.Context, node string, src netip.Addr, dst netip.AddrPort, try time.Duration) (time.Time, error) {
	var last error
	for {
		tctx, cancel := context.WithTimeout(ctx, try)
		c, err := l.DialFrom(tctx, node, src, "tcp", dst.String())
		cancel()
		switch {
		case err == nil:
			at := time.Now()
			_ = c.Close() // only the connect was measured
			return at, nil
		case errors.Is(err, syscall.ECONNREFUSED):
			return time.Now(), nil
		}
		last = err
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("%s did not answer %s: %w (last try: %v)", dst, node, ctx.Err(), last)
		case <-time.After(5 * time.Millisecond):
		}
	}
}
