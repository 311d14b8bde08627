package daemon

import (
	"runtime"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/pfcarp/pfcarp/internal/version"
	"github.com/pfcarp/pfcarp/pfsync"
)

// The daemon's Prometheus metrics. They are read at scrape time from the
// same state GET /v1/status reports (the CARP node, pfsync's counters) and
// from the kernel (pf's rule counters, the conntrack table), so nothing is
// counted twice and a metric cannot drift from what `pfcarp ifconfig` and
// `pfctl -s` show. Names and units follow Prometheus' conventions:
// counters end in _total, durations are in seconds, an enumerated state is
// one series per state with value 1 for the current one. docs/metrics.md is
// generated from metricDescs (a test fails when it drifts).

// metricDesc is one metric's name, help and variable labels.
type metricDesc struct {
	name, help string
	labels     []string
	counter    bool
	histogram  bool
}

var groupLabels = []string{"interface", "vhid", "group"}

var relaydLabels = []string{"table", "port", "host"}

// metricDescs lists every metric the daemon's collector exports.
var metricDescs = []metricDesc{
	{"pfcarp_build_info", "Build of the running pfcarp: version and Go version as labels, value 1.", []string{"version", "goversion"}, false, false},
	{"pfcarp_carp_state", "CARP state of a VHID group: 1 for the current state (init, backup, master), 0 for the others.", append(groupLabels, "state"), false, false},
	{"pfcarp_carp_transitions_total", "CARP state changes of a group.", groupLabels, true, false},
	{"pfcarp_carp_reannounces_total", "Times a MASTER announced its addresses again (gratuitous ARP / NA) on hearing another master.", groupLabels, true, false},
	{"pfcarp_carp_adverts_sent_total", "CARP advertisements sent by a group.", groupLabels, true, false},
	{"pfcarp_carp_adverts_received_total", "Valid CARP advertisements a group received.", groupLabels, true, false},
	{"pfcarp_carp_advert_send_errors_total", "CARP advertisements a group failed to send.", groupLabels, true, false},
	{"pfcarp_carp_adverts_rejected_total", "CARP advertisements rejected, by reason; interface and vhid are empty for packets rejected before reaching a group (bad ttl, length, checksum, version, type, unknown vhid).", append(groupLabels, "reason"), true, false},
	{"pfcarp_carp_advskew", "advskew a group advertises now (the configured one raised by demotion).", groupLabels, false, false},
	{"pfcarp_carp_advbase_seconds", "advbase of a group.", groupLabels, false, false},
	{"pfcarp_carp_demotion", "The node's CARP demotion counter (0: not demoted).", nil, false, false},
	{"pfcarp_carp_queue_drops_total", "Received CARP packets dropped because the CARP loop was behind.", nil, true, false},
	{"pfcarp_pfsync_messages_sent_total", "pfsync messages sent.", nil, true, false},
	{"pfcarp_pfsync_messages_received_total", "pfsync messages received and accepted.", nil, true, false},
	{"pfcarp_pfsync_states_sent_total", "State updates sent.", nil, true, false},
	{"pfcarp_pfsync_states_received_total", "State updates received.", nil, true, false},
	{"pfcarp_pfsync_deletes_sent_total", "State deletions sent.", nil, true, false},
	{"pfcarp_pfsync_deletes_received_total", "State deletions received.", nil, true, false},
	{"pfcarp_pfsync_sticky_sent_total", "Sticky-address bindings sent.", nil, true, false},
	{"pfcarp_pfsync_sticky_received_total", "Sticky-address bindings received.", nil, true, false},
	{"pfcarp_pfsync_send_errors_total", "pfsync messages that failed to send.", nil, true, false},
	{"pfcarp_pfsync_inject_errors_total", "Received states the kernel refused.", nil, true, false},
	{"pfcarp_pfsync_stale_updates_total", "Received updates older than the state held.", nil, true, false},
	{"pfcarp_pfsync_event_overflows_total", "Conntrack event socket overruns (each followed by a resync).", nil, true, false},
	{"pfcarp_pfsync_resync_repairs_total", "States a periodic resync found changed without an event.", nil, true, false},
	{"pfcarp_pfsync_dropped_total", "Received pfsync messages dropped, by reason.", []string{"reason"}, true, false},
	{"pfcarp_pfsync_states", "States pfsync tracks.", nil, false, false},
	{"pfcarp_pfsync_sticky_bindings", "Sticky-address bindings pfsync knows.", nil, false, false},
	{"pfcarp_pfsync_bulk_requests_total", "Bulk updates this node requested.", nil, true, false},
	{"pfcarp_pfsync_bulk_served_total", "Bulk updates this node served to its peer.", nil, true, false},
	{"pfcarp_pfsync_bulk_updates_total", "Bulk updates this node requested that ended, by result (done, failed).", []string{"result"}, true, false},
	{"pfcarp_pfsync_last_bulk_duration_seconds", "Duration of the last bulk update this node received.", nil, false, false},
	{"pfcarp_pfsync_last_bulk_states", "States in the last bulk update this node received.", nil, false, false},
	{"pfcarp_pfsync_sync_lag_seconds", "Sync lag of the state updates received outside bulk updates: from the peer taking in the conntrack event (its clock) to the state written into this node's kernel (ours); as exact as the two clocks agree.", nil, false, true},
	{"pfcarp_pf_enabled", "1 when pf's ruleset is loaded and enabled.", nil, false, false},
	{"pfcarp_pf_rule_packets_total", "Packets a pf rule decided (matched), with the rule's kind, number and label.", []string{"kind", "rule", "label"}, true, false},
	{"pfcarp_pf_rule_bytes_total", "Bytes of the packets a pf rule decided.", []string{"kind", "rule", "label"}, true, false},
	{"pfcarp_pf_rule_evaluations_total", "Packets that reached a pf rule.", []string{"kind", "rule", "label"}, true, false},
	{"pfcarp_pf_states", "Entries in the kernel's connection tracking table.", nil, false, false},
	{"pfcarp_pf_table_entries", "Entries of a pf table as pfctl -T show lists them, by anchor (empty: the main ruleset) and table; a table whose IPv4 or IPv6 part holds more than 50,000 address ranges is not counted (reading it would take seconds) and has no series.", []string{"anchor", "table"}, false, false},
	{"pfcarp_relayd_host_state", "relayd host state as last checked: 1 for the current state (up, down, unknown), 0 for the others; table and port are the table as a forward line uses it.", append(relaydLabels, "state"), false, false},
	{"pfcarp_relayd_host_checks_total", "relayd checks run against a host.", relaydLabels, true, false},
	{"pfcarp_relayd_host_transitions_total", "relayd host state changes, by the state entered (up, down).", append(relaydLabels, "to"), true, false},
	{"pfcarp_relayd_host_check_duration_seconds", "Duration of relayd's checks of a host (up to its timeout).", relaydLabels, false, true},
	{"pfcarp_relayd_syncs_total", "Syncs of relayd's anchors (relayd/NAME) run after host state changes, commands and reloads.", nil, true, false},
	{"pfcarp_link_watch_resubscribes_total", "Times the link watcher subscribed again after its subscription ended.", nil, true, false},
	{"pfcarp_link_watch_errors_total", "Errors reported by the link watcher's subscription.", nil, true, false},
}

// collector is the daemon's prometheus.Collector.
type collector struct {
	d     *Daemon
	descs map[string]*prometheus.Desc
	types map[string]prometheus.ValueType
}

func newCollector(d *Daemon) *collector {
	c := &collector{d: d, descs: map[string]*prometheus.Desc{}, types: map[string]prometheus.ValueType{}}
	for _, m := range metricDescs {
		c.descs[m.name] = prometheus.NewDesc(m.name, m.help, m.labels, nil)
		c.types[m.name] = prometheus.GaugeValue
		if m.counter {
			c.types[m.name] = prometheus.CounterValue
		}
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *collector) emit(ch chan<- prometheus.Metric, name string, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(c.descs[name], c.types[name], v, labels...)
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.d.Status()
	c.emit(ch, "pfcarp_build_info", 1, version.String(), runtime.Version())
	for reason, n := range st.CARPRejects {
		c.emit(ch, "pfcarp_carp_adverts_rejected_total", float64(n), "", "", "", reason)
	}
	if c.d.runner != nil {
		c.emit(ch, "pfcarp_carp_demotion", float64(st.Demotion))
		c.emit(ch, "pfcarp_carp_queue_drops_total", float64(st.CARPDrops))
	}
	for _, g := range st.CARP {
		l := []string{g.Parent, strconv.Itoa(int(g.VHID)), g.Name}
		for _, s := range []string{"INIT", "BACKUP", "MASTER"} {
			v := 0.0
			if g.State == s {
				v = 1
			}
			c.emit(ch, "pfcarp_carp_state", v, append(l, strings.ToLower(s))...)
		}
		c.emit(ch, "pfcarp_carp_transitions_total", float64(g.Transitions), l...)
		c.emit(ch, "pfcarp_carp_adverts_sent_total", float64(g.Sent), l...)
		c.emit(ch, "pfcarp_carp_reannounces_total", float64(g.Reannounces), l...)
		c.emit(ch, "pfcarp_carp_adverts_received_total", float64(g.Received), l...)
		c.emit(ch, "pfcarp_carp_advert_send_errors_total", float64(g.SendErrors), l...)
		c.emit(ch, "pfcarp_carp_advskew", float64(g.Skew), l...)
		c.emit(ch, "pfcarp_carp_advbase_seconds", float64(g.AdvBase), l...)
		for reason, n := range g.Rejects {
			c.emit(ch, "pfcarp_carp_adverts_rejected_total", float64(n), append(l, reason)...)
		}
	}
	if p := st.Pfsync; p != nil {
		for name, v := range map[string]uint64{
			"pfcarp_pfsync_messages_sent_total": p.Sent, "pfcarp_pfsync_messages_received_total": p.Received,
			"pfcarp_pfsync_states_sent_total": p.StatesSent, "pfcarp_pfsync_states_received_total": p.StatesReceived,
			"pfcarp_pfsync_deletes_sent_total": p.DeletesSent, "pfcarp_pfsync_deletes_received_total": p.DeletesRecv,
			"pfcarp_pfsync_sticky_sent_total": p.StickySent, "pfcarp_pfsync_sticky_received_total": p.StickyRecv,
			"pfcarp_pfsync_send_errors_total": p.SendErrors, "pfcarp_pfsync_inject_errors_total": p.InjectErrors,
			"pfcarp_pfsync_stale_updates_total": p.Stale, "pfcarp_pfsync_event_overflows_total": p.EventOverflows,
			"pfcarp_pfsync_resync_repairs_total": p.ResyncRepairs,
			"pfcarp_pfsync_bulk_requests_total":  p.BulkRequests, "pfcarp_pfsync_bulk_served_total": p.BulkServed,
			"pfcarp_pfsync_last_bulk_states": p.LastBulkStates,
		} {
			c.emit(ch, name, float64(v))
		}
		for reason, n := range p.Dropped {
			c.emit(ch, "pfcarp_pfsync_dropped_total", float64(n), reason)
		}
		c.emit(ch, "pfcarp_pfsync_bulk_updates_total", float64(p.BulkDone), "done")
		c.emit(ch, "pfcarp_pfsync_bulk_updates_total", float64(p.BulkFailed), "failed")
		c.emit(ch, "pfcarp_pfsync_states", float64(p.States))
		c.emit(ch, "pfcarp_pfsync_sticky_bindings", float64(p.StickyBindings))
		c.emit(ch, "pfcarp_pfsync_last_bulk_duration_seconds", p.LastBulkDuration.Seconds())
		buckets := make(map[float64]uint64, len(pfsync.LagBounds))
		var cum uint64
		for i, b := range pfsync.LagBounds {
			cum += p.SyncLag.Counts[i]
			buckets[b.Seconds()] = cum
		}
		ch <- prometheus.MustNewConstHistogram(c.descs["pfcarp_pfsync_sync_lag_seconds"], p.SyncLag.Count, p.SyncLag.Sum.Seconds(), buckets)
	}
	if r := c.d.relayd.Load(); r != nil {
		c.relaydMetrics(ch, r)
	}
	if st.LinkWatch != nil {
		c.emit(ch, "pfcarp_link_watch_resubscribes_total", float64(st.LinkWatch.Resubscribes))
		c.emit(ch, "pfcarp_link_watch_errors_total", float64(st.LinkWatch.Errors))
	}
	if c.d.config().PF.Enable {
		pf, err := c.d.sys.PFStats()
		if err != nil {
			c.d.log.Debug("metrics: reading pf's counters", "err", err)
		} else {
			v := 0.0
			if pf.Enabled {
				v = 1
			}
			c.emit(ch, "pfcarp_pf_enabled", v)
			for _, r := range pf.Rules {
				l := []string{r.Kind, strconv.Itoa(r.Nr), r.Label}
				c.emit(ch, "pfcarp_pf_rule_packets_total", float64(r.Packets), l...)
				c.emit(ch, "pfcarp_pf_rule_bytes_total", float64(r.Bytes), l...)
				c.emit(ch, "pfcarp_pf_rule_evaluations_total", float64(r.Evaluations), l...)
			}
			if pf.StatesOK {
				c.emit(ch, "pfcarp_pf_states", float64(pf.States))
			}
			for _, tb := range pf.Tables {
				if tb.Entries < 0 {
					c.d.log.Debug("metrics: pf table too large to count", "anchor", tb.Anchor, "table", tb.Name)
					continue
				}
				c.emit(ch, "pfcarp_pf_table_entries", float64(tb.Entries), tb.Anchor, tb.Name)
			}
		}
	}
}

// relaydMetrics emits relayd's host metrics.
func (c *collector) relaydMetrics(ch chan<- prometheus.Metric, r *relaydRun) {
	hosts, syncs := r.metrics()
	c.emit(ch, "pfcarp_relayd_syncs_total", float64(syncs))
	for _, h := range hosts {
		l := []string{h.table, h.port, h.host}
		for _, s := range []string{"up", "down", "unknown"} {
			v := 0.0
			if h.state == s {
				v = 1
			}
			c.emit(ch, "pfcarp_relayd_host_state", v, append(l, s)...)
		}
		c.emit(ch, "pfcarp_relayd_host_checks_total", float64(h.checks), l...)
		c.emit(ch, "pfcarp_relayd_host_transitions_total", float64(h.ups), append(l, "up")...)
		c.emit(ch, "pfcarp_relayd_host_transitions_total", float64(h.downs), append(l, "down")...)
		buckets := make(map[float64]uint64, len(relaydCheckBounds))
		var cum uint64
		for i, b := range relaydCheckBounds {
			if i < len(h.durHist) {
				cum += h.durHist[i]
			}
			buckets[b.Seconds()] = cum
		}
		ch <- prometheus.MustNewConstHistogram(c.descs["pfcarp_relayd_host_check_duration_seconds"], h.checks, h.durSum.Seconds(), buckets, l...)
	}
}

// registry returns the registry the metrics listener serves: the daemon's
// collector plus Go's and the process's.
func (d *Daemon) registry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(d), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// MetricDoc documents one metric (docs/metrics.md).
type MetricDoc struct {
	Name, Help string
	Labels     []string
	Counter    bool
	Histogram  bool
}

// MetricDocs lists every metric of the daemon's collector.
func MetricDocs() []MetricDoc {
	out := make([]MetricDoc, len(metricDescs))
	for i, m := range metricDescs {
		out[i] = MetricDoc{Name: m.name, Help: m.help, Labels: m.labels, Counter: m.counter, Histogram: m.histogram}
	}
	return out
}
