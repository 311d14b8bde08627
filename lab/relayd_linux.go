package lab

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/pfcarp/pfcarp/daemon"
)

// RelaydHost returns the host named name in node's relayd status (the
// daemon's GET /v1/relayd, what `pfcarp relayctl show hosts` prints).
func (l *Lab) RelaydHost(ctx context.Context, node, name string) (daemon.RelaydHost, error) {
	var st daemon.RelaydStatus
	if err := daemon.NewClient(l.SocketPath(node)).Get(ctx, "/v1/relayd", &st); err != nil {
		return daemon.RelaydHost{}, err
	}
	for _, h := range st.Hosts {
		if h.Name == name {
			return h, nil
		}
	}
	return daemon.RelaydHost{}, fmt.Errorf("%s: relayd has no host %s", node, name)
}

// WaitPool polls node's relayd (every 10 ms) until host name is in the
// pool its last sync put in the kernel (in) or out of it, and returns
// when it saw that.
func (l *Lab) WaitPool(ctx context.Context, node, name string, in bool) (time.Time, error) {
	for {
		h, err := l.RelaydHost(ctx, node, name)
		if err == nil && h.InPool == in {
			return time.Now(), nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("%s: host %s in pool %v: %w (last: %+v, %v)", node, name, in, ctx.Err(), h, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// SetUnreachable makes node's routes to addrs unreachable (on) or removes
// those routes: node, and only node, stops reaching those hosts (its
// connections to them fail at once), as when its link to them breaks.
func (l *Lab) SetUnreachable(node string, addrs []netip.Addr, on bool) error {
	return l.InNode(node, func() error {
		for _, a := range addrs {
			r := &netlink.Route{Dst: netlink.NewIPNet(a.AsSlice()), Type: unix.RTN_UNREACHABLE, Table: unix.RT_TABLE_MAIN}
			var err error
			if on {
				err = netlink.RouteAdd(r)
			} else {
				err = netlink.RouteDel(r)
			}
			if err != nil {
				return fmt.Errorf("%s: route to %v unreachable (%v): %w", node, a, on, err)
			}
		}
		return nil
	})
}
