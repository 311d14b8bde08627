package daemon

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/pfcarp/pfcarp/carp"
	"github.com/pfcarp/pfcarp/compile"
	"github.com/pfcarp/pfcarp/config"
	"github.com/pfcarp/pfcarp/netdb"
	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/pfload"
	"github.com/pfcarp/pfcarp/pflog"
	"github.com/pfcarp/pfcarp/tc"
	"github.com/pfcarp/pfcarp/vip"
)

// LinuxSystem is the System of a Linux host: netlink, nftables, conntrack.
type LinuxSystem struct {
	Logger *slog.Logger
}

func (s *LinuxSystem) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// SetForwarding implements System.
// SetPriority implements System. Linux keeps a nice value per thread
// (setpriority(2) with PRIO_PROCESS and a thread id), and a new thread
// takes its creator's: every thread of the process is set, then the list
// read again until no new one appeared in between.
func (s *LinuxSystem) SetPriority(nice int) error {
	done := map[int]bool{}
	for pass := 0; pass < 5; pass++ {
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("pfcarp_nice: %w", err)
		}
		fresh := 0
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil || done[tid] {
				continue
			}
			fresh++
			if err := unix.Setpriority(unix.PRIO_PROCESS, tid, nice); err != nil && err != unix.ESRCH {
				return fmt.Errorf("pfcarp_nice=%d: setpriority: %w (lowering it needs CAP_SYS_NICE)", nice, err)
			}
			done[tid] = true
		}
		if fresh == 0 {
			return nil
		}
	}
	return nil
}

func (s *LinuxSystem) SetForwarding(cfg *config.Node) error {
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
	if cfg.GatewayEnablePos.IsValid() {
		if err := set("/proc/sys/net/ipv4/ip_forward", cfg.GatewayEnable); err != nil {
			return err
		}
	}
	if cfg.IPv6GatewayEnable {
		if err := set("/proc/sys/net/ipv6/conf/all/forwarding", true); err != nil {
			return err
		}
	}
	return nil
}

// InstallHA implements System.
func (s *LinuxSystem) InstallHA(vips []netip.Addr) error { return installHA(vips) }

// RemoveHA implements System.
func (s *LinuxSystem) RemoveHA() error { return removeHA() }

// OpenLease implements System.
func (s *LinuxSystem) OpenLease(ttl time.Duration) (Lease, error) { return openLease(ttl) }

// VIPs implements System.
func (s *LinuxSystem) VIPs(parent string) VIPOwner { return vip.NewOwner(parent, s.log()) }

// NewTransport implements System: raw IP protocol 112 sockets.
func (s *LinuxSystem) NewTransport(parent string, v4, v6 bool) (carp.Transport, error) {
	return carp.ListenRaw(parent, v4, v6)
}

// LoadPF implements System: pf_rules (read by readPF) into the kernel in
// one transaction with their load anchor files, as rc.d/pf does at boot
// with pf_enable="YES". A ruleset the kernel cannot enforce changes nothing
// and is an error that names the rules and their lines. The rules stay in
// the kernel when the daemon exits, as pf's do: the kernel is the data
// plane.
func (s *LinuxSystem) LoadPF(cfg *config.Node, rs *pfload.Ruleset) error {
	prog, err := compile.CompileLoad(rs, compile.Options{Queues: tc.Kernel})
	if err != nil {
		return fmt.Errorf("pf_rules: the kernel cannot enforce this ruleset, nothing loaded: %w", err)
	}
	for _, w := range prog.Warnings {
		s.log().Warn("pf rule loaded with a difference from pf", "pf_rules", rs.Name, "warning", w)
	}
	for _, a := range prog.Anchors {
		for _, w := range a.Warnings {
			s.log().Warn("pf rule loaded with a difference from pf", "pf_rules", rs.Name, "anchor", a.Anchor, "warning", w)
		}
	}
	// (if) sets are filled with the interfaces' addresses as the node sees
	// them (carpN: its virtual addresses).
	if err := nft.Open(nft.WithHost(rs.Host)).Load(prog); err != nil {
		return fmt.Errorf("pf_rules: %w", err)
	}
	if err := tc.Apply(prog.Queues); err != nil { // the queues' qdiscs
		return fmt.Errorf("pf_rules: %w", err)
	}
	return nil
}

// defaultPflogFile is FreeBSD's pflogd default.
const defaultPflogFile = "/var/log/pflog"

// StartPflog implements System: packets of `log` rules to pflog_logfile.
func (s *LinuxSystem) StartPflog(cfg *config.Node, log *slog.Logger) (io.Closer, error) {
	path := cfg.Pflog.Logfile
	if path == "" {
		path = defaultPflogFile
	}
	l, err := pflog.Open(path, compile.DefaultLogGroup, pflog.Config{
		Logf: func(format string, args ...any) { log.Warn("pflog: " + fmt.Sprintf(format, args...)) },
	})
	if err != nil {
		return nil, fmt.Errorf("pflog_logfile: %w", err)
	}
	log.Info("pflog running", "file", path, "nflog_group", compile.DefaultLogGroup)
	return l, nil
}

// Links implements System.
func (s *LinuxSystem) Links() LinkSource { return netlinkLinks{} }

// netlinkLinks subscribes to RTNLGRP_LINK.
type netlinkLinks struct{}

func (netlinkLinks) Subscribe(done <-chan struct{}) (<-chan LinkState, <-chan error, error) {
	ch := make(chan netlink.LinkUpdate, 64)
	errs := make(chan error, 8)
	if err := netlink.LinkSubscribeWithOptions(ch, done, netlink.LinkSubscribeOptions{
		ListExisting: true,
		// The library skips what it reports here (a message from a
		// user-space sender, an interrupted dump) and carries on; a dead
		// subscription closes ch instead.
		ErrorCallback: func(err error) {
			select {
			case errs <- err:
			default:
			}
		},
	}); err != nil {
		return nil, nil, fmt.Errorf("watching links: %w", err)
	}
	out := make(chan LinkState, 64)
	go func() {
		defer close(out)
		for u := range ch {
			st := LinkState{
				Name: u.Attrs().Name, Index: u.Attrs().Index, Deleted: u.Header.Type == unix.RTM_DELLINK,
				Up: u.Flags&unix.IFF_UP != 0 && u.Flags&unix.IFF_LOWER_UP != 0,
			}
			if !st.Deleted {
				st.CarrierUps, st.HasUps = carrierUpCount(st.Index)
			}
			select {
			case out <- st:
			case <-done:
				// drain so the library's reader can see done and stop
				for range ch {
				}
				return
			}
		}
	}()
	return out, errs, nil
}

// carrierUpCount asks the kernel how often interface index gained its
// carrier (IFLA_CARRIER_UP_COUNT, Linux 4.16 on); ok false when it cannot
// tell. The library's link reports do not carry it.
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

// PFStats implements System.
func (s *LinuxSystem) PFStats() (*PFStats, error) {
	rs, err := nft.Open().Read()
	if err != nil {
		return nil, err
	}
	out := &PFStats{Enabled: rs.Enabled}
	for _, r := range rs.Records {
		st := rs.Stats[nft.Ref{Kind: r.Kind, Nr: r.Nr}]
		if st == nil {
			st = &nft.Stats{}
		}
		out.Rules = append(out.Rules, PFRuleStat{Kind: r.Kind.String(), Nr: r.Nr, Label: strings.Join(r.Labels, ","), Text: r.Text,
			Packets: st.Matched.Packets, Bytes: st.Matched.Bytes, Evaluations: st.Evaluations})
	}
	tables, err := pfTables()
	if err != nil {
		return nil, err
	}
	out.Tables = tables
	if b, err := os.ReadFile("/proc/sys/net/netfilter/nf_conntrack_count"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			out.States, out.StatesOK = n, true
		}
	}
	return out, nil
}

// pfTables reads the size of every pf table, in the main ruleset and in
// each anchor, as pfctl -s Tables and -T show see them
// (cli/pfctl_show_linux.go).
func pfTables() ([]PFTableStat, error) {
	anchors, err := nft.Open().Anchors()
	if err != nil {
		return nil, err
	}
	var out []PFTableStat
	for _, a := range append([]string{""}, anchors...) {
		c := nft.Open(nft.WithAnchor(a))
		names, err := c.Tables()
		if err != nil {
			return nil, fmt.Errorf("anchor %q: %w", a, err)
		}
		for _, n := range names {
			size, err := c.TableSize(n, TableSizeLimit)
			if errors.Is(err, nft.ErrTableTooLarge) {
				size = -1
			} else if err != nil {
				return nil, err
			}
			out = append(out, PFTableStat{Anchor: a, Name: n, Entries: size})
		}
	}
	return out, nil
}

// WatchAddrs implements System over RTNLGRP_IPV4_IFADDR/IPV6_IFADDR.
func (s *LinuxSystem) WatchAddrs(done <-chan struct{}) (<-chan struct{}, error) {
	ch := make(chan netlink.AddrUpdate, 64)
	if err := netlink.AddrSubscribeWithOptions(ch, done, netlink.AddrSubscribeOptions{
		ErrorCallback: func(err error) { s.log().Debug("watching addresses", "err", err) },
	}); err != nil {
		return nil, fmt.Errorf("watching addresses: %w", err)
	}
	out := make(chan struct{}, 1)
	go func() {
		defer close(out)
		for range ch {
			select {
			case out <- struct{}{}:
			default: // one pending report stands for any number
			}
		}
	}()
	return out, nil
}

// RefreshPFAddrs implements System.
func (s *LinuxSystem) RefreshPFAddrs(cfg *config.Node) (int, error) {
	return nft.Open().RefreshDynIf(cfg.Host(netdb.System()))
}

// LoadAnchor implements System: one anchor replaced in one transaction.
func (s *LinuxSystem) LoadAnchor(p *nft.Program) error { return nft.Open().LoadAnchor(p) }

// StickyBindings implements System.
func (s *LinuxSystem) StickyBindings(prefix string) ([]nft.StickyElem, error) {
	els, err := nft.Open().StickyElems()
	if err != nil {
		return nil, err
	}
	var out []nft.StickyElem
	for _, e := range els {
		if strings.HasPrefix(e.Map, strings.TrimSuffix(nft.AnchorSet(prefix, ""), ":")) {
			out = append(out, e)
		}
	}
	return out, nil
}

// SetSticky implements System.
func (s *LinuxSystem) SetSticky(e nft.StickyElem) error { return nft.Open().SetStickyElem(e) }

// ForgetStickyBackends implements System, as relayd's kill_srcnodes
// (pfe_filter.c) kills the source nodes whose translation is a host that
// went down: each binding of a sticky map under prefix whose backend is in
// addrs is deleted, so its source is given a live host by its next
// connection.
func (s *LinuxSystem) ForgetStickyBackends(prefix string, addrs []netip.Addr) (int, error) {
	c := nft.Open()
	els, err := c.StickyElems()
	if err != nil {
		return 0, err
	}
	gone := map[netip.Addr]bool{}
	for _, a := range addrs {
		gone[a] = true
	}
	n := 0
	for _, e := range els {
		if !gone[e.Backend] || !strings.HasPrefix(e.Map, strings.TrimSuffix(nft.AnchorSet(prefix, ""), ":")) {
			continue
		}
		if err := c.DeleteStickyElem(e); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
