package carp

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"time"

	"github.com/pfcarp/pfcarp/internal/clock"
)

// NodeOptions are a Node's collaborators.
type NodeOptions struct {
	Clock   clock.Clock // required
	Actions Actions     // required
	Sender  Sender      // required
	Logger  *slog.Logger
	// Rand seeds each group's advertisement counter; nil means
	// crypto/rand. Tests pass a fixed reader.
	Rand io.Reader
	// DemoteFactor is the advskew added per unit of demotion for FreeBSD
	// peers (FreeBSD's net.inet.carp.ifdown_demotion_factor and
	// senderr_demotion_factor, both 240 by default); 0 means 240.
	DemoteFactor int
}

// Node is the CARP side of one host: its VHID groups and the node-wide
// demotion counter. When any group's parent fails, or sending keeps
// failing, the whole node is demoted, so that all its groups (and their
// virtual addresses) move to the peer together. Demotion is advertised both
// ways BSD peers understand it: FreeBSD reads a raised advskew (capped at
// 240), OpenBSD the demote byte.
//
// Node is an event-driven core with no goroutines and no I/O of its own; it
// is not safe for concurrent use. Runner drives one from a goroutine.
type Node struct {
	clk          clock.Clock
	act          Actions
	send         Sender
	log          *slog.Logger
	rnd          io.Reader
	demoteFactor int

	groups   []*Group
	demotion int // count of current reasons (parents down, send errors, admin)
	// newMasterAt is when a group of this node last heard a master it had
	// not been hearing (Group.preemptReady).
	newMasterAt time.Time
	pending     []demoteAdj
	stats       Stats // rejects before a packet reaches a group
	rx          Header
}

type demoteAdj struct {
	delta  int
	reason string
}

// NewNode returns a Node with no groups.
func NewNode(o NodeOptions) (*Node, error) {
	if o.Clock == nil || o.Actions == nil || o.Sender == nil {
		return nil, errors.New("carp: NewNode needs a Clock, Actions and a Sender")
	}
	n := &Node{clk: o.Clock, act: o.Actions, send: o.Sender, log: o.Logger, rnd: o.Rand, demoteFactor: o.DemoteFactor}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	if n.rnd == nil {
		n.rnd = rand.Reader
	}
	if n.demoteFactor <= 0 {
		n.demoteFactor = MaxSkew
	}
	return n, nil
}

// AddGroup adds a VHID group in state INIT. It leaves INIT once its parent
// is reported up with SetParentUp.
func (n *Node) AddGroup(cfg Config) (*Group, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if n.Group(cfg.Parent, cfg.VHID) != nil {
		return nil, fmt.Errorf("vhid %d already configured on %q", cfg.VHID, cfg.Parent)
	}
	cfg.VIPs = append([]netip.Prefix(nil), cfg.VIPs...)
	key, truncated := NewKey(cfg.Pass)
	if truncated {
		n.log.Warn("carp passphrase cut to 19 bytes, as BSD ifconfig does", "vhid", cfg.VHID)
	}
	g := &Group{n: n, cfg: cfg}
	var addrs []netip.Addr
	for _, p := range cfg.VIPs {
		addrs = append(addrs, p.Addr())
		if p.Addr().Is4() {
			g.has4 = true
		} else {
			g.has6 = true
		}
	}
	g.auth = NewAuth(key, cfg.VHID, addrs)
	var seed [8]byte
	if _, err := io.ReadFull(n.rnd, seed[:]); err != nil {
		return nil, fmt.Errorf("carp: seeding the counter: %w", err)
	}
	g.counter = binary.BigEndian.Uint64(seed[:])
	g.buf = make([]byte, 0, HeaderLen)
	n.groups = append(n.groups, g)
	return g, nil
}

// Group returns the group with vhid on parent, or nil.
func (n *Node) Group(parent string, vhid uint8) *Group {
	for _, g := range n.groups {
		if g.cfg.VHID == vhid && g.cfg.Parent == parent {
			return g
		}
	}
	return nil
}

// Groups returns the groups in the order they were added.
func (n *Node) Groups() []*Group { return append([]*Group(nil), n.groups...) }

// Demotion returns the node's demotion count.
func (n *Node) Demotion() int { return n.demotion }

func (n *Node) demoteByte() uint8 { return uint8(min(n.demotion, 255)) }

// Stats returns the node's counters: packets rejected before they reached a
// group plus the sum over all groups.
func (n *Node) Stats() Stats {
	s := n.stats
	for _, g := range n.groups {
		s.add(g.stats)
	}
	return s
}

// Deadline returns the earliest time a group needs Tick (zero: none).
func (n *Node) Deadline() time.Time {
	var d time.Time
	for _, g := range n.groups {
		if t := g.Deadline(); !t.IsZero() && (d.IsZero() || t.Before(d)) {
			d = t
		}
	}
	return d
}

// Tick fires every timer that is due.
func (n *Node) Tick() {
	now := n.clk.Now()
	for _, g := range n.groups {
		g.tick(now)
	}
	n.flush()
}

// Receive processes one packet received on parent: it checks TTL, length,
// checksum, version and type, routes it to its VHID and verifies the HMAC.
// Each rejection is counted under its reason.
func (n *Node) Receive(parent string, p *Packet) {
	defer n.flush()
	if p.TTL != TTL {
		n.stats.Rejects[RejectTTL]++
		return
	}
	if err := n.rx.Decode(p.Payload); err != nil {
		n.stats.Rejects[err.(Reject)]++
		return
	}
	g := n.Group(parent, n.rx.VHID)
	// As both kernels, the VHID must have an address of the packet's
	// family on this interface.
	if g == nil || (p.Src.Unmap().Is4() && !g.has4) || (!p.Src.Unmap().Is4() && !g.has6) {
		n.stats.Rejects[RejectVHID]++
		return
	}
	g.receive(&n.rx, p.Src)
}

// SetParentUp reports the parent interface's state (administratively up
// and link up, or not). Down moves its groups to INIT and demotes the node
// once per group; up starts them (INIT -> BACKUP) and lifts the demotion.
func (n *Node) SetParentUp(parent string, up bool) {
	defer n.flush()
	for _, g := range n.groups {
		if g.cfg.Parent != parent {
			continue
		}
		g.parentUp = up
		if !up {
			if !g.suppressed {
				g.suppressed = true
				n.deferDemote(+1, fmt.Sprintf("parent %s of vhid %d down", parent, g.cfg.VHID))
			}
			g.handle(evDown)
			continue
		}
		g.handle(evUp)
		if g.suppressed {
			g.suppressed = false
			n.deferDemote(-1, fmt.Sprintf("parent %s of vhid %d up", parent, g.cfg.VHID))
		}
	}
}

// Demote adjusts the demotion by delta for an administrative reason (as
// `ifconfig -g carp carpdemote N` does); the count never goes below 0.
func (n *Node) Demote(delta int, reason string) {
	n.deferDemote(delta, reason)
	n.flush()
}

// Shutdown takes every group down on purpose: masters bow out (advbase 255
// advskew 255) so their peers take over at once, then all go to INIT.
func (n *Node) Shutdown() {
	defer n.flush()
	for _, g := range n.groups {
		g.stopped = true
		g.handle(evShutdown)
	}
}

func (n *Node) deferDemote(delta int, reason string) {
	n.pending = append(n.pending, demoteAdj{delta, reason})
}

// flush applies demotion changes queued while handling an event, so that
// a group never re-enters its own step function.
func (n *Node) flush() {
	for len(n.pending) > 0 {
		adj := n.pending[0]
		n.pending = n.pending[1:]
		old := n.demotion
		n.demotion = max(0, n.demotion+adj.delta)
		if n.demotion == old {
			continue
		}
		n.log.Info("carp demotion", "old", old, "new", n.demotion, "reason", adj.reason)
		for _, g := range n.groups {
			g.handle(evDemotion)
		}
	}
	n.pending = n.pending[:0]
}
