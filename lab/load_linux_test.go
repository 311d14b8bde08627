package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestLoadOutcomes runs a short load over loopback against a backend that
// misbehaves on purpose, by request number, and checks that every
// connection is classified as its request was served.
func TestLoadOutcomes(t *testing.T) {
	goroutineLeakCheck(t)
	good := NewBackend(1)
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := n.Add(1) - 1
		switch k % 6 {
		case 1: // reset after some of the body
			hijackWrite(t, w, 1000, 100, func(c *net.TCPConn) { c.SetLinger(0) })
		case 2: // one wrong byte
			w.Header().Set("Content-Length", "1000")
			b := make([]byte, 1000)
			FillContent(b, 0)
			b[500] ^= 0x40
			w.Write(b)
		case 3: // a clean close after half the body
			hijackWrite(t, w, 1000, 500, nil)
		case 4:
			http.Error(w, "no", http.StatusInternalServerError)
		case 5: // headers, then nothing until the client gives up
			w.Header().Set("Content-Length", "1000")
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		default:
			good.ServeHTTP(w, r)
		}
	}))
	defer srv.Close()
	dial := func(ctx context.Context, src netip.Addr, network, addr string) (net.Conn, error) {
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
		return d.DialContext(ctx, network, addr)
	}
	ld, err := startLoad(LoadOptions{
		Srcs:          []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")},
		URL:           srv.URL,
		Rate:          100,
		Duration:      240 * time.Millisecond, // 24 connections
		StreamSeconds: 1,
		StreamRate:    1000,
		Timeout:       2500 * time.Millisecond,
	}, dial)
	if err != nil {
		t.Fatal(err)
	}
	conns := ld.Wait()
	if len(conns) != 24 {
		t.Fatalf("%d connections, want 24", len(conns))
	}
	want := map[Outcome]int{OutcomeOK: 4, OutcomeReset: 4, OutcomeBad: 4, OutcomeShort: 4, OutcomeStatus: 4, OutcomeTimeout: 4}
	s := Summarize(conns, conns[0].Start)
	for o := OutcomeOK; o < numOutcomes; o++ {
		if s.ByOutcome[o] != want[o] {
			t.Errorf("%s: %d connections, want %d (first error %v)", o, s.ByOutcome[o], want[o], s.FirstErr[o])
		}
	}
	if s.Conns != 24 || s.Long != 0 || s.Failed() != 20 {
		t.Errorf("summary: %d conns, %d long, %d failed; want 24, 0, 20", s.Conns, s.Long, s.Failed())
	}
	for _, c := range conns {
		if c.End.Before(c.Start) || (c.Outcome == OutcomeOK) != (c.Err == nil) || !c.Local.IsValid() {
			t.Errorf("record %+v is inconsistent", c)
		}
		if c.Outcome == OutcomeOK && (c.Got != 1000 || c.Server != 1 || c.Stall <= 0) {
			t.Errorf("ok connection: %+v", c)
		}
	}
	if got := s.Others(); got != "4 timeout, 4 short, 4 bad, 4 status" {
		t.Errorf("Others() = %q", got)
	}
	// All started within the first second after the reference time.
	if tl := s.Timeline(); tl != "+0s: 4 reset, 4 timeout, 4 short, 4 bad, 4 status" {
		t.Errorf("Timeline() = %q", tl)
	}
}

// hijackWrite sends a response header for want bytes and the first n of
// them, then closes the connection (after prep, e.g. SetLinger(0) for a
// reset).
func hijackWrite(t *testing.T, w http.ResponseWriter, want, n int, prep func(*net.TCPConn)) {
	c, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		t.Error(err)
		return
	}
	b := make([]byte, n)
	FillContent(b, 0)
	fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", want)
	buf.Write(b)
	buf.Flush()
	time.Sleep(50 * time.Millisecond) // let the client read the header first
	if prep != nil {
		prep(c.(*net.TCPConn))
	}
	c.Close()
}

func TestSummarizeBuckets(t *testing.T) {
	ref := time.Date(2026, 1, 1, 0, 0, 10, 0, time.UTC)
	at := func(ms int) time.Time { return ref.Add(time.Duration(ms) * time.Millisecond) }
	e := errors.New("x")
	conns := []LoadConn{
		{Start: at(-1500), Outcome: OutcomeReset, Err: e},
		{Start: at(-1000), Outcome: OutcomeReset, Err: e},
		{Start: at(-1), Outcome: OutcomeTimeout, Err: e},
		{Start: at(0), Outcome: OutcomeOK, Stall: 300 * time.Millisecond, StallAt: at(100)},
		{Start: at(999), Outcome: OutcomeReset, Err: e},
		{Start: at(2000), Outcome: OutcomeOK, Stall: 200 * time.Millisecond},
		{Start: at(-3000), Long: true, Outcome: OutcomeShort, Err: e},
		{Start: at(2500), Outcome: OutcomeRefused, Err: e, Stall: time.Hour}, // a failure's stall does not count
	}
	s := Summarize(conns, ref)
	if got, want := s.Timeline(), "-3s: 1 short; -2s: 1 reset; -1s: 1 reset, 1 timeout; +0s: 1 reset; +2s: 1 refused"; got != want {
		t.Errorf("Timeline() = %q, want %q", got, want)
	}
	if s.Conns != 7 || s.Long != 1 || s.LongFailed != 1 || s.Failed() != 6 || s.ByOutcome[OutcomeReset] != 3 {
		t.Errorf("summary %+v", s)
	}
	if s.Stall != 300*time.Millisecond || !s.StallAt.Equal(at(100)) {
		t.Errorf("stall %v at %v, want 300ms at %v", s.Stall, s.StallAt, at(100))
	}
	if !strings.Contains(s.Others(), "1 refused, 1 timeout, 1 short") {
		t.Errorf("Others() = %q", s.Others())
	}
	if (LoadSummary{}).Others() != "0" || (LoadSummary{}).Timeline() != "none" {
		t.Error("empty summary formats")
	}
}

func TestLoadOptionsChecked(t *testing.T) {
	dial := func(context.Context, netip.Addr, string, string) (net.Conn, error) { return nil, errors.New("no") }
	src := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	for _, o := range []LoadOptions{
		{Srcs: src, Rate: 1, Duration: time.Second},
		{URL: "http://x", Rate: 1, Duration: time.Second},
		{URL: "http://x", Srcs: src, Duration: time.Second},
		{URL: "http://x", Srcs: src, Rate: 1},
		{URL: "http://x", Srcs: src, Rate: 1, Duration: time.Second, StreamRate: -1},
		{URL: "http://x", Srcs: src, Rate: 1, Duration: time.Second, Long: -1},
	} {
		if _, err := startLoad(o, dial); err == nil {
			t.Errorf("startLoad(%+v) accepted", o)
		}
	}
}
