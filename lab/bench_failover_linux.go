package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
)

// failFault is one fault of the failover step. failback is measured in the
// lab of the cable pull, when the cable is plugged back.
type failFault struct{ name string }

var failoverFaults = []failFault{{"cable pull"}, {"SIGKILL"}, {"graceful stop"}, {"failback"}}

// failoverRates are the new connections per second during a fault.
var failoverRates = []int{300, 1000}

// failName names a failover figure.
func failName(impl, fault string, rate int, what string) string {
	return fmt.Sprintf("%s %s @%d/s: %s", impl, fault, rate, what)
}

// failImpl is one HA stack of the failover step.
type failImpl struct {
	name  string
	setup func(ctx context.Context, b *Bench) (*Lab, error)
	kill  func(l *Lab) error // SIGKILL lb1's daemon(s)
	stop  func(l *Lab) error // graceful stop of lb1's HA daemon
}

func failImpls() []failImpl {
	return []failImpl{
		{"pfcarp", func(ctx context.Context, b *Bench) (*Lab, error) { return b.pfcarpCluster(ctx, true) },
			func(l *Lab) error { return l.KillDaemon("lb1") },
			func(l *Lab) error { return l.StopDaemon("lb1", 5*time.Second) }},
		{"keepalived", setupKeepalived, killKeepalived, stopKeepalived},
	}
}

// streamLoad opens rate new connections per second from the client to
// dst:80, each fetching /stream for secs seconds (so connections are open
// across the fault), and counts those that fail: a refused, reset or
// timed-out connection, or a short answer.
type streamLoad struct {
	wg                      sync.WaitGroup
	stop                    chan struct{}
	started, failed, resets atomic.Int64
	mu                      sync.Mutex
	firstErr                error
}

const streamRate = 2000 // bytes per second of each stream

func startStreamLoad(l *Lab, dst netip.Addr, rate int, secs int) *streamLoad {
	s := &streamLoad{stop: make(chan struct{})}
	srcs := l.plan.ClientAddrs()
	url := fmt.Sprintf("/stream?seconds=%d&rate=%d", secs, streamRate)
	want := int64(secs * streamRate)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(time.Second / time.Duration(rate))
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
			s.started.Add(1)
			s.wg.Add(1)
			go func(src netip.Addr) {
				defer s.wg.Done()
				if err := streamOnce(l, src, dst, url, want, time.Duration(secs)*time.Second+8*time.Second); err != nil {
					s.failed.Add(1)
					if errors.Is(err, syscall.ECONNRESET) {
						s.resets.Add(1)
					}
					s.mu.Lock()
					if s.firstErr == nil {
						s.firstErr = err
					}
					s.mu.Unlock()
				}
			}(srcs[i%len(srcs)])
		}
	}()
	return s
}

// finish stops new connections and waits for those in flight.
func (s *streamLoad) finish() {
	close(s.stop)
	s.wg.Wait()
}

func streamOnce(l *Lab, src, dst netip.Addr, path string, want int64, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := l.DialFrom(ctx, "client", src, "tcp", netip.AddrPortFrom(dst, 80).String())
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }() // the answer is read whole first
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, dst); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }() // read whole below
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return err
	}
	if n != want {
		return fmt.Errorf("short answer: %d of %d bytes", n, want)
	}
	return nil
}

// hasAddr reports whether node's iface holds a.
func hasAddr(l *Lab, node, iface string, a netip.Addr) (bool, error) {
	h, ns, err := l.nsHandle(node)
	if err != nil {
		return false, err
	}
	defer ns.Close()
	defer h.Close()
	link, err := h.LinkByName(iface)
	if err != nil {
		return false, err
	}
	as, err := h.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return false, err
	}
	for _, x := range as {
		if y, ok := netip.AddrFromSlice(x.IP); ok && y.Unmap() == a {
			return true, nil
		}
	}
	return false, nil
}

// waitVIP polls until the external VIP is on node's eth0 and, when
// gone is set, no longer on gone's; it returns when.
func waitVIP(ctx context.Context, l *Lab, node, gone string, within time.Duration) (time.Time, error) {
	vip := l.extVIP()
	deadline := time.Now().Add(within)
	for {
		on, err := hasAddr(l, node, "eth0", vip)
		if err != nil {
			return time.Time{}, err
		}
		off := true
		if gone != "" {
			g, err := hasAddr(l, gone, "eth0", vip)
			if err != nil {
				return time.Time{}, err
			}
			off = !g
		}
		if on && off {
			return time.Now(), nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return time.Time{}, fmt.Errorf("VIP %s not on %s within %v", vip, node, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// benchFailover measures, for each HA stack, fault and rate, the takeover
// time (fault to the VIP on the new master's interface, the old one's gone
// for failback) and the connections that failed among those opened from
// warm-up until the load ends.
func benchFailover(ctx context.Context, b *Bench, r *Report) error {
	rates, secs, warm := failoverRates, 3, 1500*time.Millisecond
	scen := []string{"cable pull", "SIGKILL", "graceful stop"}
	if b.Quick {
		rates, secs, warm = []int{300}, 2, time.Second
		scen = []string{"cable pull"}
	}
	for run := 0; run < b.runs(); run++ {
		for _, impl := range failImpls() {
			for _, rate := range rates {
				for _, sc := range scen {
					if err := ctx.Err(); err != nil {
						return err
					}
					b.logf("failover run %d: %s %s @%d/s", run+1, impl.name, sc, rate)
					if err := b.failOne(ctx, r, impl, sc, rate, secs, warm); err != nil {
						note(r, "failover", failName(impl.name, sc, rate, "failed"), "conns", err.Error())
						b.logf("failover %s %s: %v", impl.name, sc, err)
					}
					if err := Cleanup(b.Dir, b.Prefix, nil); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

func (b *Bench) failOne(ctx context.Context, r *Report, impl failImpl, sc string, rate, secs int, warm time.Duration) error {
	l, err := impl.setup(ctx, b)
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	if _, err := waitVIP(ctx, l, "lb1", "lb2", 20*time.Second); err != nil {
		return err
	}
	vip := l.extVIP()
	if err := waitTCP(ctx, l, "client", netip.AddrPortFrom(vip, 80), 5*time.Second); err != nil {
		return err
	}
	phase := func(fault string, do func() error, master, gone string) error {
		ld := startStreamLoad(l, vip, rate, secs)
		time.Sleep(warm)
		t0 := time.Now()
		if err := do(); err != nil {
			ld.finish()
			return err
		}
		at, werr := waitVIP(ctx, l, master, gone, 15*time.Second)
		time.Sleep(warm)
		ld.finish()
		if werr != nil {
			return werr
		}
		add(r, "failover", failName(impl.name, fault, rate, "takeover"), "ms", ms(at.Sub(t0)))
		add(r, "failover", failName(impl.name, fault, rate, "failed"), "conns", float64(ld.failed.Load()))
		if f := ld.failed.Load(); f > 0 {
			ld.mu.Lock()
			first := ld.firstErr
			ld.mu.Unlock()
			note(r, "failover", failName(impl.name, fault, rate, "failed"), "conns",
				fmt.Sprintf("of %d opened (%d resets); first: %v", ld.started.Load(), ld.resets.Load(), shortErr(first)))
		}
		return nil
	}
	switch sc {
	case "cable pull":
		if err := phase("cable pull", func() error { return l.SetCable("lb1", "eth0", false) }, "lb2", ""); err != nil {
			return err
		}
		// Let lb2 settle as master before the cable comes back.
		time.Sleep(time.Second)
		return phase("failback", func() error { return l.SetCable("lb1", "eth0", true) }, "lb1", "lb2")
	case "SIGKILL":
		return phase(sc, func() error { return impl.kill(l) }, "lb2", "")
	case "graceful stop":
		return phase(sc, func() error { return impl.stop(l) }, "lb2", "lb1")
	}
	return fmt.Errorf("unknown scenario %q", sc)
}

func shortErr(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}

// The keepalived+conntrackd cluster, configured as their documentation
// recommends for this topology (BENCHMARKS.md cites each setting):
//
//   - keepalived: one VRRP instance per segment (eth0 external, eth1
//     internal) in one vrrp_sync_group, so a fault of one moves both, as
//     pfcarp's demotion does; advert_int 1 and priorities 246 (lb1) and 236
//     (lb2), so the master-down interval 3 x advert_int + (256 - priority)/256
//     equals CARP's 3 x advbase + advskew/256 with the seed's advskew 10
//     and 20; preemption on (keepalived's default, as carp_preempt).
//   - the sync group's notify_master/backup/fault call primary-backup.sh,
//     written by the bench after conntrackd's documented script
//     (doc/sync/primary-backup.sh of conntrack-tools: primary: -c, -f, -R,
//     -B; backup: start if not running, -t, -n; fault: -t).
//   - conntrackd in FT-FW mode over multicast on the sync link (its
//     doc/sync/ftfw/conntrackd.conf), TCP only, ignoring the nodes' own
//     addresses (not the VIP: here the VIP is the service address).
//   - the DNAT of variant (b) on both nodes, and forwarding on.

// keepalivedConf returns lb's keepalived.conf.
func keepalivedConf(l *Lab, node string, prio int) []byte {
	ext, _ := l.plan.Segment(SegExternal)
	in, _ := l.plan.Segment(SegInternal)
	dir := l.NodeDir(node)
	var b strings.Builder
	fmt.Fprintf(&b, `# written by pfcarp lab bench
global_defs {
	router_id %s
	script_user root
	enable_script_security
}
vrrp_sync_group G1 {
	group {
		EXT
		INT
	}
	notify_master "%[2]s/primary-backup.sh primary"
	notify_backup "%[2]s/primary-backup.sh backup"
	notify_fault "%[2]s/primary-backup.sh fault"
}
`, node, dir)
	for _, x := range []struct {
		name, iface string
		seg         Segment
	}{{"EXT", "eth0", ext}, {"INT", "eth1", in}} {
		fmt.Fprintf(&b, `vrrp_instance %s {
	state BACKUP
	interface %s
	virtual_router_id 1
	priority %d
	advert_int 1
	virtual_ipaddress {
		%s dev %s
	}
}
`, x.name, x.iface, prio, netip.PrefixFrom(x.seg.VIP, x.seg.Prefix.Bits()), x.iface)
	}
	return []byte(b.String())
}

func conntrackdConf(l *Lab, node string) []byte {
	dir := l.NodeDir(node)
	syncAddr, _ := l.plan.Addr(node, "eth2")
	var ign strings.Builder
	ign.WriteString("\t\t\tIPv4_address 127.0.0.1\n")
	for _, ifc := range []string{"eth0", "eth1", "eth2"} {
		a, _ := l.plan.Addr(node, ifc)
		fmt.Fprintf(&ign, "\t\t\tIPv4_address %s\n", a)
	}
	return []byte(fmt.Sprintf(`# written by pfcarp lab bench (FT-FW mode)
Sync {
	Mode FTFW {
	}
	Multicast {
		IPv4_address 225.0.0.50
		Group 3780
		IPv4_interface %s
		Interface eth2
		SndSocketBuffer 1249280
		RcvSocketBuffer 1249280
		Checksum on
	}
}
General {
	HashSize 32768
	HashLimit 131072
	LogFile %[2]s/conntrackd.log
	Syslog off
	LockFile %[2]s/conntrackd.lock
	UNIX {
		Path %[2]s/conntrackd.ctl
	}
	NetlinkBufferSize 2097152
	NetlinkBufferSizeMaxGrowth 8388608
	Filter From Userspace {
		Protocol Accept {
			TCP
		}
		Address Ignore {
%[3]s		}
	}
}
`, syncAddr, dir, ign.String()))
}

// primaryBackupScript follows conntrackd's documented primary-backup
// sequence with this node's paths.
func primaryBackupScript(conntrackd, dir string) []byte {
	return []byte(fmt.Sprintf(`#!/bin/sh
# written by pfcarp lab bench: conntrackd's primary-backup transitions
# (conntrack-tools doc/sync/primary-backup.sh) with this node's paths.
C="%s -C %s/conntrackd.conf"
echo "$(date +%%s.%%N) $1" >>%[2]s/transitions.log
case "$1" in
primary)
	$C -c   # commit the external cache into the kernel table
	$C -f   # flush the internal and external caches
	$C -R   # resync the internal cache with the kernel table
	$C -B   # send a bulk update to the backup
	;;
backup)
	if ! $C -s >/dev/null 2>&1; then
		rm -f %[2]s/conntrackd.lock
		$C -d
	fi
	$C -t   # shorten kernel timers of zombie entries
	$C -n   # ask the primary for a resync
	;;
fault)
	$C -t
	;;
esac
exit 0
`, conntrackd, dir))
}

func setupKeepalived(ctx context.Context, b *Bench) (*Lab, error) {
	ka, err := lookTool("keepalived", "keepalived")
	if err != nil {
		return nil, err
	}
	ctd, err := lookTool("conntrackd", "conntrackd")
	if err != nil {
		return nil, err
	}
	daemons := map[string][]string{}
	for _, n := range []string{"lb1", "lb2"} {
		daemons[n] = []string{ka, "--dont-fork", "--log-console", "--log-detail", "--vrrp",
			"--use-file", "{dir}/keepalived.conf", "--pid", "{dir}/keepalived.pid", "--vrrp_pid", "{dir}/vrrp.pid"}
	}
	l, err := b.benchLab(ctx, Options{Daemons: daemons})
	if err != nil {
		return nil, err
	}
	vip := l.extVIP()
	var pool []netip.Addr
	for _, s := range l.plan.Servers() {
		a, _ := l.plan.Addr(s.Name, "eth0")
		pool = append(pool, a)
	}
	for i, n := range []string{"lb1", "lb2"} {
		dir := l.NodeDir(n)
		if err := os.WriteFile(filepath.Join(dir, "keepalived.conf"), keepalivedConf(l, n, 246-10*i), 0o644); err != nil {
			return l, err
		}
		if err := os.WriteFile(filepath.Join(dir, "conntrackd.conf"), conntrackdConf(l, n), 0o644); err != nil {
			return l, err
		}
		if err := os.WriteFile(filepath.Join(dir, "primary-backup.sh"), primaryBackupScript(ctd, dir), 0o755); err != nil {
			return l, err
		}
		if err := writeSysctlIn(l.Namespace(n), "net.ipv4.ip_forward", "1"); err != nil {
			return l, err
		}
		if err := handNftDNAT(l, n, vip, pool); err != nil {
			return l, err
		}
		// conntrackd runs from boot, as its init script starts it.
		if _, err := startBg(l, n, "conntrackd.out", ctd, "-C", filepath.Join(dir, "conntrackd.conf")); err != nil {
			return l, err
		}
	}
	for _, n := range []string{"lb1", "lb2"} {
		if err := waitFile(ctx, filepath.Join(l.NodeDir(n), "conntrackd.ctl"), 5*time.Second); err != nil {
			return l, fmt.Errorf("conntrackd on %s: %w (log: %s)", n, err, tail(filepath.Join(l.NodeDir(n), "conntrackd.log")))
		}
		if err := l.StartDaemon(n); err != nil {
			return l, err
		}
	}
	if _, err := waitVIP(ctx, l, "lb1", "lb2", 15*time.Second); err != nil {
		return l, fmt.Errorf("%w (lb1 daemon.log: %s)", err, tail(filepath.Join(l.NodeDir("lb1"), "daemon.log")))
	}
	return l, nil
}

func waitFile(ctx context.Context, p string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		if _, err := os.Stat(p); err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s did not appear within %v", p, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// procsNamed returns the pids in node whose command name is one of names.
func procsNamed(l *Lab, node string, names ...string) []int {
	id, ok := statNS(l.nsPath(node))
	if !ok {
		return nil
	}
	var out []int
	for _, pid := range procsIn(map[nsID]bool{id: true}) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil {
			continue
		}
		comm := strings.TrimSpace(string(b))
		for _, n := range names {
			if comm == n {
				out = append(out, pid)
			}
		}
	}
	return out
}

// killKeepalived is SIGKILL of lb1's HA daemons: every keepalived process
// (parent and VRRP child) and conntrackd.
func killKeepalived(l *Lab) error {
	pids := procsNamed(l, "lb1", "keepalived", "conntrackd")
	if len(pids) == 0 {
		return errors.New("no keepalived or conntrackd runs in lb1")
	}
	var err error
	for _, p := range pids {
		if kerr := syscall.Kill(p, syscall.SIGKILL); kerr != nil && kerr != syscall.ESRCH {
			err = errors.Join(err, fmt.Errorf("kill %d: %w", p, kerr))
		}
	}
	return err
}

// stopKeepalived is keepalived's graceful stop (SIGTERM: it sends
// priority-0 adverts and removes its VIPs); conntrackd keeps running, as
// with `systemctl stop keepalived`.
func stopKeepalived(l *Lab) error {
	l.mu.Lock()
	ref := l.st.Nodes["lb1"].DaemonProc
	l.mu.Unlock()
	if !ref.alive() {
		return errors.New("keepalived is not running in lb1")
	}
	return syscall.Kill(ref.PID, syscall.SIGTERM)
}
