package daemon

import (
	"context"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/pfcarp/pfcarp/carp"
)

// watchLinks tells CARP when a parent interface gains or loses its carrier
// (a pulled cable) or is set down, until ctx is done. It first reports every
// parent's current state, so groups leave INIT only once their link is up.
func (d *daemon) watchLinks(ctx context.Context) error {
	parents := map[string]bool{}
	for _, g := range d.cfg.CARP {
		parents[g.Dev] = true
	}
	ch := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	defer close(done)
	errc := make(chan error, 1)
	if err := netlink.LinkSubscribeWithOptions(ch, done, netlink.LinkSubscribeOptions{
		ListExisting: true,
		ErrorCallback: func(err error) {
			select {
			case errc <- err:
			default:
			}
		},
	}); err != nil {
		return fmt.Errorf("watching links: %w", err)
	}
	last := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			// The library skips what it reports here (a message from a
			// user-space sender, an interrupted dump) and carries on; a
			// dead subscription closes ch instead.
			d.log.Warn("watching links", "err", err)
		case u, ok := <-ch:
			if !ok {
				return fmt.Errorf("watching links: subscription closed")
			}
			name := u.Attrs().Name
			if !parents[name] {
				continue
			}
			up := u.Header.Type != unix.RTM_DELLINK &&
				u.IfInfomsg.Flags&unix.IFF_UP != 0 && u.IfInfomsg.Flags&unix.IFF_LOWER_UP != 0
			if prev, seen := last[name]; seen && prev == up {
				continue
			}
			prev, seen := last[name]
			last[name] = up
			d.log.Info("parent link", "if", name, "up", up)
			if up && seen && !prev && d.pfsync != nil {
				// Before CARP may preempt: while the link was down the
				// peer carried this node's flows and their TCP windows
				// moved on; the bulk update refreshes the entries here
				// (and demotes CARP until it is done).
				d.log.Info("pfsync: parent link up again: requesting a bulk update before CARP may preempt", "if", name)
				d.pfsync.r.RequestBulk("pfsync bulk start (" + name + " up)")
			}
			d.runner.Do(func(n *carp.Node) { n.SetParentUp(name, up) })
		}
	}
}
