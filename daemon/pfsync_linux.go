package daemon

import (
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"sync"

	"github.com/pfcarp/pfcarp/config"
	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/pfsync"
)

// pfsyncRun is the daemon's pfsync: a Runner over the sync interface and
// the kernel's conntrack events. The sync link's carrier is watched by the
// daemon's link watcher, which calls LinkUp.
type pfsyncRun struct {
	*pfsync.Runner
	ct   *pfsync.Conntrack
	log  *slog.Logger
	stop chan struct{}
	wg   sync.WaitGroup
	// liberal serialises TakeOver's passes; one asked for while another
	// runs is not needed (what the running one misses is newer than it).
	liberal sync.Mutex
}

// StartPfsync implements System: pfsync as configured by ifconfig_pfsync0
// and pfsync_key.
func (s *LinuxSystem) StartPfsync(cfg *config.Node, h SyncHooks) (Syncer, error) {
	pc := cfg.Pfsync
	log := h.Logger
	if !pc.Up && pc.SyncDev == "" && !pc.SyncPeer.IsValid() {
		log.Info("pfsync0 is not up: state synchronisation off")
		return nil, nil
	}
	if pc.Defer {
		if err := pfsync.DeferSupported(); err != nil {
			log.Warn("pfsync: defer ignored", "err", err)
		} else {
			log.Warn("pfsync: defer ignored: the kernel has what it needs, but pfcarp does not queue new connections to pfsync yet")
		}
	}
	if len(cfg.PfsyncKey) == 0 {
		log.Warn("pfsync: no pfsync_key: sync messages are unauthenticated, as in BSD pfsync")
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
		Clock: h.Clock, Logger: log, Table: &pfsync.KernelTable{CT: ct, NoSyncMask: pfsync.NoSyncMark},
		Key: cfg.PfsyncKey, NodeID: nodeID(cfg.Hostname), NoSyncMask: pfsync.NoSyncMark,
		MaxUpd: pc.MaxUpd, SyncDev: pc.SyncDev, SyncPeer: pc.SyncPeer,
		// a change whose conntrack event was lost unreported is synced
		// within this interval, at the cost of a table dump per interval
		ResyncInterval: pfsync.DefaultResyncInterval,
		Demote:         h.Demote,
	}
	if cfg.PF.Enable {
		// sticky-address bindings live in pf's nftables table, read off
		// the loop (a dump takes milliseconds)
		o.Sticky = &pfsync.KernelSticky{NFT: nft.Open()}
		o.StickyAsync = true
	}
	r, err := pfsync.NewRunner(o, tr)
	if err != nil {
		tr.Close()
		ct.Close()
		return nil, err
	}
	p := &pfsyncRun{Runner: r, ct: ct, log: log, stop: make(chan struct{})}
	r.Start()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := pfsync.Watch(r, p.stop, nil); err != nil {
			log.Error("pfsync: conntrack events", "err", err)
		}
	}()
	log.Info("pfsync running", "syncdev", pc.SyncDev, "syncpeer", pc.SyncPeer, "maxupd", o.MaxUpd, "authenticated", len(o.Key) > 0)
	return p, nil
}

// TakeOver implements Syncer: every TCP entry is made liberal
// (pfsync.Conntrack.Liberalize), in the background, so that connections
// the peer carried on while this node was not master (a split brain, a
// failback) are not taken for out of window here.
func (p *pfsyncRun) TakeOver() {
	if !p.liberal.TryLock() {
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer p.liberal.Unlock()
		n, err := p.ct.Liberalize()
		if err != nil {
			p.log.Warn("pfsync: taking over: marking states liberal", "err", err, "marked", n)
			return
		}
		if n > 0 {
			p.log.Info("pfsync: taking over: states marked liberal (their windows may have moved on the peer)", "states", n)
		}
	}()
}

func (p *pfsyncRun) Close() {
	close(p.stop)
	p.wg.Wait()
	// The last states go out here: a failed flush is worth a line, the
	// peer's next bulk update repairs it.
	if err := p.Runner.Close(); err != nil {
		p.log.Warn("pfsync: flushing at close", "err", err)
	}
	p.ct.Close()
}

// nodeID derives the wire sender id from the host name (the epoch, the
// start time, tells restarts apart).
func nodeID(hostname string) uint32 {
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	h := fnv.New32a()
	_, _ = fmt.Fprintf(h, "%s/%d", hostname, os.Getpid()) // a hash's Write never fails
	if v := h.Sum32(); v != 0 {
		return v
	}
	return 1
}
