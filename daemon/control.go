package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// DefaultSocket is the control socket's path when neither the config
// (pfcarp_control_socket) nor the environment (PFCARP_SOCKET) names one.
const DefaultSocket = "/run/pfcarp/pfcarp.sock"

// SocketPath returns the control socket the CLI should use: $PFCARP_SOCKET
// if set (the lab sets it for each node), else DefaultSocket.
func SocketPath() string {
	if p := os.Getenv("PFCARP_SOCKET"); p != "" {
		return p
	}
	return DefaultSocket
}

// controlServer serves the daemon's local API: HTTP over a Unix socket that
// only root can open (mode 0600). Handlers answer JSON.
type controlServer struct {
	path string
	ln   net.Listener
	srv  *http.Server
}

func listenControl(path string, mux *http.ServeMux, log *slog.Logger) (*controlServer, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	// A socket left by a daemon that died is removed; a live one is not.
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		_ = c.Close() // only the connect was the question
		return nil, fmt.Errorf("control socket %s: another pfcarp daemon is running", path)
	}
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, errors.Join(fmt.Errorf("control socket: %w", err), ln.Close())
	}
	cs := &controlServer{path: path, ln: ln, srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}}
	return cs, nil
}

func (cs *controlServer) serve() error {
	err := cs.srv.Serve(cs.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (cs *controlServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = cs.srv.Shutdown(ctx)
	_ = os.Remove(cs.path)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Client talks to a running daemon over its control socket.
type Client struct {
	path string
	hc   *http.Client
}

// NewClient returns a client for the daemon listening on path.
func NewClient(path string) *Client {
	return &Client{path: path, hc: &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}},
	}}
}

// Get fetches the JSON document at the API path p into v.
func (c *Client) Get(ctx context.Context, p string, v any) error {
	return c.do(ctx, http.MethodGet, p, v, false)
}

// Post sends a command to the API path p and decodes its JSON answer
// into v; an answer of 422 (the command failed) is decoded too.
func (c *Client) Post(ctx context.Context, p string, v any) error {
	return c.do(ctx, http.MethodPost, p, v, true)
}

// do sends one request and decodes a 200 answer (and a 422 one with
// failedToo) into v.
func (c *Client) do(ctx context.Context, method, p string, v any, failedToo bool) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://pfcarp"+p, nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the pfcarp daemon at %s (is `pfcarp run` running?): %w", c.path, err)
	}
	defer func() { _ = resp.Body.Close() }() // read below: a close error loses nothing
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK && (!failedToo || resp.StatusCode != http.StatusUnprocessableEntity) {
		return fmt.Errorf("daemon: %s: %s", resp.Status, bytesTrim(body))
	}
	return json.Unmarshal(body, v)
}

func bytesTrim(b []byte) string {
	s := string(b)
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == ' ') {
		s = s[:len(s)-1]
	}
	return s
}
