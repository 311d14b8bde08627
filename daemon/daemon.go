// Package daemon is pfcarp's long-running process (`pfcarp run`): it loads
// one node's config, exempts its own protocols from connection tracking,
// runs the CARP groups over raw sockets, moves the virtual addresses as the
// groups change state, watches the parent interfaces' carrier, runs the
// user's transition commands, and answers the CLI on a control socket.
//
// daemon wires the other packages together; it owns no protocol logic of its
// own (that is carp's) and never touches nftables tables other than its own
// pfcarp_ha table.
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/pfcarp/pfcarp/carp"
	"github.com/pfcarp/pfcarp/config"
	"github.com/pfcarp/pfcarp/internal/clock"
	"github.com/pfcarp/pfcarp/vip"
)

// Options configure Run.
type Options struct {
	ConfigPath string
	// Socket overrides the control socket path (else the config's
	// pfcarp_control_socket, else $PFCARP_SOCKET, else DefaultSocket).
	Socket string
	Logger *slog.Logger
	Clock  clock.Clock // nil: the real clock
	// NewTransport opens CARP's transport on a parent interface; nil means
	// raw IP protocol 112 sockets. Tests substitute in-memory ones.
	NewTransport func(parent string, v4, v6 bool) (carp.Transport, error)
}

// daemon is one running node. Fields are set up by Run and read-only after,
// except where noted.
type daemon struct {
	cfg    *config.Node
	log    *slog.Logger
	clk    clock.Clock
	runner *carp.Runner // nil when no CARP group is configured
	pfsync *pfsyncRun   // nil when pfsync is off
	// names maps (parent, vhid) to the group's carpN name ("" for the
	// FreeBSD >= 10 form).
	names   map[groupKey]string
	started time.Time

	hooks sync.WaitGroup // transition commands still running
}

type groupKey struct {
	parent string
	vhid   uint8
}

// Run runs the daemon until ctx is done, then leaves cleanly: CARP masters
// bow out (advbase 255, advskew 255) so the peer takes over at once, the
// virtual addresses are released, and the daemon's nftables table and
// control socket are removed.
func Run(ctx context.Context, o Options) error {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	cfg, diags := config.LoadFile(o.ConfigPath, nil)
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
		return err
	}
	d := &daemon{cfg: cfg, log: log, clk: o.Clock, names: map[groupKey]string{}, started: time.Now()}
	if d.clk == nil {
		d.clk = clock.Real{}
	}

	sock := o.Socket
	if sock == "" {
		sock = cfg.ControlSocket
	}
	if sock == "" {
		sock = SocketPath()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, d.status()) })
	cs, err := listenControl(sock, mux, log)
	if err != nil {
		return err
	}
	defer cs.close()

	if cfg.CARPVMAC {
		log.Warn("carp_vmac: virtual MACs (macvlan carpN with 00:00:5e:00:01:vhid) are not implemented; the parent's own MAC is used and gratuitous ARP moves the addresses")
	}
	if err := d.setForwarding(); err != nil {
		return err
	}
	if len(cfg.CARP) > 0 || cfg.Pfsync != nil {
		if err := installHA(nil); err != nil {
			return err
		}
		defer func() {
			if err := removeHA(); err != nil {
				log.Warn("cleanup", "err", err)
			}
		}()
	}
	// pf before CARP: a node must filter and translate before it can
	// become MASTER. pflog before pf, so the first logged packets land.
	if cfg.Pflog.Enable {
		pl, err := d.startPflog()
		if err != nil {
			return err
		}
		defer pl.Close()
	}
	if cfg.PF.Enable {
		if err := d.loadPF(); err != nil {
			return err
		}
	}
	if len(cfg.CARP) > 0 {
		newTr := o.NewTransport
		if newTr == nil {
			newTr = func(parent string, v4, v6 bool) (carp.Transport, error) { return carp.ListenRaw(parent, v4, v6) }
		}
		if err := d.startCARP(newTr); err != nil {
			return err
		}
	}
	if cfg.Pfsync != nil { // pfsync_linux.go; closed before CARP stops
		if d.pfsync, err = d.startPfsync(); err != nil {
			return err
		}
	}

	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Add(1)
	go func() { defer wg.Done(); errc <- cs.serve() }()
	monCtx, stopMon := context.WithCancel(ctx)
	if d.runner != nil {
		wg.Add(1)
		go func() { defer wg.Done(); errc <- d.watchLinks(monCtx) }()
	}
	log.Info("pfcarp running", "config", o.ConfigPath, "socket", sock, "carp_groups", len(cfg.CARP))

	// SIGHUP reloads pf_rules, as `service pf reload` does; a ruleset
	// that fails leaves the loaded one in place.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
loop:
	for {
		select {
		case <-ctx.Done():
			err = nil
			break loop
		case err = <-errc:
			break loop
		case <-hup:
			if !cfg.PF.Enable {
				log.Info("SIGHUP: pf_enable is off; nothing to reload")
				continue
			}
			if rerr := d.loadPF(); rerr != nil {
				log.Error("reload failed; the loaded ruleset is unchanged", "err", rerr)
			}
		}
	}
	log.Info("pfcarp stopping")
	stopMon()
	if d.pfsync != nil {
		d.pfsync.close()
	}
	if d.runner != nil {
		// Close bows out and releases the addresses before returning.
		if cerr := d.runner.Close(); cerr != nil {
			log.Warn("carp shutdown", "err", cerr)
		}
	}
	cs.close()
	wg.Wait()
	d.hooks.Wait()
	return err
}

func (d *daemon) startCARP(newTr func(string, bool, bool) (carp.Transport, error)) error {
	// Which address families each parent carries.
	fams := map[string][2]bool{}
	for _, g := range d.cfg.CARP {
		f := fams[g.Dev]
		for _, v := range g.VIPs {
			f[0] = f[0] || v.Prefix.Addr().Is4()
			f[1] = f[1] || v.Prefix.Addr().Is6()
		}
		fams[g.Dev] = f
	}
	trs := map[string]carp.Transport{}
	owners := map[string]*vip.Owner{}
	closeAll := func() {
		for _, t := range trs {
			t.Close()
		}
	}
	for _, g := range d.cfg.CARP {
		if _, ok := trs[g.Dev]; ok {
			continue
		}
		t, err := newTr(g.Dev, fams[g.Dev][0], fams[g.Dev][1])
		if err != nil {
			closeAll()
			return fmt.Errorf("%s: %s: %w", g.Pos, g.Label(), err)
		}
		trs[g.Dev] = t
		owners[g.Dev] = vip.NewOwner(g.Dev, d.log)
	}
	r, err := carp.NewRunner(carp.RunnerOptions{
		Clock: d.clk, Logger: d.log, Transports: trs,
		Actions: &actions{d: d, owners: owners},
	})
	if err != nil {
		closeAll()
		return err
	}
	for _, g := range d.cfg.CARP {
		cc := carp.Config{
			VHID: uint8(g.VHID), AdvBase: uint8(g.AdvBase), AdvSkew: uint8(g.AdvSkew),
			Pass: g.Pass, Preempt: d.cfg.Preempt, Parent: g.Dev,
		}
		for _, v := range g.VIPs {
			cc.VIPs = append(cc.VIPs, v.Prefix)
		}
		if g.Peer.Is4() {
			cc.Peer = g.Peer
		} else if g.Peer.IsValid() {
			cc.Peer6 = g.Peer
		}
		if _, err := r.Node().AddGroup(cc); err != nil {
			closeAll()
			return fmt.Errorf("%s: %s: %w", g.Pos, g.Label(), err)
		}
		d.names[groupKey{g.Dev, uint8(g.VHID)}] = g.Name
	}
	d.runner = r
	r.Start()
	return nil
}

// setForwarding applies gateway_enable / ipv6_gateway_enable.
func (d *daemon) setForwarding() error {
	set := func(path string, on bool) error {
		v := "0\n"
		if on {
			v = "1\n"
		}
		if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
			return fmt.Errorf("gateway_enable: %w", err)
		}
		return nil
	}
	if d.cfg.GatewayEnablePos.IsValid() {
		if err := set("/proc/sys/net/ipv4/ip_forward", d.cfg.GatewayEnable); err != nil {
			return err
		}
	}
	if d.cfg.IPv6GatewayEnable {
		if err := set("/proc/sys/net/ipv6/conf/all/forwarding", true); err != nil {
			return err
		}
	}
	return nil
}
