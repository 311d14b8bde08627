package daemon

import (
	"net/netip"
	"os"
	"time"

	"github.com/pfcarp/pfcarp/carp"
	"github.com/pfcarp/pfcarp/pfsync"
)

// Status is what `pfcarp ifconfig` and `pfcarp lab status` read from a
// running daemon (GET /v1/status). Field names are the JSON the CLI's
// --json prints; keep them stable.
type Status struct {
	Hostname string    `json:"hostname,omitempty"`
	PID      int       `json:"pid"`
	Started  time.Time `json:"started"`
	Config   string    `json:"config"`
	Preempt  bool      `json:"preempt"`
	// Demotion is the node-wide demotion counter (0: not demoted).
	Demotion int          `json:"demotion"`
	CARP     []CARPStatus `json:"carp"`
	// CARPRejects counts advertisements dropped before reaching a group
	// (bad TTL, length, checksum, version, type, unknown vhid), by reason.
	CARPRejects map[string]uint64 `json:"carp_rejects,omitempty"`
	CARPDrops   uint64            `json:"carp_queue_drops"`
	Pfsync      *pfsync.Status    `json:"pfsync,omitempty"`
	LinkWatch   *LinkWatchStatus  `json:"link_watch,omitempty"`
	// Recent are the last transitions, oldest first.
	Recent []GroupTransition `json:"recent_transitions,omitempty"`
}

// GroupTransition is a transition of a named group.
type GroupTransition struct {
	Group string `json:"group"`
	Transition
}

// LinkWatchStatus counts the link watcher's troubles.
type LinkWatchStatus struct {
	Resubscribes uint64 `json:"resubscribes"`
	Errors       uint64 `json:"errors"`
}

// CARPStatus is one VHID group.
type CARPStatus struct {
	Name    string         `json:"name,omitempty"` // carpN, or "" for a vhid on the parent
	Parent  string         `json:"parent"`
	VHID    uint8          `json:"vhid"`
	State   string         `json:"state"`
	AdvBase uint8          `json:"advbase"`
	AdvSkew uint8          `json:"advskew"`           // configured
	Skew    uint8          `json:"advskew_effective"` // advertised now (raised by demotion)
	VIPs    []netip.Prefix `json:"vips"`
	Peer    netip.Addr     `json:"peer,omitzero"`
	Last    *Transition    `json:"last_transition,omitempty"`

	Received    uint64            `json:"received"`
	Sent        uint64            `json:"sent"`
	SendErrors  uint64            `json:"send_errors"`
	Transitions uint64            `json:"transitions"`
	Reannounces uint64            `json:"reannounces"`
	Rejects     map[string]uint64 `json:"rejects,omitempty"`
}

// Transition is a group's most recent state change.
type Transition struct {
	From   string    `json:"from"`
	To     string    `json:"to"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

func rejectMap(s carp.Stats) map[string]uint64 {
	var m map[string]uint64
	for i, n := range s.Rejects {
		if n == 0 {
			continue
		}
		if m == nil {
			m = map[string]uint64{}
		}
		m[carp.Reject(i).String()] = n
	}
	return m
}

// Status reports the node's state (GET /v1/status).
func (d *Daemon) Status() Status {
	dc := d.conf.Load()
	cfg := dc.cfg
	st := Status{Hostname: cfg.Hostname, PID: os.Getpid(), Started: d.started,
		Config: cfg.File, Preempt: cfg.Preempt, CARP: []CARPStatus{}}
	st.Recent = d.recent()
	if d.links != nil {
		st.LinkWatch = &LinkWatchStatus{Resubscribes: d.links.resubscribes.Load(), Errors: d.links.errors.Load()}
	}
	if s := d.syncer(); s != nil {
		ps := s.Status()
		ps.Defer = cfg.Pfsync.Defer
		st.Pfsync = &ps
	}
	if d.runner == nil {
		return st
	}
	d.runner.Do(func(n *carp.Node) {
		st.Demotion = n.Demotion()
		st.CARPRejects = rejectMap(n.Stats())
		for _, g := range n.Groups() {
			c := g.Config()
			s := g.Stats()
			cs := CARPStatus{
				Name: dc.names[groupKey{c.Parent, c.VHID}], Parent: c.Parent, VHID: c.VHID,
				State: g.State().String(), AdvBase: c.AdvBase, AdvSkew: c.AdvSkew, Skew: g.AdvSkew(),
				VIPs: c.VIPs, Received: s.Received, Sent: s.Sent, SendErrors: s.SendErrors,
				Transitions: s.Transitions, Reannounces: s.Reannounces, Rejects: rejectMap(s),
			}
			if c.Peer.IsValid() {
				cs.Peer = c.Peer
			} else if c.Peer6.IsValid() {
				cs.Peer = c.Peer6
			}
			if t := g.LastTransition(); !t.At.IsZero() {
				cs.Last = &Transition{From: t.From.String(), To: t.To.String(), Reason: t.Reason, At: t.At}
			}
			st.CARP = append(st.CARP, cs)
		}
	})
	st.CARPDrops = d.runner.Drops()
	return st
}
