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
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pfcarp/pfcarp/pfsync"
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
	"hostClass": func(s string) string {
		switch s {
		case "up":
			return "master"
		case "down":
			return "down"
		}
		return "init"
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
	"syncHealth": syncHealth,
	"nodeView":   func(s Status, role string) nodeView { return nodeView{s, role} },
	"percent":    func(f float64) string { return fmt.Sprintf("%.1f%%", f) },
	"dur":        roundDur,
	"anyLabel": func(rs []PFRuleStat) bool {
		for _, r := range rs {
			if r.Label != "" {
				return true
			}
		}
		return false
	},
	"lag": lagText,
}).ParseFS(pageFS, "status.html"))

// nodeView is one node's section of the page: its status and whether it
// is the node serving the page or its peer.
type nodeView struct {
	Status
	Role string
}

// syncHealth sums up pfsync's state for the page: "healthy" when no bulk
// update is pending and nothing failed since the daemon started, else what
// is wrong.
func syncHealth(p *pfsync.Status) string {
	var bad []string
	switch {
	case p.Bulk != "idle":
		bad = append(bad, "bulk update "+p.Bulk)
	case p.BulkRequests > 0 && p.BulkDone == 0:
		bad = append(bad, "no bulk update completed")
	}
	for _, c := range []struct {
		n    uint64
		what string
	}{
		{p.BulkFailed, "failed bulk updates"},
		{p.SendErrors, "send errors"},
		{p.InjectErrors, "states the kernel refused"},
		{p.EventOverflows, "event overflows"},
	} {
		if c.n > 0 {
			bad = append(bad, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	if len(bad) == 0 {
		return "healthy (no errors since start, no bulk update pending)"
	}
	return "degraded: " + strings.Join(bad, ", ")
}

// roundDur keeps about four significant digits of d, as a person reads a
// duration (14.99ms, not 14.990219ms).
func roundDur(d time.Duration) string {
	for _, unit := range []time.Duration{time.Second, time.Millisecond, time.Microsecond} {
		if d >= unit {
			return d.Round(unit / 100).String()
		}
	}
	return d.String()
}

// lagText prints the sync lag histogram as its count, median, 99th
// percentile (the upper bounds of their buckets, see pfsync.Lag.Quantile)
// and mean.
func lagText(l pfsync.Lag) string {
	if l.Count == 0 {
		return "no updates received outside bulk updates yet"
	}
	mean := l.Sum / time.Duration(l.Count)
	return fmt.Sprintf("%d updates: median ≤ %v, 99th percentile ≤ %v, mean %s", l.Count, l.Quantile(0.5), l.Quantile(0.99), roundDur(mean))
}

// PageData is what the page shows: this node, its peer (when
// pfcarp_peer_status names it) and pf's counters. /status.json serves it
// without the peer.
type PageData struct {
	Self    Status   `json:"self"`
	Peer    *Status  `json:"peer,omitempty"`
	PeerErr string   `json:"peer_error,omitempty"`
	PF      *PFStats `json:"pf,omitempty"`
	// Relayd is relayd's pools when it runs here (relayd_enable).
	Relayd *RelaydStatus `json:"relayd,omitempty"`
	At     time.Time     `json:"at"`
	// Refresh is the page's reload interval in seconds.
	Refresh int `json:"-"`
}

const pageRefresh = 2 // seconds

// pageData gathers what the page shows; withPeer adds the peer's own
// state, read from its /status.json. /status.json itself never asks the
// peer: two nodes naming each other in pfcarp_peer_status would otherwise
// ask each other in a loop until their timeouts, and this node's JSON
// would wait on a peer that is down.
func (d *Daemon) pageData(ctx context.Context, withPeer bool) PageData {
	pd := PageData{Self: d.Status(), At: time.Now(), Refresh: pageRefresh}
	if d.config().PF.Enable {
		if pf, err := d.sys.PFStats(); err == nil {
			pd.PF = pf
		}
	}
	if rs, ok := d.RelaydStatus(); ok {
		pd.Relayd = &rs
	}
	if peer := d.config().PeerStatus; withPeer && peer.IsValid() {
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
	defer func() { _ = resp.Body.Close() }() // decoded below: a close error loses nothing
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
	mux.HandleFunc("GET /status.json", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, d.pageData(r.Context(), false)) })
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		if err := pageTmpl.Execute(w, d.pageData(r.Context(), true)); err != nil {
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
