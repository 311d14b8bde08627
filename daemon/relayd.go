package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/pfcarp/pfcarp/carp"
	"github.com/pfcarp/pfcarp/config"
	"github.com/pfcarp/pfcarp/internal/clock"
	"github.com/pfcarp/pfcarp/netdb"
	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/pfconf"
	"github.com/pfcarp/pfcarp/pfload"
	"github.com/pfcarp/pfcarp/relayd"
)

// relayd in the daemon (relayd_enable="YES"): the redirection part of
// OpenBSD's relayd(8) as one more component of the node. The Checker
// (package relayd) checks the hosts on the daemon's clock; every state
// change asks the sync loop for a Sync of the anchors relayd/NAME, as
// relayd's hce tells its pfe (hce.c hce_notify_done, pfe.c pfe_sync).
// The sync loop is one goroutine, so two syncs never run at once and the
// changes that arrive during one are applied together by the next.
// pfe_sync's demotion of the tables' "demote" groups and pfe_filter.c's
// kill_srcnodes (sticky bindings to the hosts that went down) follow each
// sync.

// relaydGroup is the only interface group CARP groups are in here: the
// one every carp interface belongs to on the BSDs, whose demotion counter
// (ifconfig -g carp carpdemote) is the node's.
const relaydGroup = "carp"

// hostKey names a host across reloads (host IDs are renumbered): the
// table instance (name and port, as relayd's table_inherit names it) and
// the host as written.
type hostKey struct {
	table string
	port  uint16
	host  string
}

// hostRec is what the daemon keeps of one host.
type hostRec struct {
	key     hostKey
	addr    netip.Addr
	st      relayd.Status
	seen    bool // the running Checker reported a known state
	ups     uint64
	downs   uint64
	checks  uint64
	durSum  time.Duration
	lastDur time.Duration
	durHist []uint64 // checks by relaydCheckBounds (not cumulative), +Inf last
	wasUp   bool     // up in the last sync
	tableID int
}

// relaydRun is relayd running in the daemon. mu guards every field but
// in (the sync loop's) and wg.
type relaydRun struct {
	d        *Daemon
	kick     chan struct{}
	wg       sync.WaitGroup
	stopLoop context.CancelFunc

	mu      sync.Mutex
	file    string
	cfg     *relayd.Config
	checker *relayd.Checker
	gen     int // the running Checker's generation
	hosts   map[int]*hostRec
	hostOff map[hostKey]bool
	rdrOff  map[string]bool
	demoted map[hostKey]bool // table instances (host "") holding a demotion
	forget  bool
	pending []chan error
	lastErr error
	syncs   uint64

	in relayd.Installer // only the sync loop touches it
}

// readRelayd parses the relayd.conf at path and checks what the daemon
// needs before anything changes: numeric host addresses, demote groups it
// has, and anchor rules that compile (every host up).
func (d *Daemon) readRelayd(path string, host netdb.Host) (*relayd.Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("relayd: %w", err)
	}
	cfg, err := relayd.Parse(path, src, os.ReadFile)
	if err != nil {
		return nil, fmt.Errorf("relayd: %w", err)
	}
	if _, err := relayd.NewChecker(cfg, d.clk, relayd.Options{}); err != nil {
		return nil, fmt.Errorf("relayd: %w", err)
	}
	all := map[int]bool{}
	for _, t := range cfg.Instances {
		for _, h := range t.Hosts {
			all[h.ID] = true
		}
		if t.Demote == "" {
			continue
		}
		if t.Demote != relaydGroup {
			return nil, fmt.Errorf("relayd: %s: table %s: demote %s: no such interface group: the CARP groups of this node are all in group %q, whose demotion is the node's", tablePos(cfg, t), t.Name, t.Demote, relaydGroup)
		}
		if d.runner == nil {
			return nil, fmt.Errorf("relayd: %s: table %s: demote %s: this node runs no CARP group to demote", tablePos(cfg, t), t.Name, t.Demote)
		}
	}
	for _, rd := range cfg.Redirects {
		text, err := relayd.AnchorRules(rd, all, relayd.RuleOptions{NoStateTimeout: true})
		if err != nil {
			return nil, fmt.Errorf("relayd: %w", err)
		}
		if _, err := relayd.CompileRules(relayd.AnchorPath(rd.Name), text, host); err != nil {
			return nil, fmt.Errorf("relayd: %s: redirection %s: %w", rd.Pos, rd.Name, err)
		}
	}
	return cfg, nil
}

// tablePos is where t's demote option was written (its forward line).
func tablePos(cfg *relayd.Config, t *relayd.Table) relayd.Pos {
	for _, rd := range cfg.Redirects {
		for _, f := range []*relayd.Forward{rd.Forward, rd.Backup} {
			if f != nil && f.Instance == t {
				return f.Pos
			}
		}
	}
	return relayd.Pos{File: cfg.Instances[0].Hosts[0].Pos.File}
}

// hasRelaydAnchor reports whether rs's main ruleset calls "relayd/*" (as
// anchor or rdr-anchor), where relayd puts its rules.
func hasRelaydAnchor(rs *pfload.Ruleset) bool {
	if rs == nil || rs.Rules == nil || rs.Rules.Main == nil {
		return false
	}
	m := rs.Rules.Main
	for _, rules := range [][]*pfconf.Rule{m.Filter, m.RDR} {
		for _, r := range rules {
			if r.AnchorCall == relayd.AnchorRoot+"/*" {
				return true
			}
		}
	}
	return false
}

// startRelayd starts relayd as cfg configures it: the relayd.conf read
// and checked, the Checker's first round now, the anchors synced.
func (d *Daemon) startRelayd(cfg *config.Node) error {
	host := cfg.Host(netdb.System())
	rc, err := d.readRelayd(cfg.Relayd.Conf, host)
	if err != nil {
		return err
	}
	r := &relaydRun{d: d, kick: make(chan struct{}, 1), file: cfg.Relayd.Conf, hosts: map[int]*hostRec{},
		hostOff: map[hostKey]bool{}, rdrOff: map[string]bool{}, demoted: map[hostKey]bool{}}
	r.in = relayd.Installer{Loader: d.sys, Host: host}
	ctx, cancel := context.WithCancel(context.Background())
	r.wg.Add(1)
	go func() { defer r.wg.Done(); r.loop(ctx) }()
	r.stopLoop = cancel
	if err := r.swap(rc, cfg.Relayd.Conf); err != nil {
		return errors.Join(err, r.stop())
	}
	d.relayd.Store(r)
	d.log.Info("relayd running", "config", cfg.Relayd.Conf, "redirections", len(rc.Redirects), "tables", len(rc.Instances))
	return nil
}

// swap puts rc in force: the old Checker stops, hosts that stay keep their
// state (by table, port and name) until the new Checker has checked them,
// the new Checker starts, and the anchors are synced before swap returns.
func (r *relaydRun) swap(rc *relayd.Config, file string) error {
	r.mu.Lock()
	old := r.checker
	r.gen++
	gen := r.gen
	r.mu.Unlock()
	if old != nil {
		old.Stop()
	}
	ch, err := relayd.NewChecker(rc, r.d.clk, relayd.Options{
		OnStatus: func(s relayd.Status) { r.onStatus(gen, s) },
		Probe:    r.probe(gen),
	})
	if err != nil {
		return fmt.Errorf("relayd: %w", err)
	}
	r.mu.Lock()
	byKey := map[hostKey]*hostRec{}
	for _, h := range r.hosts {
		byKey[h.key] = h
	}
	hosts := map[int]*hostRec{}
	keep := map[hostKey]bool{}
	for _, t := range rc.Instances {
		tk := hostKey{table: t.Name, port: t.Port}
		keep[tk] = true
		for _, h := range t.Hosts {
			k := hostKey{t.Name, t.Port, h.Name}
			n := &hostRec{key: k, addr: h.Addr, tableID: t.ID,
				st: relayd.Status{Table: t.Name, TableID: t.ID, Port: t.Port, HostID: h.ID, Host: h.Name}}
			if o := byKey[k]; o != nil {
				n.st.State, n.st.CheckCount, n.st.UpCount = o.st.State, o.st.CheckCount, o.st.UpCount
				n.ups, n.downs, n.checks, n.durSum, n.lastDur, n.wasUp = o.ups, o.downs, o.checks, o.durSum, o.lastDur, o.wasUp
				n.durHist = o.durHist
			}
			hosts[h.ID] = n
		}
	}
	var lift []hostKey
	for k := range r.demoted {
		if !keep[k] {
			lift = append(lift, k)
			delete(r.demoted, k)
		}
	}
	r.hosts, r.cfg, r.checker, r.file = hosts, rc, ch, file
	r.mu.Unlock()
	for _, k := range lift {
		r.demote(-1, fmt.Sprintf("relayd: table %s removed by a reload", k.table))
	}
	ch.Start()
	return r.syncWait(false)
}

// stop ends the Checker and the sync loop, then empties the anchors of
// every redirection (what relayd's flush_rulesets does at its exit).
func (r *relaydRun) stop() error {
	r.mu.Lock()
	ch := r.checker
	r.mu.Unlock()
	if ch != nil {
		ch.Stop()
	}
	r.stopLoop()
	r.wg.Wait()
	r.mu.Lock()
	cfg := r.cfg
	held := len(r.demoted)
	clear(r.demoted)
	r.mu.Unlock()
	for range held {
		r.demote(-1, "relayd stopped")
	}
	if cfg == nil {
		return nil
	}
	off := disabledCopy(cfg, nil, true)
	r.in.Forget()
	if _, err := r.in.Sync(off, nil); err != nil {
		return fmt.Errorf("relayd: emptying the anchors: %w", err)
	}
	return nil
}

// markForget makes the next sync rewrite every anchor: pf's ruleset was
// loaded again, which replaced them.
func (r *relaydRun) markForget() {
	r.mu.Lock()
	r.forget = true
	r.mu.Unlock()
}

// relaydCheckBounds are the upper bounds of the check duration
// histogram's buckets: relayd's timeouts run from milliseconds (the
// default 200 ms) to seconds.
var relaydCheckBounds = []time.Duration{
	time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond,
	50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// hostMetrics is one host's metrics (metrics.go).
type hostMetrics struct {
	table, port, host  string
	state              string
	checks, ups, downs uint64
	durSum             time.Duration
	durHist            []uint64
}

// metrics returns every host's metrics, in table and host order.
func (r *relaydRun) metrics() (hosts []hostMetrics, syncs uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cfg == nil {
		return nil, r.syncs
	}
	for _, t := range r.cfg.Instances {
		for _, h := range t.Hosts {
			hr := r.hosts[h.ID]
			if hr == nil {
				continue
			}
			hosts = append(hosts, hostMetrics{table: t.Name, port: fmt.Sprint(t.Port), host: h.Name,
				state: hr.st.State.String(), checks: hr.checks, ups: hr.ups, downs: hr.downs,
				durSum: hr.durSum, durHist: append([]uint64(nil), hr.durHist...)})
		}
	}
	return hosts, r.syncs
}

// probe times each check (for the metrics) around the real one, or the
// daemon's injected one.
func (r *relaydRun) probe(gen int) relayd.Probe {
	p := r.d.o.RelaydProbe
	if p == nil {
		p = relayd.DefaultProbe
	}
	return func(ctx context.Context, t *relayd.Table, h *relayd.Host, timeout time.Duration) relayd.State {
		start := r.d.clk.Now()
		st := p(ctx, t, h, timeout)
		dur := r.d.clk.Now().Sub(start)
		r.mu.Lock()
		if hr := r.hosts[h.ID]; hr != nil && r.gen == gen {
			hr.checks++
			hr.durSum += dur
			hr.lastDur = dur
			if hr.durHist == nil {
				hr.durHist = make([]uint64, len(relaydCheckBounds)+1)
			}
			i := 0
			for i < len(relaydCheckBounds) && dur > relaydCheckBounds[i] {
				i++
			}
			hr.durHist[i]++
		}
		r.mu.Unlock()
		return st
	}
}

// onStatus takes one result of the Checker: a changed state asks for a
// sync.
func (r *relaydRun) onStatus(gen int, s relayd.Status) {
	r.mu.Lock()
	hr := r.hosts[s.HostID]
	if hr == nil || r.gen != gen {
		r.mu.Unlock()
		return
	}
	prev := hr.st.State
	if s.State == relayd.Unknown && !hr.seen {
		// not checked yet by this Checker (a retry pending): a host
		// carried over a reload keeps its state until it is
		s.State = prev
	} else {
		hr.seen = true
	}
	hr.st = s
	changed := s.State != prev
	if changed {
		switch s.State {
		case relayd.Up:
			hr.ups++
		case relayd.Down:
			hr.downs++
		}
	}
	cfg := r.cfg
	r.mu.Unlock()
	logState := cfg.Log&relayd.LogStateChanges != 0
	logChecks := cfg.Log&relayd.LogHostChecks != 0
	switch {
	case changed && logState:
		// hce.c hce_notify_done's message
		r.d.log.Info(fmt.Sprintf("host %s, check %s, state %s -> %s, availability %.2f%%", s.Host,
			checkName(cfg, s.TableID), prev, s.State, s.Availability()))
	case logChecks:
		r.d.log.Info(fmt.Sprintf("host %s, check %s, state %s", s.Host, checkName(cfg, s.TableID), s.State))
	}
	if changed {
		r.request(nil)
	}
}

func checkName(cfg *relayd.Config, tableID int) string {
	for _, t := range cfg.Instances {
		if t.ID == tableID {
			return t.Check.Kind.String()
		}
	}
	return "?"
}

// request asks the sync loop for a sync; done, when not nil, gets its
// result.
func (r *relaydRun) request(done chan error) {
	r.mu.Lock()
	if done != nil {
		r.pending = append(r.pending, done)
	}
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default: // a sync is already asked for: it will see this change too
	}
}

// relaydSyncWait bounds how long a reload waits for the anchors.
const relaydSyncWait = 30 * time.Second

// syncWait asks for a sync (after a Forget when forget is set) and waits
// for its result.
func (r *relaydRun) syncWait(forget bool) error {
	done := make(chan error, 1)
	r.mu.Lock()
	r.forget = r.forget || forget
	r.mu.Unlock()
	r.request(done)
	t := time.NewTimer(relaydSyncWait)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return errors.New("relayd: the anchors were not synced in time")
	}
}

// relaydRetry is how soon a failed sync is tried again.
const relaydRetry = time.Second

// loop is the sync loop.
func (r *relaydRun) loop(ctx context.Context) {
	var retry clock.Timer
	for {
		var retryC <-chan time.Time
		if retry != nil {
			retryC = retry.C()
		}
		select {
		case <-ctx.Done():
			r.failPending(errors.New("relayd stopped"))
			if retry != nil {
				retry.Stop()
			}
			return
		case <-r.kick:
		case <-retryC:
			retry = nil
		}
		if err := r.syncOnce(); err != nil && retry == nil {
			retry = r.d.clk.NewTimer(relaydRetry)
		}
	}
}

func (r *relaydRun) failPending(err error) {
	r.mu.Lock()
	p := r.pending
	r.pending = nil
	r.mu.Unlock()
	for _, ch := range p {
		ch <- err
	}
}

// syncOnce is one sync (pfe_sync): the anchors, then the sticky bindings
// to hosts that left the pool, then the demotions.
func (r *relaydRun) syncOnce() error {
	r.mu.Lock()
	if r.cfg == nil {
		r.mu.Unlock()
		return nil
	}
	cfg := disabledCopy(r.cfg, r.rdrOff, false)
	up := r.upLocked()
	forget := r.forget
	r.forget = false
	waiters := r.pending
	r.pending = nil
	gone := r.leftLocked(cfg, up)
	sticky := false
	for _, rd := range cfg.Redirects {
		sticky = sticky || rd.Sticky
	}
	upAddrs := map[netip.Addr]bool{}
	for id := range up {
		if h := r.hosts[id]; h != nil && h.addr.IsValid() {
			upAddrs[h.addr] = true
		}
	}
	changes := r.demotionsLocked(up)
	r.mu.Unlock()

	if forget {
		r.in.Forget()
	}
	var keep []nft.StickyElem
	if sticky {
		// A rewritten anchor's sticky maps are new and empty; relayd
		// only kills the bindings to hosts that went down
		// (kill_srcnodes): the others are written back below.
		var kerr error
		if keep, kerr = r.d.sys.StickyBindings(relayd.AnchorRoot + "/"); kerr != nil {
			r.d.log.Warn("relayd: reading the sticky-address bindings", "err", kerr)
		}
	}
	paths, err := r.in.Sync(cfg, up)
	if n := r.restoreSticky(keep, paths, upAddrs); n > 0 {
		r.d.log.Info("relayd: sticky-address bindings to hosts in the pool kept over the anchor load", "bindings", n)
	}
	if len(paths) > 0 {
		r.d.log.Info("relayd: anchors synced", "anchors", paths, "hosts_up", len(up))
	}
	if len(paths) > 0 {
		// the differences from relayd of what was just loaded (once per
		// load, not per sync)
		for _, w := range r.in.Warnings {
			r.d.log.Warn("relayd: " + w)
		}
	}
	if err == nil && len(gone) > 0 {
		n, kerr := r.d.sys.ForgetStickyBackends(relayd.AnchorRoot+"/", gone)
		switch {
		case kerr != nil:
			r.d.log.Warn("relayd: removing sticky-address bindings to hosts that left the pool", "hosts", gone, "err", kerr)
		case n > 0:
			r.d.log.Info("relayd: sticky-address bindings to hosts that left the pool removed", "hosts", gone, "bindings", n)
		}
	}
	for _, c := range changes {
		r.demote(c.delta, c.reason)
	}
	r.mu.Lock()
	r.syncs++
	r.lastErr = err
	if err == nil {
		for id, h := range r.hosts {
			h.wasUp = up[id]
		}
	}
	r.mu.Unlock()
	if err != nil {
		r.d.log.Error("relayd: syncing the anchors failed; trying again", "err", err)
	}
	for _, w := range waiters {
		w <- err
	}
	return err
}

// restoreSticky writes back the bindings in keep that belong to an anchor
// in paths (rewritten, so its maps are empty now) and go to a host in up.
// A map the new rules do not have (the redirection is down) is skipped.
func (r *relaydRun) restoreSticky(keep []nft.StickyElem, paths []string, up map[netip.Addr]bool) int {
	n := 0
	for _, e := range keep {
		if !up[e.Backend] || !rewritten(e.Map, paths) {
			continue
		}
		if err := r.d.sys.SetSticky(e); err != nil {
			if !errors.Is(err, nft.ErrNotSticky) {
				r.d.log.Warn("relayd: restoring a sticky-address binding", "map", e.Map, "source", e.Source, "err", err)
			}
			continue
		}
		n++
	}
	return n
}

// rewritten reports whether set name belongs to one of the anchors paths.
func rewritten(name string, paths []string) bool {
	for _, p := range paths {
		if strings.HasPrefix(name, nft.AnchorSet(p, "")) {
			return true
		}
	}
	return false
}

// upLocked is the set of hosts in the pools: up as last checked (or, for
// a host the running Checker has not checked yet, as before the reload),
// not disabled by relayctl.
func (r *relaydRun) upLocked() map[int]bool {
	up := map[int]bool{}
	for id, h := range r.hosts {
		if h.st.State == relayd.Up && !r.hostOff[h.key] {
			up[id] = true
		}
	}
	return up
}

// leftLocked lists the addresses of hosts of sticky redirections that
// were in the pool at the last sync and are not now (kill_srcnodes' hosts).
func (r *relaydRun) leftLocked(cfg *relayd.Config, up map[int]bool) []netip.Addr {
	sticky := map[int]bool{}
	for _, rd := range cfg.Redirects {
		if !rd.Sticky {
			continue
		}
		for _, f := range []*relayd.Forward{rd.Forward, rd.Backup} {
			if f != nil && f.Instance != nil {
				for _, h := range f.Instance.Hosts {
					sticky[h.ID] = true
				}
			}
		}
	}
	var out []netip.Addr
	for id, h := range r.hosts {
		if h.wasUp && !up[id] && sticky[id] && h.addr.IsValid() {
			out = append(out, h.addr)
		}
	}
	return out
}

type demoteChange struct {
	delta  int
	reason string
}

// demotionsLocked is pfe_sync's demotion step: a table with "demote"
// whose hosts are all down demotes its group once; it lifts the demotion
// when one is up again. Unlike pfe_sync, a table whose hosts have not all
// been checked yet (unknown) is not demoted: relayd's carp.c
// (carp_demote_init, carp_demote_set) does not demote at its start either.
func (r *relaydRun) demotionsLocked(up map[int]bool) []demoteChange {
	var out []demoteChange
	for _, t := range r.cfg.Instances {
		if t.Demote == "" {
			continue
		}
		k := hostKey{table: t.Name, port: t.Port}
		n, down, hosts := 0, 0, 0
		for _, h := range t.Hosts {
			hr := r.hosts[h.ID]
			if hr == nil || r.hostOff[hr.key] {
				continue
			}
			hosts++
			switch {
			case up[h.ID]:
				n++
			case hr.st.State == relayd.Down:
				down++
			}
		}
		switch {
		case t.Disabled:
		case n > 0 && r.demoted[k]:
			delete(r.demoted, k)
			out = append(out, demoteChange{-1, fmt.Sprintf("relayd: table %s has a host up again", t.Name)})
		case n == 0 && hosts > 0 && down == hosts && !r.demoted[k]:
			r.demoted[k] = true
			out = append(out, demoteChange{+1, fmt.Sprintf("relayd: every host of table %s is down (demote %s)", t.Name, t.Demote)})
		}
	}
	return out
}

// demote changes the node's CARP demotion, the counter pfsync's bulk
// updates and lost parents use too.
func (r *relaydRun) demote(delta int, reason string) {
	if r.d.runner == nil {
		return
	}
	r.d.runner.Do(func(n *carp.Node) { n.Demote(delta, reason) })
}

// disabledCopy is cfg with the redirections in off (or all, with all)
// disabled, for the Installer.
func disabledCopy(cfg *relayd.Config, off map[string]bool, all bool) *relayd.Config {
	c := *cfg
	c.Redirects = make([]*relayd.Redirect, len(cfg.Redirects))
	for i, rd := range cfg.Redirects {
		if all || off[rd.Name] {
			x := *rd
			x.Disabled = true
			rd = &x
		}
		c.Redirects[i] = rd
	}
	return &c
}
