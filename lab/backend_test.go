package lab

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, h http.Handler, method, target string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	req.RemoteAddr = "198.51.100.89:40123"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestBackendPages(t *testing.T) {
	b := NewBackend(2)
	for _, tc := range []struct {
		target string
		code   int
		body   string
	}{
		{"/", 200, "hi, this is No.2 server\n"},
		{"/index.htm", 200, "hi, this is No.2 server\n"},
		{"/whoami", 200, "198.51.100.89:40123\n"},
		{"/nope", 404, "404 page not found\n"},
		{"/bytes/x", 400, "bytes: \"x\" is not a decimal number\n"},
		{"/bytes/-1", 400, "bytes: -1 is out of range 0..17179869184\n"},
		{"/bytes/99999999999999999999", 400, "bytes: \"99999999999999999999\" is not a decimal number\n"},
		{"/stream?seconds=0", 400, "stream: seconds: 0 is out of range 1..86400\n"},
		{"/stream?rate=abc", 400, "stream: rate: \"abc\" is not a decimal number\n"},
	} {
		rec := get(t, b, "GET", tc.target)
		if rec.Code != tc.code || rec.Body.String() != tc.body {
			t.Errorf("GET %s = %d %q, want %d %q", tc.target, rec.Code, rec.Body.String(), tc.code, tc.body)
		}
		if rec.Header().Get("X-Lab-Server") != "2" {
			t.Errorf("GET %s: X-Lab-Server %q, want 2", tc.target, rec.Header().Get("X-Lab-Server"))
		}
	}
	if rec := get(t, b, "POST", "/"); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST / = %d, want 405", rec.Code)
	}
}

func TestBackendBytes(t *testing.T) {
	b := NewBackend(1)
	for _, n := range []int64{0, 1, 7, 8, 9, 100000} {
		rec := get(t, b, "GET", "/bytes/"+strconv.FormatInt(n, 10))
		if rec.Code != 200 {
			t.Fatalf("/bytes/%d: %d", n, rec.Code)
		}
		if err := VerifyContent(rec.Body, n); err != nil {
			t.Errorf("/bytes/%d: %v", n, err)
		}
	}
	rec := get(t, b, "HEAD", "/bytes/5000")
	if rec.Header().Get("Content-Length") != "5000" || rec.Body.Len() != 0 {
		t.Errorf("HEAD /bytes/5000: length %q body %d", rec.Header().Get("Content-Length"), rec.Body.Len())
	}
}

func TestBackendStream(t *testing.T) {
	b := NewBackend(1)
	var slept []time.Duration
	b.sleep = func(ctx context.Context, d time.Duration) error {
		slept = append(slept, d)
		return nil
	}
	rec := get(t, b, "GET", "/stream?seconds=3&rate=1001")
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if got := rec.Header().Get("Content-Length"); got != "3003" {
		t.Errorf("Content-Length %s, want 3003", got)
	}
	if err := VerifyContent(rec.Body, 3003); err != nil {
		t.Error(err)
	}
	if len(slept) != 3*streamTicks-1 {
		t.Errorf("slept %d times, want %d", len(slept), 3*streamTicks-1)
	}
	for _, d := range slept {
		if d != 100*time.Millisecond {
			t.Fatalf("slept %v, want 100ms", d)
		}
	}
}

// A client that goes away ends the stream early (no goroutine or write
// loop left running for the remaining seconds).
func TestBackendStreamStopsWhenClientLeaves(t *testing.T) {
	b := NewBackend(1)
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	b.sleep = func(c context.Context, d time.Duration) error {
		n++
		if n == 2 {
			cancel()
		}
		return c.Err()
	}
	req := httptest.NewRequest("GET", "/stream?seconds=60&rate=10", nil).WithContext(ctx)
	rec := httptest.NewRecorder()
	b.ServeHTTP(rec, req)
	if n != 2 {
		t.Errorf("slept %d times after cancel, want 2", n)
	}
	if rec.Body.Len() >= 600 {
		t.Errorf("sent %d bytes, want the stream cut short", rec.Body.Len())
	}
}

func TestContent(t *testing.T) {
	all := make([]byte, 1000)
	FillContent(all, 0)
	for off := 0; off < 40; off++ {
		for _, n := range []int{0, 1, 5, 8, 17, 100} {
			part := make([]byte, n)
			FillContent(part, uint64(off))
			if !bytes.Equal(part, all[off:off+n]) {
				t.Fatalf("FillContent(off=%d, n=%d) disagrees with the full fill", off, n)
			}
		}
	}
	if bytes.Equal(all[:8], all[8:16]) {
		t.Error("content repeats every 8 bytes")
	}
	b, _ := io.ReadAll(ContentReader(1000))
	if !bytes.Equal(b, all) {
		t.Error("ContentReader disagrees with FillContent")
	}
	bad := bytes.Clone(all)
	bad[777] ^= 1
	for _, tc := range []struct {
		data []byte
		want int64
		err  string
		is   error
	}{
		{all, 1000, "", nil},
		{bad, 1000, "content differs at offset 777", ErrContentDiffers},
		{all[:999], 1000, "content truncated: got 999 of 1000 bytes", ErrContentTruncated},
		{all, 999, "content too long", ErrContentTooLong},
		{append(bytes.Clone(all[:500]), all[:500]...), 1000, "content differs at offset 500", ErrContentDiffers},
	} {
		err := VerifyContent(bytes.NewReader(tc.data), tc.want)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("VerifyContent(%d bytes, want %d) = %v, want %q", len(tc.data), tc.want, err, tc.err)
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("VerifyContent(%d bytes, want %d) = %v, want an error wrapping %v", len(tc.data), tc.want, err, tc.is)
		}
	}
}

func TestServeBackendStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		done <- ServeBackend(ctx, 3, []string{"127.0.0.1:0"}, nil, func() { close(ready) })
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := ServeBackend(ctx, 0, []string{":0"}, nil, nil); err == nil {
		t.Error("index 0 accepted")
	}
}
