package carp

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Config is one VHID group, as `ifconfig carpN vhid 1 pass ... advskew 10
// 192.0.2.1/24` configures it.
type Config struct {
	VHID    uint8  // 1..255
	AdvBase uint8  // seconds; 0 allowed (OpenBSD: sub-second intervals)
	AdvSkew uint8  // 0..254; lower wins
	Pass    string // passphrase; ifconfig keeps the first 19 bytes
	VIPs    []netip.Prefix
	// Preempt is net.inet.carp.preempt / carp_preempt: a backup with a
	// better priority takes over from a slower master.
	Preempt bool
	// Parent names the interface the group advertises on (carpdev).
	Parent string
	// Peer and Peer6 are unicast destinations (carppeer); the zero Addr
	// means the multicast group 224.0.0.18 / ff02::12.
	Peer, Peer6 netip.Addr
}

// Validate reports the first problem with c.
func (c *Config) Validate() error {
	if c.VHID == 0 {
		return errors.New("vhid must be 1..255")
	}
	if c.AdvSkew == 255 {
		return errors.New("advskew must be 0..254 (255 is reserved for bowing out)")
	}
	if len(c.VIPs) == 0 {
		return fmt.Errorf("vhid %d: no virtual address", c.VHID)
	}
	for _, p := range c.VIPs {
		a := p.Addr()
		switch {
		case !p.IsValid():
			return fmt.Errorf("vhid %d: invalid virtual address", c.VHID)
		case a.Is4In6():
			return fmt.Errorf("vhid %d: %v: use the IPv4 form", c.VHID, a)
		case a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
			return fmt.Errorf("vhid %d: %v cannot be a virtual address", c.VHID, a)
		}
	}
	if c.Peer.IsValid() && (!c.Peer.Is4() || c.Peer.IsUnspecified()) {
		return fmt.Errorf("vhid %d: peer %v must be an IPv4 address", c.VHID, c.Peer)
	}
	if c.Peer6.IsValid() && (!c.Peer6.Is6() || c.Peer6.Is4In6() || c.Peer6.IsUnspecified()) {
		return fmt.Errorf("vhid %d: peer6 %v must be an IPv6 address", c.VHID, c.Peer6)
	}
	return nil
}

// event is one input to the state machine.
type event uint8

const (
	evUp         event = iota // parent up and running: leave INIT
	evDown                    // parent down or link lost
	evShutdown                // going down on purpose
	evAdTimer                 // master: time to advertise
	evMasterDown              // backup: no advertisement for MasterDown
	evAdvert                  // a valid advertisement for this VHID
	evDemotion                // the node's demotion changed
)

var eventNames = [...]string{"up", "down", "shutdown", "advertisement timer", "master-down timer", "advertisement", "demotion"}

func (e event) String() string { return eventNames[e] }

// Group is the state machine of one VHID. It belongs to a Node and, like
// the Node, is not safe for concurrent use.
type Group struct {
	n    *Node
	cfg  Config
	auth *Auth
	has4 bool
	has6 bool

	state    State
	parentUp bool
	stopped  bool
	// suppressed: this group's parent failure is counted in the node's
	// demotion (BSD sc_suppress).
	suppressed bool

	adAt time.Time // MASTER: next advertisement; zero when not armed
	mdAt time.Time // BACKUP: master-down deadline; zero when not armed

	counter   uint64    // last counter sent; starts random, +1 per packet
	recent    [4]uint64 // counters of the last packets sent (loop check)
	nrecent   int
	sendErrs  int // consecutive send errors (BSD sc_sendad_errors)
	sendOK    int // successes since errors (BSD sc_sendad_success)
	sendDemo  bool
	buf       []byte
	stats     Stats
	rxHdr     Header // the advertisement being processed (evAdvert)
	rxFrom    netip.Addr
	lastTrans Transition
	// announcedAt: when reannounce last ran (MASTER); otherMasterAt: when
	// this MASTER last heard another master (the episode's last sign)
	announcedAt   time.Time
	otherMasterAt time.Time
	// heardFrom (BACKUP): the master whose advertisements we hear; reset
	// by every state change (preemptReady). since: when the group entered
	// its current state.
	heardFrom netip.Addr
	since     time.Time
}

// Sending-error demotion thresholds (CARP_SENDAD_MAX_ERRORS and
// CARP_SENDAD_MIN_SUCCESS in both kernels).
const (
	sendMaxErrors = 3
	sendMinOK     = 3
)

// Config returns the group's configuration. The VIPs slice is shared; do
// not modify it.
func (g *Group) Config() Config { return g.cfg }

// State returns the current state.
func (g *Group) State() State { return g.state }

// Stats returns the group's counters.
func (g *Group) Stats() Stats { return g.stats }

// LastTransition returns the most recent state change (zero if none).
func (g *Group) LastTransition() Transition { return g.lastTrans }

// AdvSkew returns the advskew the group advertises now: the configured
// one, raised by demotion as FreeBSD does (DEMOTE_ADVSKEW: advskew plus
// demotion, capped at 240), never lowered.
func (g *Group) AdvSkew() uint8 {
	d := g.n.demotion
	skew := int(g.cfg.AdvSkew)
	if d == 0 {
		return uint8(skew)
	}
	s := skew + d*g.n.demoteFactor
	if s > MaxSkew {
		s = MaxSkew
	}
	if s < skew {
		s = skew
	}
	return uint8(s)
}

// Deadline returns when the group next needs Tick (zero: no timer armed).
func (g *Group) Deadline() time.Time {
	switch g.state {
	case Master:
		return g.adAt
	case Backup:
		return g.mdAt
	}
	return time.Time{}
}

// handle runs the step function of the current state and applies the
// transition it asks for.
func (g *Group) handle(ev event) {
	var next State
	var reason string
	switch g.state {
	case Init:
		next, reason = g.stepInit(ev)
	case Backup:
		next, reason = g.stepBackup(ev)
	case Master:
		next, reason = g.stepMaster(ev)
	}
	if next != g.state {
		g.changeState(next, reason)
	}
}

func (g *Group) stepInit(ev event) (State, string) {
	switch ev {
	case evUp:
		if g.parentUp && !g.stopped {
			return Backup, "parent " + g.cfg.Parent + " up"
		}
	case evAdvert:
		g.stats.Rejects[RejectState]++
	}
	return Init, ""
}

func (g *Group) stepBackup(ev event) (State, string) {
	switch ev {
	case evDown:
		return Init, "parent " + g.cfg.Parent + " down"
	case evShutdown:
		return Init, "shutdown"
	case evMasterDown:
		return Master, fmt.Sprintf("master down: no advertisement for %v", MasterDown(g.cfg.AdvBase, g.AdvSkew()))
	case evAdvert:
		h := &g.rxHdr
		ours := advTime(g.cfg.AdvBase, g.AdvSkew())
		theirs := advTime(h.AdvBase, h.AdvSkew)
		demote := g.n.demoteByte()
		// Both kernels: preempt a master that advertises more slowly,
		// unless it is less demoted than we are (OpenBSD's demote test;
		// FreeBSD peers send 0 and fold demotion into advskew).
		ready := g.preemptReady(theirs)
		if g.cfg.Preempt && ours < theirs && h.Demote >= demote && ready {
			return Master, fmt.Sprintf("preempting a slower master %v (advbase %d advskew %d)", g.rxFrom, h.AdvBase, h.AdvSkew)
		}
		// OpenBSD: take over from a more demoted master, preempt or not.
		if h.Demote > demote {
			return Master, fmt.Sprintf("master %v is demoted (demote %d > %d)", g.rxFrom, h.Demote, demote)
		}
		// A master bowing out: take over at once.
		if h.AdvBase == 255 && h.AdvSkew == 255 {
			return Master, fmt.Sprintf("master %v bowed out", g.rxFrom)
		}
		// Both kernels: a master advertising so rarely that it would
		// time out anyway counts as down (OpenBSD skips this for
		// advbase 0). The comparison keeps our advskew fraction, as the
		// kernels do (they only replace tv_sec).
		slow := 3*time.Duration(g.cfg.AdvBase)*time.Second + skewUsec(int(g.AdvSkew()))
		if g.cfg.AdvBase != 0 && slow < theirs {
			return Master, fmt.Sprintf("master %v advertises too rarely (advbase %d advskew %d)", g.rxFrom, h.AdvBase, h.AdvSkew)
		}
		g.armMasterDown()
	}
	return Backup, ""
}

// preemptReady records the master being heard and reports whether
// preempting it may happen now: not within half of its advertisement
// interval of any group of this node hearing a master it had not been
// hearing, so from a new master's second advertisement on (BACKUP). A
// master heard for the first time has usually just taken over, and its
// first moments bring a burst of new connections: the clients' SYNs queued
// while nobody answered for the address go out as soon as it announces
// itself. Preempting on its first advertisement would take those
// connections over before pfsync has brought their states here (seen in
// the fault matrix: a restarted daemon preempted within 10 ms of its
// peer's takeover and every connection of that burst timed out). The wait
// is node-wide so that the groups move together: one group whose parent
// was just plugged back hears the master for the first time while another
// has been hearing it all along, and preempting that one at once would
// split the node's VIPs between the nodes for an interval. A master we
// have been hearing that now advertises more slowly (demoted: a FreeBSD
// peer raises its advskew when it loses an interface) is preempted at
// once, as in BSD, unless a new master was just heard or a group that has
// just come up has not heard its master yet. Preemption is never
// urgent: a master is serving, and one interval later its states are here.
func (g *Group) preemptReady(theirs time.Duration) bool {
	now := g.n.clk.Now()
	if g.heardFrom != g.rxFrom {
		g.heardFrom = g.rxFrom
		g.n.newMasterAt = now
	}
	if now.Sub(g.n.newMasterAt) < theirs/2 {
		return false
	}
	// A group that has just come up (its parent plugged back, the daemon
	// started) and not heard its master yet will hear it within an
	// interval, as a new master: wait for it.
	for _, h := range g.n.groups {
		if h.state == Backup && !h.heardFrom.IsValid() && now.Sub(h.since) < MasterDown(h.cfg.AdvBase, h.cfg.AdvSkew) {
			return false
		}
	}
	return true
}

func (g *Group) stepMaster(ev event) (State, string) {
	switch ev {
	case evDown:
		return Init, "parent " + g.cfg.Parent + " down"
	case evShutdown:
		g.advertise(true)
		return Init, "shutdown (bowed out)"
	case evAdTimer:
		g.advertise(false)
		g.armAdvertise()
	case evDemotion:
		// Tell peers at once (FreeBSD carp_send_ad_all, OpenBSD need_ad).
		g.advertise(false)
		g.armAdvertise()
	case evAdvert:
		h := &g.rxHdr
		if h.AdvBase == 255 && h.AdvSkew == 255 {
			return Master, "" // someone bowing out is no reason to yield
		}
		ours := advTime(g.cfg.AdvBase, g.AdvSkew())
		theirs := advTime(h.AdvBase, h.AdvSkew)
		demote := g.n.demoteByte()
		// Both kernels yield to a more frequent or equal advertisement
		// (a tie makes the receiving master yield; there is no address
		// tie-break in CARP); OpenBSD adds: unless the sender is more
		// demoted, and always when the sender is less demoted.
		if (ours >= theirs && h.Demote <= demote) || h.Demote < demote {
			// One last advertisement as we yield: the other master may
			// never have heard this node while both were masters (a
			// healed split brain: whoever advertises first wins), and
			// the neighbours that moved here must be told to move back;
			// a pfcarp master that hears it announces its addresses
			// again (Announcer). To anyone else it is a slower master's
			// advertisement, which changes nothing.
			g.advertise(false)
			return Backup, fmt.Sprintf("more frequent advertisement from %v (advbase %d advskew %d demote %d)", g.rxFrom, h.AdvBase, h.AdvSkew, h.Demote)
		}
		g.reannounce()
	}
	return Master, ""
}

// reannounce tells the segment again that this MASTER holds the addresses
// (see Announcer), at most once per advertisement interval. Adverts from
// another master that follow each other by less than otherMasterGap are
// one episode (a split that lasts, a peer that cannot hear us): its first
// announcement is flagged and logged at info, the rest at debug.
func (g *Group) reannounce() {
	now := g.n.clk.Now()
	interval := AdvInterval(g.cfg.AdvBase, g.AdvSkew())
	first := g.otherMasterAt.IsZero() || now.Sub(g.otherMasterAt) >= otherMasterGap*interval
	g.otherMasterAt = now
	a, ok := g.n.act.(Announcer)
	if !ok || (!first && !g.announcedAt.IsZero() && now.Sub(g.announcedAt) < interval) {
		return
	}
	g.announcedAt = now
	g.stats.Reannounces++
	log := g.n.log.Debug
	if first {
		log = g.n.log.Info
	}
	log("carp: another master advertises for this vhid; announcing the addresses again", "vhid", g.cfg.VHID, "parent", g.cfg.Parent, "from", g.rxFrom, "first", first)
	if err := a.Announce(g.cfg.Parent, g.cfg.VHID, g.cfg.VIPs, first); err != nil {
		g.n.log.Warn("carp: announcing the addresses again", "vhid", g.cfg.VHID, "err", err)
	}
}

// otherMasterGap is how many advertisement intervals without another
// master's advert end an episode: CARP's master-down bound.
const otherMasterGap = 3

// changeState is the one place the state changes. It calls Actions, falls
// back to BACKUP when claiming the addresses fails, arms the timers of the
// new state, and logs old, wanted and new state with the reason.
func (g *Group) changeState(want State, reason string) {
	old := g.state
	now := g.n.clk.Now()
	g.heardFrom, g.since = netip.Addr{}, now
	g.otherMasterAt, g.announcedAt = time.Time{}, time.Time{} // a new state, a new episode
	t := Transition{VHID: g.cfg.VHID, Parent: g.cfg.Parent, From: old, To: want, Reason: reason, At: now}
	got := want
	if want == Master {
		if err := g.n.act.BecomeMaster(t, g.cfg.VIPs); err != nil {
			got = Backup
			t.To = Backup
			t.Reason = fmt.Sprintf("%s; becoming master failed: %v", reason, err)
			if err := g.n.act.Release(t, g.cfg.VIPs); err != nil {
				g.n.log.Error("carp release failed", "vhid", g.cfg.VHID, "err", err)
			}
		}
	} else if err := g.n.act.Release(t, g.cfg.VIPs); err != nil {
		g.n.log.Error("carp release failed", "vhid", g.cfg.VHID, "err", err)
	}
	g.state = got
	g.lastTrans = t
	g.stats.Transitions++
	g.n.log.Info("carp state change", "vhid", g.cfg.VHID, "parent", g.cfg.Parent,
		"old", old.String(), "want", want.String(), "new", got.String(), "reason", t.Reason)
	g.adAt, g.mdAt = time.Time{}, time.Time{}
	switch got {
	case Master:
		// As carp_master_down: advertise at once, then on the interval.
		g.advertise(false)
		g.armAdvertise()
	case Backup:
		g.armMasterDown()
	}
}

func (g *Group) armAdvertise() {
	g.adAt = g.n.clk.Now().Add(AdvInterval(g.cfg.AdvBase, g.AdvSkew()))
}

// armMasterDown restarts the master-down timer with the configured advskew,
// not the demoted one: every BSD carp_setrun arms it with sc_advskew
// (demotion only changes what is advertised), so a demoted backup still
// takes over within 3*advbase + advskew/256 s.
func (g *Group) armMasterDown() {
	g.mdAt = g.n.clk.Now().Add(MasterDown(g.cfg.AdvBase, g.cfg.AdvSkew))
}

// advertise sends one advertisement per address family the group has.
// bowOut sends advbase 255 advskew 255 instead of the group's own values.
func (g *Group) advertise(bowOut bool) {
	h := Header{
		Version: Version, Type: TypeAdvert, VHID: g.cfg.VHID,
		AdvBase: g.cfg.AdvBase, AdvSkew: g.AdvSkew(),
		AuthLen: AuthLen, Demote: g.n.demoteByte(),
	}
	if bowOut {
		h.AdvBase, h.AdvSkew = 255, 255
	}
	if g.has4 {
		dst := Group4
		if g.cfg.Peer.IsValid() {
			dst = g.cfg.Peer
		}
		g.sendOne(&h, dst)
	}
	if g.has6 {
		dst := Group6
		if g.cfg.Peer6.IsValid() {
			dst = g.cfg.Peer6
		}
		g.sendOne(&h, dst)
	}
}

func (g *Group) sendOne(h *Header, dst netip.Addr) {
	// FreeBSD's counter: random at first, then +1 per packet. Receivers
	// never require it to grow (OpenBSD sends a constant).
	g.counter++
	h.Counter = g.counter
	h.HMAC = g.auth.Sign(h.Counter)
	g.recent[g.nrecent%len(g.recent)] = h.Counter
	g.nrecent++
	g.buf = h.AppendTo(g.buf[:0])
	err := g.n.send.Send(g.cfg.Parent, dst, g.buf)
	g.noteSend(err, dst)
}

// noteSend applies the kernels' send-error demotion: after 3 consecutive
// failures the node is demoted; after 3 successes it is restored.
func (g *Group) noteSend(err error, dst netip.Addr) {
	if err != nil {
		g.stats.SendErrors++
		g.n.log.Warn("carp send failed", "vhid", g.cfg.VHID, "dst", dst, "err", err)
		g.sendErrs++
		g.sendOK = 0
		if g.sendErrs == sendMaxErrors && !g.sendDemo {
			g.sendDemo = true
			g.n.deferDemote(+1, fmt.Sprintf("vhid %d: %d send errors", g.cfg.VHID, sendMaxErrors))
		}
		return
	}
	g.stats.Sent++
	if g.sendErrs >= sendMaxErrors {
		g.sendOK++
		if g.sendOK >= sendMinOK {
			g.sendErrs, g.sendOK = 0, 0
			if g.sendDemo {
				g.sendDemo = false
				g.n.deferDemote(-1, fmt.Sprintf("vhid %d: sending works again", g.cfg.VHID))
			}
		}
		return
	}
	g.sendErrs = 0
}

// receive handles an advertisement already decoded and routed to this VHID.
func (g *Group) receive(h *Header, src netip.Addr) {
	if !g.auth.Verify(h.Counter, &h.HMAC) {
		g.stats.Rejects[RejectAuth]++
		return
	}
	for i := 0; i < min(g.nrecent, len(g.recent)); i++ {
		if g.recent[i] == h.Counter {
			g.stats.Rejects[RejectOwn]++
			return
		}
	}
	g.stats.Received++
	g.rxHdr = *h
	g.rxFrom = src
	g.handle(evAdvert)
}

// tick fires the timer that is due at now, if any.
func (g *Group) tick(now time.Time) {
	switch {
	case g.state == Master && !g.adAt.IsZero() && !now.Before(g.adAt):
		g.handle(evAdTimer)
	case g.state == Backup && !g.mdAt.IsZero() && !now.Before(g.mdAt):
		g.mdAt = time.Time{}
		g.handle(evMasterDown)
	}
}
