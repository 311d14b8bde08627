package daemon

import (
	"fmt"
	"hash/fnv"
	"os"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/pfcarp/pfcarp/carp"
	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/pfsync"
)

// pfsyncRun is the daemon's pfsync: a Runner over the sync interface, the
// kernel's conntrack events, and a watch on the sync interface's carrier
// (a healed sync link starts a bulk update).
type pfsyncRun struct {
	r    *pfsync.Runner
	ct   *pfsync.Conntrack
	stop chan struct{}
	wg   sync.WaitGroup
}

// startPfsync starts pfsync as configured by ifconfig_pfsync0 and
// pfsync_key. CARP demotion during bulk updates goes to the CARP runner
// (when there is one). Call after startCARP.
func (d *daemon) startPfsync() (*pfsyncRun, error) {
	pc := d.cfg.Pfsync
	if !pc.Up && pc.SyncDev == "" && !pc.SyncPeer.IsValid() {
		d.log.Info("pfsync0 is not up: state synchronisation off")
		return nil, nil
	}
	if pc.Defer {
		d.log.Warn("pfsync: defer is not supported (the kernel cannot hold a flow's first packet until the peer acknowledges it); ignored")
	}
	if len(d.cfg.PfsyncKey) == 0 {
		d.log.Warn("pfsync: no pfsync_key: sync messages are unauthenticated, as in BSD pfsync")
	}
	ct, err := pfsync.DialConntrack()
	if err != nil {
		return nil, fmt.Errorf("%s: pfsync: %w", pc.Pos, err)
	}
	tr, err := pfsync.ListenRaw(pc.SyncDev, pc.SyncPeer)
	if err != nil {
		ct.Close()
		return nil, fmt.Errorf("%s: %w", pc.Pos, err)
	}
	o := pfsync.Options{
		Clock: d.clk, Logger: d.log, Table: &pfsync.KernelTable{CT: ct, NoSyncMask: pfsync.NoSyncMark},
		Key: d.cfg.PfsyncKey, NodeID: nodeID(d.cfg.Hostname), NoSyncMask: pfsync.NoSyncMark,
		MaxUpd: pc.MaxUpd, SyncDev: pc.SyncDev, SyncPeer: pc.SyncPeer,
		// a change whose conntrack event was lost unreported is synced
		// within this interval, at the cost of a table dump per interval
		ResyncInterval: pfsync.DefaultResyncInterval,
	}
	if d.cfg.PF.Enable {
		// sticky-address bindings live in pf's nftables table
		o.Sticky = &pfsync.KernelSticky{NFT: nft.Open()}
	}
	if d.runner != nil {
		// Called on pfsync's loop; CARP's loop never waits on pfsync, and
		// Do returns false once CARP has stopped.
		//
		// A node that is MASTER of a group when a bulk update starts (the
		// sync link healed under a working master) is not demoted: the
		// traffic, and so the freshest states, are its own, and demoting
		// it would hand the groups to a backup that missed updates too.
		// demoted (pfsync's loop only) pairs the lift with the demotion.
		demoted := false
		o.Demote = func(delta int, reason string) {
			d.runner.Do(func(n *carp.Node) {
				switch {
				case delta > 0 && isMaster(n):
					d.log.Info("pfsync: bulk update without CARP demotion: this node is MASTER", "reason", reason)
					return
				case delta > 0:
					demoted = true
				case !demoted:
					return
				default:
					demoted = false
				}
				n.Demote(delta, reason)
			})
		}
	}
	r, err := pfsync.NewRunner(o, tr)
	if err != nil {
		tr.Close()
		ct.Close()
		return nil, err
	}
	p := &pfsyncRun{r: r, ct: ct, stop: make(chan struct{})}
	r.Start()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := pfsync.Watch(r, p.stop, nil); err != nil {
			d.log.Error("pfsync: conntrack events", "err", err)
		}
	}()
	if pc.SyncDev != "" {
		p.wg.Add(1)
		go func() { defer p.wg.Done(); p.watchLink(d, pc.SyncDev) }()
	}
	d.log.Info("pfsync running", "syncdev", pc.SyncDev, "syncpeer", pc.SyncPeer, "maxupd", o.MaxUpd, "authenticated", len(o.Key) > 0)
	return p, nil
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

// watchLink requests a bulk update whenever the sync interface comes back
// up after being down. A subscription that ends (the socket overran) is
// made again; its first report (ListExisting) then counts as a change when
// it differs from the last state seen.
//
// The carrier-down report can be missing: the kernel's linkwatch reports
// carrier changes of most devices (those whose ifindex equals their iflink:
// physical NICs, and a veth whose peer happens to have the same ifindex in
// its namespace) at most once a second, and a loss and return within that
// second reach user space as one report showing the link up. So a report is
// also a return when the interface's carrier-up count
// (IFLA_CARRIER_UP_COUNT) grew since the last one.
func (p *pfsyncRun) watchLink(d *daemon, dev string) {
	known, wasUp := false, false
	var ups uint32
	upsKnown := false
	for {
		ch := make(chan netlink.LinkUpdate, 64)
		done := make(chan struct{})
		err := netlink.LinkSubscribeWithOptions(ch, done, netlink.LinkSubscribeOptions{
			ListExisting:  true,
			ErrorCallback: func(err error) { d.log.Debug("pfsync: sync link watch", "err", err) },
		})
		if err != nil {
			d.log.Warn("pfsync: cannot watch the sync link", "syncdev", dev, "err", err)
			close(done)
			return
		}
	recv:
		for {
			select {
			case <-p.stop:
				close(done)
				return
			case u, ok := <-ch:
				if !ok {
					break recv
				}
				if u.Attrs().Name != dev {
					continue
				}
				up := u.Header.Type != unix.RTM_DELLINK && u.IfInfomsg.Flags&unix.IFF_UP != 0 && u.IfInfomsg.Flags&unix.IFF_LOWER_UP != 0
				n, ok := carrierUpCount(u.Attrs().Index)
				flapped := ok && upsKnown && n != ups
				if ok {
					ups, upsKnown = n, true
				}
				if known && up && (!wasUp || flapped) {
					d.log.Info("pfsync: sync link up again: requesting a bulk update", "syncdev", dev, "down_seen", !wasUp)
					p.r.LinkUp()
				}
				known, wasUp = true, up
			}
		}
		close(done)
		d.log.Warn("pfsync: sync link watch ended; watching again", "syncdev", dev)
		select {
		case <-p.stop:
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// carrierUpCount asks the kernel how often interface index gained its
// carrier (IFLA_CARRIER_UP_COUNT, Linux 4.16 on); ok false when it cannot
// tell.
func carrierUpCount(index int) (n uint32, ok bool) {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK)
	m := nl.NewIfInfomsg(unix.AF_UNSPEC)
	m.Index = int32(index)
	req.AddData(m)
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil || len(msgs) == 0 || len(msgs[0]) < unix.SizeofIfInfomsg {
		return 0, false
	}
	attrs, err := nl.ParseRouteAttr(msgs[0][unix.SizeofIfInfomsg:])
	if err != nil {
		return 0, false
	}
	for _, a := range attrs {
		if a.Attr.Type == unix.IFLA_CARRIER_UP_COUNT && len(a.Value) >= 4 {
			return nl.NativeEndian().Uint32(a.Value), true
		}
	}
	return 0, false
}

func (p *pfsyncRun) close() {
	close(p.stop)
	p.wg.Wait()
	p.r.Close()
	p.ct.Close()
}

// nodeID derives the wire sender id from the host name (the epoch, the
// start time, tells restarts apart).
func nodeID(hostname string) uint32 {
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	h := fnv.New32a()
	fmt.Fprintf(h, "%s/%d", hostname, os.Getpid())
	if v := h.Sum32(); v != 0 {
		return v
	}
	return 1
}
