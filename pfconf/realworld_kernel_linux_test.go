package pfconf_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/pfcarp/pfcarp/compile"
	"github.com/pfcarp/pfcarp/internal/testenv"
	"github.com/pfcarp/pfcarp/netdb"
	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/nft/nfttest"
	"github.com/pfcarp/pfcarp/pfconf"
	"github.com/pfcarp/pfcarp/pfload"
	"github.com/pfcarp/pfcarp/tc"
)

// realworldKernelRatchet is how many real-world files (of those pfctl
// accepts and whose anchor files are public) load into the kernel through
// pfctl -f's pipeline; it may only go up.
const realworldKernelRatchet = 99

// realworldNamespace creates a namespace (prefix "pa") with an interface
// for each interface of the fixture host (one end of a veth pair whose
// other end is paN: this kernel may have no dummy driver), with its addresses,
// up (lo0 too: it is not the loopback, lo, which nft's policy routing
// uses for divert-to, and it has no ::1), so that the interface names and addresses the ruleset was expanded
// with are the namespace's own. Names Linux does not allow as interface
// names (longer than 15 bytes) stay fixture-only: their rules match by
// name, which the kernel accepts without the interface.
func realworldNamespace(t *testing.T, i int, host netdb.Host) *nfttest.NS {
	t.Helper()
	ns := nfttest.Named(t, fmt.Sprintf("pa-rw-%d-%d", os.Getpid(), i))
	fixed := host.(*realworldHostT).Fixed
	err := ns.Do(func() error {
		for j, ifc := range fixed.Interfaces {
			if len(ifc.Name) > unix.IFNAMSIZ-1 || linuxReservedIfName[ifc.Name] {
				continue
			}
			d, err := realworldLink(ifc.Name, fmt.Sprintf("pa%d", j))
			if err != nil {
				return err
			}
			for _, a := range ifc.Addrs {
				p := a.Prefix
				na := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
				if a.Broadcast.IsValid() {
					na.Broadcast = a.Broadcast.AsSlice()
				}
				if a.Peer.IsValid() {
					na.Peer = &net.IPNet{IP: a.Peer.AsSlice(), Mask: net.CIDRMask(a.Peer.BitLen(), a.Peer.BitLen())}
				}
				if p.Addr().Is6() {
					na.Flags = unix.IFA_F_NODAD
				}
				if p.Addr().IsLoopback() && p.Addr().Is6() {
					continue // Linux has ::1 on its loopback only
				}
				if err := netlink.AddrAdd(d, na); err != nil {
					return fmt.Errorf("address %s on %s: %w", p, ifc.Name, err)
				}
			}
			if err := netlink.LinkSetUp(d); err != nil {
				return fmt.Errorf("up %s: %w", ifc.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: %v", ns.Name, err)
	}
	return ns
}

// linuxReservedIfName are names Linux refuses for an interface (they are
// the per-family defaults in /proc/sys/net/ipv4/conf); the fixture may
// have them from a word of a comment.
var linuxReservedIfName = map[string]bool{"all": true, "default": true}

// realworldLink makes interface name (unless the namespace has it), one end of a veth pair whose other
// end, peer, is up without addresses.
func realworldLink(name, peer string) (netlink.Link, error) {
	if l, err := netlink.LinkByName(name); err == nil {
		return l, nil // lo, when a file names the Linux loopback
	}
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peer}); err != nil {
		return nil, fmt.Errorf("veth %s: %w", name, err)
	}
	p, err := netlink.LinkByName(peer)
	if err == nil {
		err = netlink.LinkSetUp(p)
	}
	if err != nil {
		return nil, fmt.Errorf("veth peer %s of %s: %w", peer, name, err)
	}
	return netlink.LinkByName(name)
}

// realworldOutcome is what loading one corpus file gave.
type realworldOutcome struct {
	loaded   bool
	needs    []string // anchor files the corpus does not have
	parseErr error
	refused  []*pfconf.Error
	kernel   error // compiled, but the kernel refused it
}

// loadRealworld loads corpus file rf into a fresh namespace the way pfctl
// -f does (pfload.Load, compile.CompileLoad, nft.Conn.Load, tc.Apply).
func loadRealworld(t *testing.T, i int, rf realworldFile) realworldOutcome {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(realworldDir, rf.name))
	if err != nil {
		t.Fatal(err)
	}
	host := realworldHost(src, rf.v4only)
	rd := &realworldFiles{missing: map[string]bool{}}
	rs, err := pfload.Load(pfload.Input{Name: rf.name, Src: src, ReadFile: rd.read, Host: host})
	var out realworldOutcome
	if out.needs = realworldNeeds(rs, rd); len(out.needs) > 0 {
		return out
	}
	if err != nil {
		out.parseErr = err
		return out
	}
	prog, err := compile.CompileLoad(rs, compile.Options{Queues: tc.Kernel})
	if err != nil {
		var el *pfconf.ErrorList
		if !errors.As(err, &el) {
			t.Fatalf("%s: CompileLoad error is %T: %v", rf.name, err, err)
		}
		out.refused = el.List
		return out
	}
	ns := realworldNamespace(t, i, host)
	if err := nft.Open(nft.WithNetNS(ns.FD()), nft.WithHost(host)).Load(prog); err != nil {
		out.kernel = err
		return out
	}
	if err := ns.Do(func() error { return tc.Apply(prog.Queues) }); err != nil {
		out.kernel = fmt.Errorf("queues: %w", err)
		return out
	}
	out.loaded = true
	return out
}

// TestRealworldKernel loads every real-world file pfctl accepts into the
// kernel, each in a namespace of its own with the interfaces (and
// addresses) of the fixture host it is expanded on, through the pipeline
// of pfctl -f. A file that compiles must load; a file whose "load anchor"
// file is not public is counted apart (pfctl -f fails on it too when the
// file is missing) and is not in the denominator. It prints the count and
// the refusals by feature, and holds the count as a ratchet.
func TestRealworldKernel(t *testing.T) {
	testenv.RequireRoot(t)
	files := readRealworldSources(t)
	var accepted, loaded int
	var needs, notParsed []string
	refusals := map[string]map[string]int{}
	for i, rf := range files {
		if rf.rejects != "" {
			continue
		}
		var out realworldOutcome
		t.Run(rf.name, func(t *testing.T) { out = loadRealworld(t, i, rf) })
		switch {
		case len(out.needs) > 0:
			needs = append(needs, fmt.Sprintf("%s needs %s", rf.name, strings.Join(out.needs, ", ")))
			continue
		case out.parseErr != nil:
			notParsed = append(notParsed, fmt.Sprintf("%s: %v", rf.name, firstLine(out.parseErr.Error())))
		case out.kernel != nil:
			t.Errorf("%s: compiled, but the kernel refused it: %v", rf.name, out.kernel)
		case out.loaded:
			loaded++
		}
		accepted++
		for _, e := range out.refused {
			k := refusalFeature(e.Msg)
			if refusals[k] == nil {
				refusals[k] = map[string]int{}
			}
			refusals[k][rf.name]++
		}
	}
	fmt.Printf("realworld kernel: loaded %d/%d (%.0f %%); %d not parsed; %d need a file that is not public (pfctl -f fails without it too):\n",
		loaded, accepted, 100*float64(loaded)/float64(max(accepted, 1)), len(notParsed), len(needs))
	for _, n := range needs {
		fmt.Printf("  %s\n", n)
	}
	for _, n := range notParsed {
		fmt.Printf("  not parsed: %s\n", n)
	}
	var keys []string
	for k := range refusals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var fs []string
		for f := range refusals[k] {
			fs = append(fs, f)
		}
		sort.Strings(fs)
		fmt.Printf("  refused: %s (%s)\n", k, strings.Join(fs, ", "))
	}
	if loaded < realworldKernelRatchet {
		t.Errorf("realworld kernel load count dropped: %d load, the ratchet is %d", loaded, realworldKernelRatchet)
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
