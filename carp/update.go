package carp

import (
	"fmt"
	"net/netip"
	"slices"
)

// Update changes the configuration of the running group with cfg's parent
// and vhid, keeping its state: advbase, advskew, password, VIPs, peers and
// preempt. A MASTER advertises the new values at once (as after a
// demotion change) and its timers run on the new interval; a BACKUP
// restarts its master-down timer. It returns the VIPs added and removed;
// the caller moves the addresses of a MASTER (Actions are not called: no
// transition happened).
func (n *Node) Update(cfg Config) (added, removed []netip.Prefix, err error) {
	defer n.flush()
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	g := n.Group(cfg.Parent, cfg.VHID)
	if g == nil {
		return nil, nil, fmt.Errorf("vhid %d is not configured on %q", cfg.VHID, cfg.Parent)
	}
	cfg.VIPs = slices.Clone(cfg.VIPs)
	for _, p := range cfg.VIPs {
		if !slices.Contains(g.cfg.VIPs, p) {
			added = append(added, p)
		}
	}
	for _, p := range g.cfg.VIPs {
		if !slices.Contains(cfg.VIPs, p) {
			removed = append(removed, p)
		}
	}
	key, truncated := NewKey(cfg.Pass)
	if truncated {
		n.log.Warn("carp passphrase cut to 19 bytes, as BSD ifconfig does", "vhid", cfg.VHID)
	}
	g.cfg = cfg
	g.has4, g.has6 = false, false
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
	switch g.state {
	case Master:
		g.advertise(false)
		g.armAdvertise()
	case Backup:
		g.armMasterDown()
	}
	return added, removed, nil
}

// AddRunningGroup adds a group to a node that runs already: it starts in
// INIT and leaves it at once when its parent is known to be up (another
// group on it is up).
func (n *Node) AddRunningGroup(cfg Config) (*Group, error) {
	defer n.flush()
	up := false
	for _, o := range n.groups {
		up = up || (o.cfg.Parent == cfg.Parent && o.parentUp)
	}
	g, err := n.AddGroup(cfg)
	if err != nil {
		return nil, err
	}
	if up {
		g.parentUp = true
		g.handle(evUp)
	}
	return g, nil
}

// RemoveGroup takes the group with vhid on parent away: a MASTER bows out
// first (advbase 255 advskew 255, so the peer takes over at once), and its
// addresses are released (Actions.Release).
func (n *Node) RemoveGroup(parent string, vhid uint8) error {
	defer n.flush()
	i := slices.IndexFunc(n.groups, func(g *Group) bool { return g.cfg.Parent == parent && g.cfg.VHID == vhid })
	if i < 0 {
		return fmt.Errorf("vhid %d is not configured on %q", vhid, parent)
	}
	g := n.groups[i]
	g.stopped = true
	g.handle(evShutdown)
	if g.suppressed {
		g.suppressed = false
		n.deferDemote(-1, fmt.Sprintf("vhid %d on %s removed", vhid, parent))
	}
	n.groups = slices.Delete(n.groups, i, i+1)
	return nil
}
