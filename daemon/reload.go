package daemon

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"

	"github.com/pfcarp/pfcarp/carp"
	"github.com/pfcarp/pfcarp/config"
	"github.com/pfcarp/pfcarp/netdb"
	"github.com/pfcarp/pfcarp/relayd"
)

// Reload reads the node config again and applies what changed, as a
// running node can (SIGHUP):
//   - pf_rules are loaded again with their load anchor files, as
//     `service pf reload` does;
//   - CARP groups keep their state while their advbase, advskew, password,
//     VIPs, peer and carp_preempt change (a MASTER puts added VIPs on and
//     takes removed ones off itself); groups are added on parents the
//     daemon runs CARP on, and removed (a MASTER bows out first);
//   - changed pfsync settings (syncdev, syncpeer, maxupd, defer,
//     pfsync_key) restart pfsync, whose bulk update follows; the kernel's
//     states are not touched;
//   - gateway_enable and the pflog file are applied;
//   - relayd.conf is read again: hosts that stay keep their state, the
//     anchors are synced (all of them after pf's reload replaced them),
//     removed redirections' anchors are emptied; relayd_enable starts or
//     stops relayd.
//
// Nothing moves when nothing relevant changed: an unchanged group is not
// touched. A file that does not load, a ruleset that fails, or a change
// that needs a restart (CARP on a new parent, pfsync0 turned on or off, the
// control socket) changes nothing and is an error naming the file and
// line.
func (d *Daemon) Reload() error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	err := d.reload()
	if err != nil {
		d.log.Error("reload failed; the running configuration is unchanged", "err", err)
	}
	return err
}

func (d *Daemon) reload() error {
	old := d.config()
	cfg, err := loadConfig(d.o.ConfigPath, d.log)
	if err != nil {
		return err
	}
	if err := d.checkLive(old, cfg); err != nil {
		return err
	}
	// relayd.conf is read and checked before anything changes: a bad
	// file fails the reload with its file and line.
	var rc *relayd.Config
	if cfg.Relayd.Enable {
		if !cfg.PF.Enable {
			return fmt.Errorf("%s: relayd_enable needs pf_enable=\"YES\": relayd's rules live in pf's anchors", cfg.Relayd.EnablePos)
		}
		if rc, err = d.readRelayd(cfg.Relayd.Conf, cfg.Host(netdb.System())); err != nil {
			return err
		}
	}
	if cfg.PF.Enable {
		if err := d.loadPF(cfg); err != nil { // pf.go
			return err
		}
	} else if old.PF.Enable {
		d.log.Info("reload: pf_enable is off now; the loaded rules stay (pfctl -d disables them)")
	}
	// From here on every step is one that cannot be refused by the input.
	var errs []error
	if old.GatewayEnable != cfg.GatewayEnable || old.IPv6GatewayEnable != cfg.IPv6GatewayEnable {
		errs = append(errs, d.sys.SetForwarding(cfg))
	}
	d.setPriority(old, cfg)
	oldVIPs, newVIPs := vipAddrs(old), vipAddrs(cfg)
	slices.SortFunc(oldVIPs, netip.Addr.Compare)
	slices.SortFunc(newVIPs, netip.Addr.Compare)
	if d.haUp && !slices.Equal(oldVIPs, newVIPs) {
		// The guard covers the new VIPs before any of them is added.
		errs = append(errs, d.sys.InstallHA(newVIPs))
	}
	d.conf.Store(newConf(cfg))
	if d.runner != nil {
		errs = append(errs, d.reloadCARP(old, cfg))
		d.lease.SetTTL(leaseTTL(cfg))
	}
	if old.Pfsync != nil && pfsyncSettings(old) != pfsyncSettings(cfg) {
		errs = append(errs, d.restartPfsync(cfg))
	}
	if old.Pflog != cfg.Pflog {
		errs = append(errs, d.restartPflog(cfg))
	}
	errs = append(errs, d.reloadRelayd(cfg, rc))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("reload: applied in part: %w", err)
	}
	d.log.Info("reload done", "config", cfg.File)
	return nil
}

// checkLive refuses changes a running daemon cannot apply, and CARP
// settings CARP would refuse, before anything is changed.
func (d *Daemon) checkLive(old, cfg *config.Node) error {
	parents := map[string]bool{}
	if d.runner != nil {
		for _, g := range old.CARP {
			parents[g.Dev] = true
		}
	}
	for _, g := range cfg.CARP {
		if !parents[g.Dev] {
			return fmt.Errorf("%s: %s: CARP does not run on %s in this daemon: restart it to add the interface", g.Pos, g.Label(), g.Dev)
		}
		cc := carpConfig(cfg, g)
		if err := cc.Validate(); err != nil {
			return fmt.Errorf("%s: %s: %w", g.Pos, g.Label(), err)
		}
	}
	switch {
	case old.Pfsync == nil && cfg.Pfsync != nil:
		return fmt.Errorf("%s: pfsync0 is configured now: restart the daemon to start pfsync", cfg.Pfsync.Pos)
	case old.Pfsync != nil && cfg.Pfsync == nil:
		return fmt.Errorf("%s: pfsync0 is no longer configured: restart the daemon to stop pfsync", cfg.File)
	case old.Pfsync != nil && pfsyncOn(old) != pfsyncOn(cfg):
		return fmt.Errorf("%s: pfsync0 turned on or off: restart the daemon", cfg.Pfsync.Pos)
	}
	if old.ControlSocket != cfg.ControlSocket {
		return fmt.Errorf("%s: pfcarp_control_socket changed: restart the daemon", cfg.File)
	}
	return nil
}

func pfsyncOn(cfg *config.Node) bool {
	pc := cfg.Pfsync
	return pc.Up || pc.SyncDev != "" || pc.SyncPeer.IsValid()
}

// pfsyncSettings is what a pfsync restart would change.
type pfsyncSetting struct {
	up       bool
	syncDev  string
	syncPeer string
	maxUpd   int
	deferOn  bool
	key      string
}

func pfsyncSettings(cfg *config.Node) pfsyncSetting {
	pc := cfg.Pfsync
	return pfsyncSetting{up: pc.Up, syncDev: pc.SyncDev, syncPeer: pc.SyncPeer.String(),
		maxUpd: pc.MaxUpd, deferOn: pc.Defer, key: string(cfg.PfsyncKey)}
}

// reloadCARP applies the groups' changes on CARP's loop.
func (d *Daemon) reloadCARP(old, cfg *config.Node) error {
	var errs []error
	key := func(g *config.CARPGroup) groupKey { return groupKey{g.Dev, uint8(g.VHID)} }
	before := map[groupKey]carp.Config{}
	for _, g := range old.CARP {
		before[key(g)] = carpConfig(old, g)
	}
	d.runner.Do(func(n *carp.Node) {
		after := map[groupKey]bool{}
		for _, g := range cfg.CARP {
			k := key(g)
			after[k] = true
			cc := carpConfig(cfg, g)
			prev, ok := before[k]
			switch {
			case !ok:
				if _, err := n.AddRunningGroup(cc); err != nil {
					errs = append(errs, fmt.Errorf("%s: %s: %w", g.Pos, g.Label(), err))
				} else {
					d.log.Info("reload: CARP group added", "group", g.Label())
				}
			case reflect.DeepEqual(prev, cc):
				// unchanged: not touched
			default:
				added, removed, err := n.Update(cc)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %s: %w", g.Pos, g.Label(), err))
					continue
				}
				d.log.Info("reload: CARP group changed", "group", g.Label(), "vips_added", prefixList(added), "vips_removed", prefixList(removed))
				if gr := n.Group(cc.Parent, cc.VHID); gr != nil && gr.State() == carp.Master {
					errs = append(errs, d.moveVIPs(cc.Parent, added, removed))
				}
			}
		}
		for k := range before {
			if !after[k] {
				d.log.Info("reload: CARP group removed", "parent", k.parent, "vhid", k.vhid)
				errs = append(errs, n.RemoveGroup(k.parent, k.vhid))
			}
		}
	})
	return errors.Join(errs...)
}

// moveVIPs puts a MASTER's added VIPs on (leased first) and takes its
// removed ones off (then their lease).
func (d *Daemon) moveVIPs(parent string, added, removed []netip.Prefix) error {
	o := d.sys.VIPs(parent)
	var errs []error
	if len(added) > 0 {
		if err := d.lease.Hold(addrsOf(added)); err != nil {
			errs = append(errs, err)
		} else {
			errs = append(errs, o.Add(added))
		}
	}
	if len(removed) > 0 {
		errs = append(errs, o.Remove(removed), d.lease.Release(addrsOf(removed)))
	}
	return errors.Join(errs...)
}

func (d *Daemon) restartPfsync(cfg *config.Node) error {
	d.syncMu.Lock()
	defer d.syncMu.Unlock()
	if d.sync != nil {
		d.sync.Close()
		d.sync = nil
	}
	h := SyncHooks{Logger: d.log, Clock: d.clk}
	if d.runner != nil {
		h.Demote = d.pfsyncDemote
		// a demotion the old pfsync held is lifted with it
		if d.runner.Do(func(n *carp.Node) {}) {
			d.pfsyncDemote(-1, "pfsync restarted by a reload")
		}
	}
	s, err := d.sys.StartPfsync(cfg, h)
	if err != nil {
		return err
	}
	d.sync = s
	d.log.Info("reload: pfsync restarted with the new settings")
	return nil
}

func (d *Daemon) restartPflog(cfg *config.Node) error {
	if d.pflog != nil {
		if err := d.pflog.Close(); err != nil {
			d.log.Warn("pflog close", "err", err)
		}
		d.pflog = nil
	}
	if !cfg.Pflog.Enable {
		return nil
	}
	l, err := d.sys.StartPflog(cfg, d.log)
	if err != nil {
		return err
	}
	d.pflog = l
	return nil
}

// reloadRelayd puts rc (nil: relayd_enable is off now) in force.
func (d *Daemon) reloadRelayd(cfg *config.Node, rc *relayd.Config) error {
	r := d.relayd.Load()
	switch {
	case r != nil && rc != nil:
		if cfg.PF.Enable {
			r.markForget() // pf's load replaced the anchors
		}
		if err := r.swap(rc, cfg.Relayd.Conf); err != nil {
			return err
		}
		d.log.Info("reload: relayd.conf applied", "config", cfg.Relayd.Conf, "redirections", len(rc.Redirects))
	case r != nil:
		d.relayd.Store(nil)
		d.log.Info("reload: relayd_enable is off now: relayd stops and empties its anchors")
		return r.stop()
	case rc != nil:
		return d.startRelayd(cfg)
	}
	return nil
}
