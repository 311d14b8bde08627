package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Limits on what a backend request may ask for (requests are untrusted).
const (
	MaxBytes         = 1 << 34 // /bytes/N: 16 GiB
	MaxStreamSeconds = 86400
	MaxStreamRate    = 100 << 20 // bytes per second
	streamTicks      = 10        // chunks per second of /stream
)

// Backend is the web server the lab runs in each server node (`pfcarp lab
// backend`). Its zero value is not usable; build it with NewBackend.
type Backend struct {
	index int
	// sleep waits d or until ctx ends; tests replace it to run /stream
	// without waiting.
	sleep func(ctx context.Context, d time.Duration) error
}

// NewBackend returns the handler of server number index (1-based).
func NewBackend(index int) *Backend {
	return &Backend{index: index, sleep: sleepCtx}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Greeting is the body of / and /index.htm on server index, as in the seed.
func Greeting(index int) string { return fmt.Sprintf("hi, this is No.%d server\n", index) }

// ServeHTTP implements:
//
//	/ and /index.htm         "hi, this is No.N server"
//	/bytes/N                 N bytes of content (see FillContent)
//	/stream?seconds=S&rate=R S*R bytes of content over S seconds, R bytes/s
//	/whoami                  the client's address:port as this server sees it
func (b *Backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Lab-Server", strconv.Itoa(b.index))
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	switch p := r.URL.Path; {
	case p == "/" || p == "/index.htm":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, Greeting(b.index)) // a client that left is its own test's failure
	case p == "/whoami":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, r.RemoteAddr+"\n") // as above
	case strings.HasPrefix(p, "/bytes/"):
		n, err := parseBound(strings.TrimPrefix(p, "/bytes/"), 0, MaxBytes)
		if err != nil {
			http.Error(w, "bytes: "+err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		if r.Method == http.MethodHead {
			return
		}
		_, _ = io.Copy(w, ContentReader(n)) // the client checks the bytes (VerifyContent)
	case p == "/stream":
		b.stream(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (b *Backend) stream(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	secs, err := queryBound(q.Get("seconds"), 10, 1, MaxStreamSeconds)
	if err != nil {
		http.Error(w, "stream: seconds: "+err.Error(), http.StatusBadRequest)
		return
	}
	rate, err := queryBound(q.Get("rate"), 1000, 1, MaxStreamRate)
	if err != nil {
		http.Error(w, "stream: rate: "+err.Error(), http.StatusBadRequest)
		return
	}
	total := secs * rate
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(total, 10))
	if r.Method == http.MethodHead {
		return
	}
	rc := http.NewResponseController(w)
	ticks := secs * streamTicks
	buf := make([]byte, 0, rate/streamTicks+1)
	var sent int64
	for i := int64(1); i <= ticks; i++ {
		// Cumulative target after tick i, so rounding never drifts.
		next := total * i / ticks
		buf = buf[:next-sent]
		FillContent(buf, uint64(sent))
		if _, err := w.Write(buf); err != nil {
			return
		}
		sent = next
		if err := rc.Flush(); err != nil {
			return
		}
		if i < ticks {
			if b.sleep(r.Context(), time.Second/streamTicks) != nil {
				return
			}
		}
	}
}

func queryBound(s string, def, lo, hi int64) (int64, error) {
	if s == "" {
		return def, nil
	}
	return parseBound(s, lo, hi)
}

func parseBound(s string, lo, hi int64) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a decimal number", s)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%d is out of range %d..%d", n, lo, hi)
	}
	return n, nil
}

// ServeBackend runs server number index on each listen address until ctx
// ends, then shuts down. ready, when not nil, is called once every listener
// is bound. A nil logger discards.
func ServeBackend(ctx context.Context, index int, listen []string, logger *log.Logger, ready func()) error {
	if logger == nil {
		logger = log.New(io.Discard, "", 0)
	}
	if index < 1 {
		return fmt.Errorf("backend: index %d must be 1 or more", index)
	}
	if len(listen) == 0 {
		return errors.New("backend: no listen address")
	}
	var lns []net.Listener
	for _, a := range listen {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			for _, l := range lns {
				err = errors.Join(err, l.Close())
			}
			return fmt.Errorf("backend: %w", err)
		}
		lns = append(lns, ln)
	}
	srv := &http.Server{
		Handler:           NewBackend(index),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          logger,
	}
	var wg sync.WaitGroup
	errc := make(chan error, len(lns))
	for _, ln := range lns {
		logger.Printf("backend No.%d listening on %s", index, ln.Addr())
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	if ready != nil {
		ready()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil {
		// Connections still open after the grace period: cut them. Close
		// reports only the listeners' errors, closed by Shutdown already.
		_ = srv.Close()
	}
	wg.Wait()
	if err != nil {
		return fmt.Errorf("backend: %w", err)
	}
	return nil
}
