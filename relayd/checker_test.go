package relayd

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pfcarp/pfcarp/internal/clock"
	"github.com/pfcarp/pfcarp/internal/testenv"
)

func cfgWith(t *testing.T, hosts, check string) *Config {
	t.Helper()
	return mustParse(t, fmt.Sprintf("table <t> { %s }\nredirect r {\n listen on 192.0.2.1 port 80\n forward to <t> %s\n}\n", hosts, check))
}

// scripted is a Probe returning queued results per host.
type scripted struct {
	mu  sync.Mutex
	res map[string][]State
}

func (s *scripted) probe(_ context.Context, _ *Table, h *Host, _ time.Duration) State {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.res[h.Name]
	if len(q) == 0 {
		return Unknown
	}
	s.res[h.Name] = q[1:]
	return q[0]
}

func TestCheckerRetryAndCounts(t *testing.T) {
	cfg := cfgWith(t, "192.0.2.10 retry 2, 192.0.2.11 parent 1", "check icmp")
	sp := &scripted{res: map[string][]State{"192.0.2.10": {Down, Up, Down, Down, Down, Up}}}
	var got []string
	c, err := NewChecker(cfg, clock.NewFake(time.Unix(0, 0)), Options{Probe: sp.probe, OnStatus: func(s Status) {
		got = append(got, fmt.Sprintf("%s:%v:%d/%d", s.Host, s.State, s.UpCount, s.CheckCount))
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"192.0.2.10:down:0/1", "192.0.2.11:down:0/1", // first failure: no retries armed yet
		"192.0.2.10:up:1/2", "192.0.2.11:up:1/2",
		"192.0.2.10:up:2/3", "192.0.2.11:up:2/3", // retry 2 left -> 1
		"192.0.2.10:up:3/4", "192.0.2.11:up:3/4", // 1 -> 0
		"192.0.2.10:down:3/5", "192.0.2.11:down:3/5", // third failure in a row
		"192.0.2.10:up:4/6", "192.0.2.11:up:4/6",
	}
	for range 6 {
		c.Round(context.Background())
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
	if a := c.Hosts()[0].Availability(); a < 66.6 || a > 66.7 {
		t.Fatalf("availability %v", a)
	}
}

func TestCheckerClockAndSkip(t *testing.T) {
	cfg := mustParse(t, "interval 2\ntable <a> { 192.0.2.1 }\ntable <b> { 192.0.2.2 }\nredirect r {\n listen on 192.0.2.9 port 80\n forward to <a> check tcp\n}\nredirect s {\n listen on 192.0.2.9 port 81\n forward to <b> check tcp interval 6\n}\n")
	fake := clock.NewFake(time.Unix(0, 0))
	var mu sync.Mutex
	count := map[string]int{}
	c, err := NewChecker(cfg, fake, Options{Probe: func(context.Context, *Table, *Host, time.Duration) State { return Up },
		OnStatus: func(s Status) { mu.Lock(); count[s.Table]++; mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	c.Start()
	defer c.Stop()
	wait := func(a, b int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			ok := count["a"] == a && count["b"] == b
			got := fmt.Sprint(count)
			mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("counts %s, want a=%d b=%d", got, a, b)
			}
			time.Sleep(time.Millisecond)
		}
	}
	fake.Advance(0)
	wait(1, 1)
	for i := 2; i <= 3; i++ {
		fake.Advance(2 * time.Second)
		wait(i, 1)
	}
	fake.Advance(2 * time.Second)
	wait(4, 2)
}

func listen(t *testing.T, serve func(net.Conn)) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); serve(c) }()
		}
	}()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

func runProbe(t *testing.T, check string, port uint16) State {
	t.Helper()
	cfg := mustParse(t, fmt.Sprintf("table <t> { 127.0.0.1 }\nredirect r {\n listen on 127.0.0.1 port 1\n forward to <t> port %d %s\n}\n", port, check))
	tb := cfg.Instances[0]
	return probe(context.Background(), tb, tb.Hosts[0], 5*time.Second)
}

func TestProbeTCPAndHTTP(t *testing.T) {
	body := "hello pool\n"
	sum := sha1.Sum([]byte(body))
	var mu sync.Mutex
	var hostHdr string
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if r.Host != "" {
			hostHdr = r.Host
		}
		mu.Unlock()
		if r.URL.Path == "/bad" {
			w.WriteHeader(503)
			return
		}
		fmt.Fprint(w, body)
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	port := uint16(l.Addr().(*net.TCPAddr).Port)

	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	cport := uint16(closed.Addr().(*net.TCPAddr).Port)
	closed.Close()

	for _, tc := range []struct {
		check string
		port  uint16
		want  State
	}{
		{"check tcp", port, Up},
		{"check tcp", cport, Down},
		{`check http "/" code 200`, port, Up},
		{`check http "/bad" code 200`, port, Down},
		{`check http "/bad" host "www.example.org" code 503`, port, Up},
		{`check http "/" digest "` + hex.EncodeToString(sum[:]) + `"`, port, Up},
		{`check http "/" digest "0000000000000000000000000000000000000000"`, port, Down},
	} {
		if got := runProbe(t, tc.check, tc.port); got != tc.want {
			t.Errorf("%s on port %d: %v, want %v", tc.check, tc.port, got, tc.want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if hostHdr != "www.example.org" {
		t.Errorf("last Host header %q", hostHdr)
	}
}

func TestProbeSendExpect(t *testing.T) {
	port := listen(t, func(c net.Conn) {
		buf := make([]byte, 64)
		n, _ := c.Read(buf)
		if string(buf[:n]) == "PING\r\n" {
			fmt.Fprint(c, "+PONG ok\r\n")
		} else {
			fmt.Fprint(c, "-ERR\r\n")
		}
	})
	banner := listen(t, func(c net.Conn) { fmt.Fprint(c, "220 mail.example.org ESMTP\r\n") })
	for _, tc := range []struct {
		check string
		port  uint16
		want  State
	}{
		{`check send "PING\r\n" expect "+PONG*"`, port, Up},
		{`check send "nope" expect "+PONG*"`, port, Down},
		{`check send nothing expect "220 *ESMTP*"`, banner, Up},
		{`check send nothing expect "554*"`, banner, Down},
	} {
		// The send string is sent as written (parse.y's sendbuf is not
		// translated); the test server's protocol uses a real CRLF.
		check := tc.check
		if got := runProbeRaw(t, check, tc.port); got != tc.want {
			t.Errorf("%s: %v, want %v", check, got, tc.want)
		}
	}
}

// runProbeRaw parses with the \r\n of the send string turned into bytes,
// which a relayd.conf would spell with a macro or literal characters.
func runProbeRaw(t *testing.T, check string, port uint16) State {
	cfg := mustParse(t, fmt.Sprintf("table <t> { 127.0.0.1 }\nredirect r {\n listen on 127.0.0.1 port 1\n forward to <t> port %d %s\n}\n", port, check))
	tb := cfg.Instances[0]
	tb.Check.Send = translateString(tb.Check.Send)
	return probe(context.Background(), tb, tb.Hosts[0], 5*time.Second)
}

func TestProbeScript(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "chk")
	os.WriteFile(script, []byte("#!/bin/sh\n[ \"$1\" = 127.0.0.1 ] && exit 1\nexit 0\n"), 0o755)
	cfg := mustParse(t, fmt.Sprintf("table <t> { 127.0.0.1, 127.0.0.2 }\nredirect r {\n listen on 127.0.0.1 port 1\n forward to <t> check script %q\n}\n", script))
	tb := cfg.Instances[0]
	if got := probe(context.Background(), tb, tb.Hosts[0], 5*time.Second); got != Up {
		t.Errorf("exit 1: %v, want up", got)
	}
	if got := probe(context.Background(), tb, tb.Hosts[1], 5*time.Second); got != Down {
		t.Errorf("exit 0: %v, want down", got)
	}
	tb.Check.Path = filepath.Join(dir, "missing")
	if got := probe(context.Background(), tb, tb.Hosts[0], 5*time.Second); got != Unknown {
		t.Errorf("missing script: %v, want unknown", got)
	}
}

func TestProbeICMPLoopback(t *testing.T) {
	testenv.RequireRoot(t)
	h := &Host{ID: 1, Name: "127.0.0.1", Addr: netip.MustParseAddr("127.0.0.1")}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if got := probeICMP(ctx, h); got != Up {
		t.Fatalf("icmp 127.0.0.1: %v", got)
	}
}

func TestFnmatch(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{"220 *", "220 hi\r\n", true}, {"a?c", "abc", true}, {"a?c", "ac", false},
		{"[a-c]x", "bx", true}, {"[a-c]x", "dx", false}, {"*/*", "a/b", true}, {"\\*", "*", true}, {"abc", "abcd", false},
	} {
		if got := fnmatch(tc.p, tc.s); got != tc.want {
			t.Errorf("fnmatch(%q, %q) = %v", tc.p, tc.s, got)
		}
	}
}
