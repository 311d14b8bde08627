package relayd

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os/exec"
	"path"
	"strconv"
	"strings"
	"time"
)

// State is a host's state as relayd keeps it (HOST_UNKNOWN, HOST_UP,
// HOST_DOWN).
type State int

// Host states.
const (
	Unknown State = iota
	Up
	Down
)

func (s State) String() string { return [...]string{"unknown", "up", "down"}[s] }

// Probe runs one check of one host and returns its raw result (before
// retry handling). Real network I/O uses deadlines of timeout.
type Probe func(ctx context.Context, t *Table, h *Host, timeout time.Duration) State

// probe is the real Probe for the table's check kind.
func probe(ctx context.Context, t *Table, h *Host, timeout time.Duration) State {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch t.Check.Kind {
	case CheckICMP:
		return probeICMP(ctx, h)
	case CheckScript:
		return probeScript(ctx, t.Check.Path, h.Name)
	}
	return probeTCP(ctx, t, h)
}

// probeTCP is check_tcp.c: connect (and TLS handshake), send the request,
// then read until the validator accepts or the peer closes.
func probeTCP(ctx context.Context, t *Table, h *Host) State {
	addr := net.JoinHostPort(h.Addr.String(), strconv.Itoa(int(t.Port)))
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return Down
	}
	defer func() { _ = c.Close() }() // the check's answer is read: nothing to lose
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	conn := c
	if t.Check.TLS {
		// hce.c sets tls_config_insecure_noverifycert/-name: a check
		// proves the service answers, not who it is.
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec
		if err := tc.HandshakeContext(ctx); err != nil {
			return Down
		}
		conn = tc
	}
	req, validate := request(t.Check)
	if validate == nil {
		return Up
	}
	if req != "" {
		if _, err := io.WriteString(conn, req); err != nil {
			return Down
		}
	}
	var buf []byte
	chunk := make([]byte, 4096)
	for len(buf) < 1<<20 {
		n, err := conn.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if n > 0 && validate(buf, false) {
			return Up
		}
		if errors.Is(err, io.EOF) {
			if validate(buf, true) {
				return Up
			}
			return Down
		}
		if err != nil {
			return Down
		}
	}
	return Down
}

// request returns what a check sends and the validator of what it reads
// (nil: connecting is the check). final is set at the peer's close.
func request(c Check) (string, func(b []byte, final bool) bool) {
	switch c.Kind {
	case CheckHTTPCode, CheckHTTPDigest:
		// parse.y: HEAD for code checks, GET for digests, HTTP/1.1 with
		// a Host header when one is given, else HTTP/1.0.
		m := "HEAD"
		if c.Kind == CheckHTTPDigest {
			m = "GET"
		}
		req := m + " " + c.Path + " HTTP/1.0\r\n\r\n"
		if c.Host != "" {
			req = m + " " + c.Path + " HTTP/1.1\r\nHost: " + c.Host + "\r\nConnection: close\r\n\r\n"
		}
		if c.Kind == CheckHTTPCode {
			return req, func(b []byte, _ bool) bool { return httpCode(b) == c.Code }
		}
		return req, func(b []byte, final bool) bool { return final && httpDigest(b, c.MD5) == c.Digest }
	case CheckSendExpect:
		return c.Send, func(b []byte, _ bool) bool { return fnmatch(c.Expect, string(b)) }
	}
	return "", nil
}

// httpCode is check_http_code: "HTTP/1.0 " or "HTTP/1.1 " then a 3-digit
// code; -1 when the head cannot be parsed yet.
func httpCode(b []byte) int {
	s := string(b)
	if !strings.HasPrefix(s, "HTTP/1.1 ") && !strings.HasPrefix(s, "HTTP/1.0 ") {
		return -1
	}
	s = s[len("HTTP/1.1 "):]
	if len(s) < 5 {
		return -1
	}
	n, err := strconv.Atoi(s[:3])
	if err != nil || n < 100 {
		return -1
	}
	return n
}

// httpDigest is check_http_digest: the hex digest of the body after the
// head's blank line; "" without one.
func httpDigest(b []byte, useMD5 bool) string {
	i := bytes.Index(b, []byte("\r\n\r\n"))
	if i < 0 {
		return ""
	}
	body := b[i+4:]
	if useMD5 {
		s := md5.Sum(body) //nolint:gosec // relayd's digest type
		return hex.EncodeToString(s[:])
	}
	s := sha1.Sum(body) //nolint:gosec // relayd's digest type
	return hex.EncodeToString(s[:])
}

// fnmatch is fnmatch(3) with flags 0, as check_send_expect uses it:
// shell globbing over the whole received data ('*' also matches '/').
func fnmatch(pattern, s string) bool {
	// path.Match treats '/' specially; escape by matching byte-wise.
	return globMatch(pattern, s)
}

func globMatch(p, s string) bool {
	for len(p) > 0 {
		switch p[0] {
		case '*':
			for len(p) > 0 && p[0] == '*' {
				p = p[1:]
			}
			if p == "" {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if globMatch(p, s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if s == "" {
				return false
			}
			p, s = p[1:], s[1:]
		case '[':
			end := strings.IndexByte(p[1:], ']')
			if end < 0 || s == "" {
				if s == "" || s[0] != '[' {
					return false
				}
				p, s = p[1:], s[1:]
				continue
			}
			ok, err := path.Match(p[:end+2], s[:1])
			if err != nil || !ok {
				return false
			}
			p, s = p[end+2:], s[1:]
		case '\\':
			if len(p) > 1 {
				p = p[1:]
			}
			fallthrough
		default:
			if s == "" || s[0] != p[0] {
				return false
			}
			p, s = p[1:], s[1:]
		}
	}
	return s == ""
}

// probeScript is check_script.c: run path with the host's name as its
// argument; relayd.conf(5): a positive exit status is up, zero is down;
// a script that cannot run or is killed at the timeout leaves the host
// unknown.
func probeScript(ctx context.Context, script, host string) State {
	cmd := exec.CommandContext(ctx, script, host)
	err := cmd.Run()
	if ctx.Err() != nil {
		return Unknown
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return Down
	case errors.As(err, &ee):
		if ee.ExitCode() > 0 {
			return Up
		}
		return Down
	}
	return Unknown
}

// DefaultProbe is the real Probe (Options.Probe when nil): the check of t's kind
// against h with timeout. A caller that wraps the probe (to time it)
// calls this.
func DefaultProbe(ctx context.Context, t *Table, h *Host, timeout time.Duration) State {
	return probe(ctx, t, h, timeout)
}
