package pfsync

import (
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
	"time"
)

// Status is pfsync's configuration and counters as the daemon reports them
// under "pfsync" in GET /v1/status. Field names are the JSON `--json`
// prints; keep them stable.
type Status struct {
	SyncDev  string     `json:"syncdev,omitempty"`
	SyncPeer netip.Addr `json:"syncpeer"` // 224.0.0.240 when multicast
	MaxUpd   int        `json:"maxupd"`
	Defer    bool       `json:"defer"`
	Auth     bool       `json:"authenticated"`
	States   int        `json:"states"`

	Sent           uint64            `json:"sent"`
	Received       uint64            `json:"received"`
	StatesSent     uint64            `json:"states_sent"`
	StatesReceived uint64            `json:"states_received"`
	DeletesSent    uint64            `json:"deletes_sent"`
	DeletesRecv    uint64            `json:"deletes_received"`
	StickySent     uint64            `json:"sticky_sent"`
	StickyRecv     uint64            `json:"sticky_received"`
	SendErrors     uint64            `json:"send_errors"`
	InjectErrors   uint64            `json:"inject_errors"`
	Stale          uint64            `json:"stale_updates"`
	NoSync         uint64            `json:"no_sync_skipped"`
	EventOverflows uint64            `json:"event_overflows"`
	ResyncRepairs  uint64            `json:"resync_repairs"` // entries a resync found changed with no event
	Dropped        map[string]uint64 `json:"dropped,omitempty"`

	Bulk             string        `json:"bulk"` // idle, requested, receiving
	BulkRequests     uint64        `json:"bulk_requests"`
	BulkServed       uint64        `json:"bulk_served"`
	BulkDone         uint64        `json:"bulk_done"`
	BulkFailed       uint64        `json:"bulk_failed"`
	LastBulkDuration time.Duration `json:"last_bulk_duration_ns"`
	LastBulkStates   uint64        `json:"last_bulk_states"`
	// LastBulkEnd is when the last bulk update this node requested
	// completed (zero: none yet).
	LastBulkEnd time.Time `json:"last_bulk_end,omitzero"`
	// StickyBindings is the number of sticky-address bindings known (sent
	// or received); StickyErrors counts failed reads of the sticky maps.
	StickyBindings int    `json:"sticky_bindings"`
	StickyErrors   uint64 `json:"sticky_errors"`
	// Defer (Engine.Defer): packets held, released on the peer's ack,
	// after the timeout, early at the limit; acks sent and received.
	Deferred       uint64 `json:"deferred"`
	DeferAcked     uint64 `json:"defer_acked"`
	DeferTimeouts  uint64 `json:"defer_timeouts"`
	DeferOverflows uint64 `json:"defer_overflows"`
	AcksSent       uint64 `json:"acks_sent"`
	AcksReceived   uint64 `json:"acks_received"`
	// SyncLag: the lag of the updates received outside bulk updates.
	SyncLag Lag `json:"sync_lag"`
	// PickupsReplaced: entries our kernel picked up mid-connection that
	// the peer's version replaced.
	PickupsReplaced uint64 `json:"pickups_replaced"`
}

// status builds a Status from the Engine.
func (e *Engine) status() Status {
	st := e.stats
	peer := e.o.SyncPeer
	if !peer.IsValid() {
		peer = Group4
	}
	s := Status{
		SyncDev: e.o.SyncDev, SyncPeer: peer, MaxUpd: e.o.MaxUpd, Auth: e.auth.Enabled(), States: len(e.table),
		Sent: st.MsgsSent, Received: st.MsgsReceived, StatesSent: st.StatesSent, StatesReceived: st.StatesReceived,
		DeletesSent: st.DeletesSent, DeletesRecv: st.DeletesRecv, StickySent: st.StickySent, StickyRecv: st.StickyRecv,
		SendErrors: st.SendErrors, InjectErrors: st.InjectErrors, Stale: st.Stale, NoSync: st.NoSyncSkipped,
		Bulk: e.bulk.String(), BulkRequests: st.BulkRequestsSent, BulkServed: st.BulkRequestsServed,
		BulkDone: st.BulkDone, BulkFailed: st.BulkFailed, LastBulkDuration: st.LastBulkDuration, LastBulkStates: st.LastBulkStates,
		LastBulkEnd: st.LastBulkEnd, StickyBindings: len(e.sticky), StickyErrors: st.StickyErrors,
		ResyncRepairs: st.ResyncRepairs,
		Deferred:      st.Deferred, DeferAcked: st.DeferAcked, DeferTimeouts: st.DeferTimeouts, DeferOverflows: st.DeferOverflows,
		AcksSent: st.AcksSent, AcksReceived: st.AcksReceived,
		SyncLag: st.Lag, PickupsReplaced: st.PickupsReplaced,
	}
	for i, n := range st.Dropped {
		if n != 0 {
			if s.Dropped == nil {
				s.Dropped = map[string]uint64{}
			}
			s.Dropped[Drop(i).String()] = n
		}
	}
	return s
}

// Status reports the Engine's configuration and counters.
func (e *Engine) Status() Status { return e.status() }

// FormatIfconfig prints st as `pfcarp ifconfig pfsync0` shows it: the
// FreeBSD line `pfsync: syncdev: IF syncpeer: ADDR maxupd: N`, then
// pfcarp's counters, one group per line. It returns the write's error.
func FormatIfconfig(w io.Writer, st *Status) error {
	var b strings.Builder
	dev := st.SyncDev
	if dev == "" {
		dev = "none"
	}
	fmt.Fprintf(&b, "pfsync0: flags=%s\n", map[bool]string{true: "UP,RUNNING", false: "UP"}[st.SyncDev != ""])
	fmt.Fprintf(&b, "\tpfsync: syncdev: %s syncpeer: %s maxupd: %d", dev, st.SyncPeer, st.MaxUpd)
	if st.Defer {
		b.WriteString(" defer: on")
	}
	b.WriteString("\n")
	auth := "none"
	if st.Auth {
		auth = "hmac-sha256"
	}
	fmt.Fprintf(&b, "\tauth: %s states: %d sticky bindings: %d\n", auth, st.States, st.StickyBindings)
	fmt.Fprintf(&b, "\tsent: %d messages, %d states, %d deletes, %d sticky; %d send errors\n",
		st.Sent, st.StatesSent, st.DeletesSent, st.StickySent, st.SendErrors)
	fmt.Fprintf(&b, "\treceived: %d messages, %d states, %d deletes, %d sticky; %d inject errors, %d stale\n",
		st.Received, st.StatesReceived, st.DeletesRecv, st.StickyRecv, st.InjectErrors, st.Stale)
	fmt.Fprintf(&b, "\tdropped: %s\n", dropLine(st.Dropped))
	if l := &st.SyncLag; l.Count > 0 {
		fmt.Fprintf(&b, "\tsync lag: %d updates, mean %v, p50 <= %v, p99 <= %v\n", l.Count,
			(l.Sum / time.Duration(l.Count)).Round(time.Microsecond), l.Quantile(0.5), l.Quantile(0.99))
	}
	fmt.Fprintf(&b, "\tbulk update: %s, requests %d, served %d, done %d, failed %d", st.Bulk, st.BulkRequests, st.BulkServed, st.BulkDone, st.BulkFailed)
	if st.BulkDone > 0 {
		fmt.Fprintf(&b, ", last %d states in %v", st.LastBulkStates, st.LastBulkDuration.Round(time.Millisecond))
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func dropLine(m map[string]uint64) string {
	if len(m) == 0 {
		return "0"
	}
	keys := make([]string, 0, len(m))
	var total uint64
	for k, n := range m {
		keys = append(keys, k)
		total += n
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}

// Group4 is pfsync's IPv4 multicast group.
var Group4 = netip.MustParseAddr("224.0.0.240")

// Protocol is pfsync's IP protocol number.
const Protocol = 240
