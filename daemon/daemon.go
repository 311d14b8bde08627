// Package daemon is pfcarp's long-running process (`pfcarp run`): it loads
// one node's config, exempts its own protocols from connection tracking,
// guards the virtual addresses so that they answer only while the daemon
// lives (guard_linux.go), runs the CARP groups over raw sockets, moves the
// virtual addresses as the groups change state, watches the links, runs
// the user's transition commands, runs relayd's health-checked
// redirections in pf's anchors relayd/NAME (relayd.go), and answers the CLI
// on a control socket.
//
// The daemon is an object: New reads and checks the config, Start brings
// everything up (and, failing, takes down what it had started), Reload
// applies a changed config, Close takes everything down. It owns every
// goroutine it starts and waits for them. Signals are the command's
// business (cli: SIGTERM ends, SIGHUP reloads).
//
// daemon wires the other packages together; it owns no protocol logic of
// its own (that is carp's and pfsync's) and never touches nftables tables
// other than its own pfcarp_ha and pfcarp_live tables, and pf's through
// nft. What it does to the machine goes through a System, so its logic is
// tested without root.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pfcarp/pfcarp/carp"
	"github.com/pfcarp/pfcarp/config"
	"github.com/pfcarp/pfcarp/internal/clock"
	"github.com/pfcarp/pfcarp/relayd"
)

// Options configure New.
type Options struct {
	ConfigPath string
	// Socket overrides the control socket path (else the config's
	// pfcarp_control_socket, else $PFCARP_SOCKET, else DefaultSocket).
	Socket string
	Logger *slog.Logger
	Clock  clock.Clock // nil: the real clock
	// System is the machine; nil: a LinuxSystem.
	System System
	// RelaydProbe runs relayd's host checks; nil: the real checks
	// (relayd.DefaultProbe).
	RelaydProbe relayd.Probe
}

// Daemon is one node's running daemon.
type Daemon struct {
	o    Options
	conf atomic.Pointer[conf] // replaced by Reload
	log  *slog.Logger
	clk  clock.Clock
	sys  System
	sock string

	started time.Time

	// Set by Start, read-only after (until Close).
	cs      *controlServer
	web     *http.Server // nil unless pfcarp_metrics is set
	webAddr string
	pflog   io.Closer
	runner  *carp.Runner // nil when no CARP group is configured
	lease   Lease        // nil when no CARP group is configured
	links   *linkWatcher
	syncMu  sync.Mutex
	sync    Syncer // nil when pfsync is off; replaced by Reload
	haUp    bool
	relayd  atomic.Pointer[relaydRun] // nil unless relayd_enable; replaced by Reload

	cancel context.CancelFunc
	wg     sync.WaitGroup // goroutines owned by the daemon
	fatal  chan error     // a component that cannot go on
	hooks  sync.WaitGroup // transition commands still running

	reloadMu sync.Mutex
	// demoted pairs pfsync's lift with its demotion (CARP's loop only).
	demoted bool

	histMu  sync.Mutex
	history []GroupTransition // the last historyLen, oldest first

	closeOnce sync.Once
	closeErr  error
}

type groupKey struct {
	parent string
	vhid   uint8
}

// conf is the node config in force and what is derived from it.
type conf struct {
	cfg   *config.Node
	names map[groupKey]string // (parent, vhid) -> carpN ("" for the FreeBSD >= 10 form)
}

func newConf(cfg *config.Node) *conf {
	c := &conf{cfg: cfg, names: map[groupKey]string{}}
	for _, g := range cfg.CARP {
		c.names[groupKey{g.Dev, uint8(g.VHID)}] = g.Name
	}
	return c
}

// config returns the node config in force.
func (d *Daemon) config() *config.Node { return d.conf.Load().cfg }

// syncer returns the running pfsync, or nil.
func (d *Daemon) syncer() Syncer {
	d.syncMu.Lock()
	defer d.syncMu.Unlock()
	return d.sync
}

// New reads and checks the node config. It changes nothing on the machine.
func New(o Options) (*Daemon, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	cfg, err := loadConfig(o.ConfigPath, log)
	if err != nil {
		return nil, err
	}
	d := &Daemon{o: o, log: log, clk: o.Clock, sys: o.System, fatal: make(chan error, 4)}
	d.conf.Store(newConf(cfg))
	if d.clk == nil {
		d.clk = clock.Real{}
	}
	if d.sys == nil {
		d.sys = &LinuxSystem{Logger: log}
	}
	d.sock = o.Socket
	if d.sock == "" {
		d.sock = cfg.ControlSocket
	}
	if d.sock == "" {
		d.sock = SocketPath()
	}
	return d, nil
}

// loadConfig reads path, logging warnings and notes; errors fail it.
func loadConfig(path string, log *slog.Logger) (*config.Node, error) {
	cfg, diags := config.LoadFile(path, nil)
	for _, d := range diags {
		switch d.Severity {
		case config.Error:
		case config.Warning:
			log.Warn("config", "diag", d.String())
		default:
			log.Info("config", "diag", d.String())
		}
	}
	if err := diags.Err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Start brings the node up: control socket, forwarding, the HA tables and
// guard, stale virtual addresses removed, pflog, pf, CARP, pfsync, the
// link watcher. pf comes before CARP (a node must filter and translate
// before it can become MASTER), pflog before pf (so the first logged
// packets land), pfsync after CARP (its bulk update demotes CARP). When a
// step fails, Start takes down everything it had started and returns the
// error.
func (d *Daemon) Start(ctx context.Context) (err error) {
	d.started = d.clk.Now()
	ctx, d.cancel = context.WithCancel(ctx)
	defer func() {
		if err != nil {
			// Undo what started; the start's error is the one to report,
			// the undoing's comes with it.
			err = errors.Join(err, d.Close())
		}
	}()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, d.Status()) })
	d.relaydHandlers(mux) // relayd_control.go
	if d.cs, err = listenControl(d.sock, mux, d.log); err != nil {
		return err
	}
	d.goFatal(d.cs.serve)
	if err := d.listenWeb(); err != nil {
		return err
	}
	cfg := d.config()
	if cfg.CARPVMAC {
		d.log.Warn("carp_vmac: virtual MACs (macvlan carpN with 00:00:5e:00:01:vhid) are not implemented; the parent's own MAC is used and gratuitous ARP moves the addresses")
	}
	if err := d.sys.SetForwarding(cfg); err != nil {
		return err
	}
	d.setPriority(nil, cfg)
	if len(cfg.CARP) > 0 || cfg.Pfsync != nil {
		if err := d.sys.InstallHA(vipAddrs(cfg)); err != nil {
			return err
		}
		d.haUp = true
	}
	if len(cfg.CARP) > 0 {
		// Addresses a killed daemon left behind: CARP starts in INIT and
		// takes them back only as MASTER.
		for parent, ps := range vipsByParent(cfg) {
			if err := d.sys.VIPs(parent).Remove(ps); err != nil {
				d.log.Warn("removing stale virtual addresses", "if", parent, "err", err)
			}
		}
	}
	if cfg.Pflog.Enable {
		if d.pflog, err = d.sys.StartPflog(cfg, d.log); err != nil {
			return err
		}
	}
	if cfg.PF.Enable {
		if err := d.loadPF(cfg); err != nil { // pf.go
			return err
		}
	}
	if len(cfg.CARP) > 0 {
		if err := d.startCARP(); err != nil {
			return err
		}
	}
	if cfg.Pfsync != nil {
		h := SyncHooks{Logger: d.log, Clock: d.clk}
		if d.runner != nil {
			h.Demote = d.pfsyncDemote
		}
		s, err := d.sys.StartPfsync(cfg, h)
		if err != nil {
			return err
		}
		if s != nil {
			d.sync = s
		}
	}
	if cfg.Relayd.Enable {
		// after pf (its anchors) and CARP (the tables' demotion)
		if !cfg.PF.Enable {
			return fmt.Errorf("%s: relayd_enable needs pf_enable=\"YES\": relayd's rules live in pf's anchors", cfg.Relayd.EnablePos)
		}
		if err := d.startRelayd(cfg); err != nil { // relayd.go
			return err
		}
	}
	if d.runner != nil || d.syncer() != nil {
		d.links = &linkWatcher{src: d.sys.Links(), names: d.watchedLinks, log: d.log, clk: d.clk, change: d.linkChanged}
		d.wg.Add(1)
		go func() { defer d.wg.Done(); d.links.run(ctx) }()
	}
	if d.lease != nil {
		d.wg.Add(1)
		go func() { defer d.wg.Done(); d.renewLease(ctx) }()
	}
	if cfg.PF.Enable {
		d.wg.Add(1)
		go func() { defer d.wg.Done(); d.watchAddrs(ctx) }()
	}
	d.log.Info("pfcarp running", "config", d.o.ConfigPath, "socket", d.sock, "carp_groups", len(cfg.CARP))
	return nil
}

// setPriority applies pfcarp_nice when it is set and differs from old's
// (nil at start). A refusal (no CAP_SYS_NICE) is logged, not fatal: the
// daemon works at any priority, only its sync lag suffers on a busy host.
func (d *Daemon) setPriority(old, cfg *config.Node) {
	if !cfg.NiceSet || (old != nil && old.NiceSet && old.Nice == cfg.Nice) {
		return
	}
	if err := d.sys.SetPriority(cfg.Nice); err != nil {
		d.log.Warn("scheduling priority not set", "pos", cfg.NicePos.String(), "err", err)
		return
	}
	d.log.Info("scheduling priority set", "nice", cfg.Nice)
}

// goFatal runs f on an owned goroutine; an error it returns ends the
// daemon (Wait returns it).
func (d *Daemon) goFatal(f func() error) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := f(); err != nil {
			select {
			case d.fatal <- err:
			default:
			}
		}
	}()
}

// Fatal delivers an error from a component that cannot go on (the control
// socket's server); the caller should Close the daemon.
func (d *Daemon) Fatal() <-chan error { return d.fatal }

// Close takes the node down: pfsync stops, CARP masters bow out (advbase
// 255, advskew 255) so the peer takes over at once, the virtual addresses
// are released, the daemon's tables and control socket are removed. It
// waits for every goroutine the daemon started. Safe to call more than
// once, and after a failed Start.
func (d *Daemon) Close() error {
	d.closeOnce.Do(func() {
		d.reloadMu.Lock() // a reload in progress finishes first
		defer d.reloadMu.Unlock()
		d.log.Info("pfcarp stopping")
		if d.cancel != nil {
			d.cancel()
		}
		var errs []error
		if d.runner != nil {
			// Close bows out and releases the addresses before returning:
			// from here on no connection starts on this node.
			if err := d.runner.Close(); err != nil {
				errs = append(errs, fmt.Errorf("carp shutdown: %w", err))
			}
		}
		if r := d.relayd.Swap(nil); r != nil {
			// after the bow-out: relayd's rules serve the VIPs until then
			if err := r.stop(); err != nil {
				errs = append(errs, err)
			}
		}
		if s := d.syncer(); s != nil {
			// pfsync last, so the states of connections opened until the
			// bow-out reach the peer: the kernel's events for them are
			// read (syncDrain), then pfsync's queue is flushed (Close).
			if d.runner != nil {
				time.Sleep(syncDrain)
			}
			s.Close()
		}
		if d.lease != nil {
			if err := d.lease.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if d.haUp {
			if err := d.sys.RemoveHA(); err != nil {
				errs = append(errs, err)
			}
		}
		if d.pflog != nil {
			if err := d.pflog.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if d.cs != nil {
			d.cs.close()
		}
		if d.web != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = d.web.Shutdown(ctx)
			cancel()
		}
		d.wg.Wait()
		d.hooks.Wait()
		d.closeErr = errors.Join(errs...)
	})
	return d.closeErr
}

// Run runs a daemon until ctx is done or a component fails, then closes
// it. reload, when not nil, delivers reload requests (SIGHUP).
func Run(ctx context.Context, o Options, reload <-chan struct{}) error {
	d, err := New(o)
	if err != nil {
		return err
	}
	if err := d.Start(ctx); err != nil {
		return err
	}
	// systemd (Type=notify): ready once CARP, pf and pfsync are up.
	notify(d.log, sdReady)
	defer notify(d.log, sdStopping)
	for {
		select {
		case <-ctx.Done():
			return d.Close()
		case err := <-d.Fatal():
			return errors.Join(err, d.Close())
		case <-reload:
			notify(d.log, sdReloading)
			_ = d.Reload() // logged; the running state is unchanged
			notify(d.log, sdReady)
		}
	}
}

func (d *Daemon) startCARP() error {
	cfg := d.config()
	// Which address families each parent carries.
	fams := map[string][2]bool{}
	for _, g := range cfg.CARP {
		f := fams[g.Dev]
		for _, v := range g.VIPs {
			f[0] = f[0] || v.Prefix.Addr().Is4()
			f[1] = f[1] || v.Prefix.Addr().Is6()
		}
		fams[g.Dev] = f
	}
	lease, err := d.sys.OpenLease(leaseTTL(cfg))
	if err != nil {
		return err
	}
	d.lease = lease
	trs := map[string]carp.Transport{}
	owners := map[string]VIPOwner{}
	closeAll := func() {
		for _, t := range trs {
			t.Close()
		}
	}
	for _, g := range cfg.CARP {
		if _, ok := trs[g.Dev]; ok {
			continue
		}
		t, err := d.sys.NewTransport(g.Dev, fams[g.Dev][0], fams[g.Dev][1])
		if err != nil {
			closeAll()
			return fmt.Errorf("%s: %s: %w", g.Pos, g.Label(), err)
		}
		trs[g.Dev] = t
		owners[g.Dev] = d.sys.VIPs(g.Dev)
	}
	r, err := carp.NewRunner(carp.RunnerOptions{
		Clock: d.clk, Logger: d.log, Transports: trs,
		Actions: &actions{d: d, owners: owners},
	})
	if err != nil {
		closeAll()
		return err
	}
	for _, g := range cfg.CARP {
		if _, err := r.Node().AddGroup(carpConfig(cfg, g)); err != nil {
			closeAll()
			return fmt.Errorf("%s: %s: %w", g.Pos, g.Label(), err)
		}
	}
	d.runner = r
	r.Start()
	return nil
}

func carpConfig(cfg *config.Node, g *config.CARPGroup) carp.Config {
	cc := carp.Config{
		VHID: uint8(g.VHID), AdvBase: uint8(g.AdvBase), AdvSkew: uint8(g.AdvSkew),
		Pass: g.Pass, Preempt: cfg.Preempt, Parent: g.Dev,
	}
	for _, v := range g.VIPs {
		cc.VIPs = append(cc.VIPs, v.Prefix)
	}
	if g.Peer.Is4() {
		cc.Peer = g.Peer
	} else if g.Peer.IsValid() {
		cc.Peer6 = g.Peer
	}
	return cc
}

// leaseTTL is how long a MASTER's VIPs answer without the daemon: the
// shortest advertisement interval of the node's groups (advbase +
// advskew/256 s), at least minLease. Within it the peer has not yet
// declared this node dead (it waits three intervals).
func leaseTTL(cfg *config.Node) time.Duration {
	ttl := time.Duration(0)
	for _, g := range cfg.CARP {
		iv := time.Duration(g.AdvBase)*time.Second + time.Duration(g.AdvSkew)*time.Second/256
		if ttl == 0 || iv < ttl {
			ttl = iv
		}
	}
	return max(ttl, minLease)
}

// syncDrain is how long a stopping daemon goes on reading conntrack events
// after its masters bowed out.
const syncDrain = 100 * time.Millisecond

// minLease keeps renewals (every lease/renewsPerLease) sane for advbase 0
// style timings.
const (
	minLease       = 200 * time.Millisecond
	renewsPerLease = 4
)

// renewLease renews the live table's lease while CARP's loop answers: a
// daemon whose CARP loop hangs stops answering for its VIPs within one
// lease, as one that died does at once.
func (d *Daemon) renewLease(ctx context.Context) {
	t := d.clk.NewTimer(leaseTTL(d.config()) / renewsPerLease)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		if d.runner.Do(func(*carp.Node) {}) {
			if err := d.lease.Renew(); err != nil {
				d.log.Warn("renewing the VIP lease", "err", err)
			} else {
				// systemd's watchdog (WatchdogSec=) sees the same
				// liveness as the kernel's lease
				notify(d.log, sdWatchdog)
			}
		}
		t.Reset(leaseTTL(d.config()) / renewsPerLease)
	}
}

// watchAddrs keeps pf's dynamic interface addresses ("(if)", as pf's
// dynaddr does) current: each change of an interface address rewrites
// them in one transaction. A subscription that ends is made again, and the
// sets refreshed, since changes may have been missed meanwhile.
func (d *Daemon) watchAddrs(ctx context.Context) {
	for first := true; ; first = false {
		if !first {
			t := d.clk.NewTimer(retryDelay)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C():
			}
			d.refreshPFAddrs()
		}
		done := make(chan struct{})
		ch, err := d.sys.WatchAddrs(done)
		if err != nil {
			close(done)
			d.log.Warn("watching addresses for pf's (if) sets; trying again", "err", err)
			continue
		}
		for open := true; open; {
			select {
			case <-ctx.Done():
				close(done)
				return
			case _, open = <-ch:
				if open {
					d.refreshPFAddrs()
				}
			}
		}
		close(done)
	}
}

func (d *Daemon) refreshPFAddrs() {
	n, err := d.sys.RefreshPFAddrs(d.config())
	switch {
	case err != nil:
		d.log.Warn("refreshing pf's (if) address sets", "err", err)
	case n > 0:
		d.log.Info("pf's (if) address sets refreshed", "sets", n)
	}
}

// pfsyncDemote is pfsync's Demote, called on pfsync's loop; CARP's loop
// never waits on pfsync, and Do returns false once CARP has stopped.
//
// A node that is MASTER of a group when a bulk update starts (the sync
// link healed under a working master) is not demoted: the traffic, and so
// the freshest states, are its own, and demoting it would hand the groups
// to a backup that missed updates too.
func (d *Daemon) pfsyncDemote(delta int, reason string) {
	d.runner.Do(func(n *carp.Node) {
		switch {
		case delta > 0 && isMaster(n):
			d.log.Info("pfsync: bulk update without CARP demotion: this node is MASTER", "reason", reason)
			return
		case delta > 0:
			d.demoted = true
		case !d.demoted:
			return
		default:
			d.demoted = false
		}
		n.Demote(delta, reason)
	})
}

// isMaster reports whether any of n's groups is MASTER.
func isMaster(n *carp.Node) bool {
	for _, g := range n.Groups() {
		if g.State() == carp.Master {
			return true
		}
	}
	return false
}

// watchedLinks reports whether name is a CARP parent or the sync
// interface.
func (d *Daemon) watchedLinks(name string) bool {
	cfg := d.config()
	if d.runner != nil {
		for _, g := range cfg.CARP {
			if g.Dev == name {
				return true
			}
		}
	}
	return cfg.Pfsync != nil && cfg.Pfsync.SyncDev == name && d.syncer() != nil
}

// linkChanged is the link watcher's report: a CARP parent's state goes to
// CARP (a group leaves INIT only once its link is up; a lost carrier
// demotes); a parent that returns first requests a bulk update, before
// CARP may preempt (while it was down the peer carried this node's flows
// and their TCP windows moved on); a returning sync link starts one too.
func (d *Daemon) linkChanged(name string, up, first, returned bool) {
	d.log.Info("link", "if", name, "up", up, "first_report", first, "returned", returned)
	cfg := d.config()
	isParent := false
	if d.runner != nil {
		for _, g := range cfg.CARP {
			isParent = isParent || g.Dev == name
		}
	}
	if s := d.syncer(); s != nil {
		switch {
		case returned && name == cfg.Pfsync.SyncDev:
			d.log.Info("pfsync: sync link up again: requesting a bulk update", "syncdev", name)
			s.LinkUp()
		case returned && isParent:
			d.log.Info("pfsync: parent link up again: requesting a bulk update before CARP may preempt", "if", name)
			s.RequestBulk("pfsync bulk start (" + name + " up)")
		}
	}
	if isParent {
		d.runner.Do(func(n *carp.Node) { n.SetParentUp(name, up) })
	}
}

// vipAddrs lists every configured virtual address.
func vipAddrs(cfg *config.Node) []netip.Addr {
	var as []netip.Addr
	for _, g := range cfg.CARP {
		for _, v := range g.VIPs {
			as = append(as, v.Prefix.Addr())
		}
	}
	return as
}

func vipsByParent(cfg *config.Node) map[string][]netip.Prefix {
	m := map[string][]netip.Prefix{}
	for _, g := range cfg.CARP {
		for _, v := range g.VIPs {
			m[g.Dev] = append(m[g.Dev], v.Prefix)
		}
	}
	return m
}
