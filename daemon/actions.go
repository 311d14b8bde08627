package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/pfcarp/pfcarp/carp"
)

// hookTimeout bounds a user's transition command.
const hookTimeout = 30 * time.Second

// actions carries out CARP's decisions: the lease and addresses of the
// VIPs, and the user's carp_up_cmd / carp_down_cmd. Calls come from the
// CARP loop.
type actions struct {
	d      *Daemon
	owners map[string]VIPOwner // by parent interface
	// masterSince: when each group (parent/vhid) last became MASTER; only
	// the CARP loop touches it.
	masterSince map[string]time.Time
}

// BecomeMaster leases the VIPs (the guard lets them answer) before they
// are put on the interface and announced.
func (a *actions) BecomeMaster(t carp.Transition, vips []netip.Prefix) error {
	o := a.owners[t.Parent]
	if o == nil {
		return fmt.Errorf("no address owner for %s", t.Parent)
	}
	if err := a.d.lease.Hold(addrsOf(vips)); err != nil {
		return fmt.Errorf("leasing the VIPs: %w", err)
	}
	if err := o.Add(vips); err != nil {
		return err
	}
	if s := a.d.syncer(); s != nil {
		s.TakeOver()
	}
	if a.masterSince == nil {
		a.masterSince = map[string]time.Time{}
	}
	a.masterSince[fmt.Sprintf("%s/%d", t.Parent, t.VHID)] = t.At
	a.d.remember(t)
	a.hook(a.d.config().CARPUpCmd, t, vips)
	return nil
}

func (a *actions) Release(t carp.Transition, vips []netip.Prefix) error {
	o := a.owners[t.Parent]
	if o == nil {
		return fmt.Errorf("no address owner for %s", t.Parent)
	}
	err := o.Remove(vips)
	err = errors.Join(err, a.d.lease.Release(addrsOf(vips)))
	a.d.remember(t)
	if t.From == carp.Master {
		a.hook(a.d.config().CARPDownCmd, t, vips)
	}
	return err
}

// Announce implements carp.Announcer: a MASTER that heard another master
// tells the segment again where its addresses are.
func (a *actions) Announce(parent string, vhid uint8, vips []netip.Prefix, first bool) error {
	o := a.owners[parent]
	if o == nil {
		return fmt.Errorf("no address owner for %s", parent)
	}
	// Another master: a split brain, whose other side may have carried
	// our connections on and opened others we never heard of (their
	// updates were lost with the link): ask it for its table. Only when we
	// have been master for longer than the other side needed to become
	// one without hearing us (three advertisement intervals); before that
	// it is the master we have just preempted, whose table we had. Once
	// per episode (first): the states our peer advanced before it are
	// liberal after the first pass, those made since are our own, and
	// while the episode lasts the peer's updates arrive if the sync link
	// does (a full table dump per advertisement interval would cost a
	// million-state table dearly).
	if s := a.d.syncer(); s != nil && first {
		s.TakeOver()
		since, ok := a.masterSince[fmt.Sprintf("%s/%d", parent, vhid)]
		if ok && a.d.clk.Now().Sub(since) >= 3*leaseTTL(a.d.config()) {
			s.Refresh("another master heard: a healed split brain")
		}
	}
	return o.Announce(vips)
}

// hook runs cmd with /bin/sh -c in the background, like ucarp's up/down
// scripts, with the transition in the environment. It never blocks CARP.
func (a *actions) hook(cmd string, t carp.Transition, vips []netip.Prefix) {
	if cmd == "" {
		return
	}
	d := a.d
	env := append(os.Environ(),
		"PFCARP_GROUP="+d.groupName(t.Parent, t.VHID),
		"PFCARP_IF="+t.Parent,
		fmt.Sprintf("PFCARP_VHID=%d", t.VHID),
		"PFCARP_STATE="+t.To.String(),
		"PFCARP_FROM="+t.From.String(),
		"PFCARP_REASON="+t.Reason,
		"PFCARP_VIPS="+prefixList(vips),
	)
	d.hooks.Add(1)
	go func() {
		defer d.hooks.Done()
		ctx, cancel := context.WithTimeout(context.Background(), hookTimeout)
		defer cancel()
		c := exec.CommandContext(ctx, "/bin/sh", "-c", cmd)
		c.Env = env
		out, err := c.CombinedOutput()
		lvl := d.log.Info
		if err != nil {
			lvl = d.log.Warn
		}
		lvl("transition command", "cmd", cmd, "state", t.To.String(), "err", err, "output", strings.TrimSpace(string(out)))
	}()
}

func (d *Daemon) groupName(parent string, vhid uint8) string {
	if n := d.conf.Load().names[groupKey{parent, vhid}]; n != "" {
		return n
	}
	return fmt.Sprintf("%s vhid %d", parent, vhid)
}

func addrsOf(ps []netip.Prefix) []netip.Addr {
	as := make([]netip.Addr, len(ps))
	for i, p := range ps {
		as[i] = p.Addr()
	}
	return as
}

func prefixList(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, " ")
}

// historyLen is how many transitions the status page shows.
const historyLen = 20

// remember keeps t among the recent transitions.
func (d *Daemon) remember(t carp.Transition) {
	d.histMu.Lock()
	defer d.histMu.Unlock()
	d.history = append(d.history, GroupTransition{Group: d.groupName(t.Parent, t.VHID),
		Transition: Transition{From: t.From.String(), To: t.To.String(), Reason: t.Reason, At: t.At}})
	if len(d.history) > historyLen {
		d.history = d.history[len(d.history)-historyLen:]
	}
}

func (d *Daemon) recent() []GroupTransition {
	d.histMu.Lock()
	defer d.histMu.Unlock()
	return append([]GroupTransition(nil), d.history...)
}
