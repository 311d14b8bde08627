package daemon

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The metrics listener (pfcarp_metrics): Prometheus metrics on /metrics,
// the node's state as JSON on /status.json and a status page on /. It is
// read-only: every handler answers GET (and HEAD) only; changing anything
// stays with the control socket, which only root can open.

//go:embed status.html
var pageFS embed.FS

var pageTmpl = template.Must(template.New("status.html").Funcs(template.FuncMap{
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return time.Since(t).Round(time.Second).String() + " ago"
	},
	"stateClass": func(s string) string {
		switch s {
		case "MASTER":
			return "master"
		case "BACKUP":
			return "backup"
		}
		return "init"
	},
}).ParseFS(pageFS, "status.html"))

// PageData is what /status.json serves and the page shows: this node, its
// peer (when pfcarp_peer_status names it) and pf's counters.
type PageData struct {
	Self    Status    `json:"self"`
	Peer    *Status   `json:"peer,omitempty"`
	PeerErr string    `json:"peer_error,omitempty"`
	PF      *PFStats  `json:"pf,omitempty"`
	At      time.Time `json:"at"`
	// Refresh is the page's reload interval in seconds.
	Refresh int `json:"-"`
}

const pageRefresh = 2 // seconds

func (d *Daemon) pageData(ctx context.Context) PageData {
	pd := PageData{Self: d.Status(), At: time.Now(), Refresh: pageRefresh}
	if d.config().PF.Enable {
		if pf, err := d.sys.PFStats(); err == nil {
			pd.PF = pf
		}
	}
	if peer := d.config().PeerStatus; peer.IsValid() {
		st, err := fetchPeer(ctx, peer)
		if err != nil {
			pd.PeerErr = err.Error()
		} else {
			pd.Peer = st
		}
	}
	return pd
}

// fetchPeer reads the peer's own state from its /status.json.
func fetchPeer(ctx context.Context, peer netip.AddrPort) (*Status, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+peer.String()+"/status.json", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("peer %s: %w", peer, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("peer %s: %s", peer, resp.Status)
	}
	var pd PageData
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&pd); err != nil {
		return nil, fmt.Errorf("peer %s: %w", peer, err)
	}
	return &pd.Self, nil
}

// webMux returns the metrics listener's handlers.
func (d *Daemon) webMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.registry(), promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelWarn)}))
	mux.HandleFunc("GET /status.json", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, d.pageData(r.Context())) })
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		if err := pageTmpl.Execute(w, d.pageData(r.Context())); err != nil {
			d.log.Warn("status page", "err", err)
		}
	})
	return mux
}

// WebAddr is the metrics listener's address ("" when off).
func (d *Daemon) WebAddr() string { return d.webAddr }

// listenWeb starts the metrics listener when pfcarp_metrics is set.
func (d *Daemon) listenWeb() error {
	addr := d.config().Metrics
	if !addr.IsValid() {
		return nil
	}
	ln, err := net.Listen("tcp", addr.String())
	if err != nil {
		return fmt.Errorf("%s: pfcarp_metrics: %w", d.config().MetricsPos, err)
	}
	srv := &http.Server{Handler: d.webMux(), ReadHeaderTimeout: 5 * time.Second,
		ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelWarn)}
	d.web, d.webAddr = srv, ln.Addr().String()
	d.goFatal(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("pfcarp_metrics: %w", err)
		}
		return nil
	})
	d.log.Info("metrics and status page", "listen", ln.Addr().String())
	return nil
}
