package bsdhost

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/pfcarp/pfcarp/internal/testenv"
)

// Namespace creates a named network namespace that looks like the corpus's
// FreeBSD host (see Interfaces) and returns its name, so that a test can run
// a program inside it with `ip netns exec NAME ...` or enter it with
// netns.GetFromName. It needs root (testenv.RequireRoot decides whether a
// non-root run skips or fails) and registers t.Cleanup to delete the
// namespace, which takes its interfaces with it.
//
// Inside: the loopback renamed lo0, up, with ::1/128 and 127.0.0.1/8 (the
// kernel's) and fe80::1/64 added; vlan1057..vlan1064 as four veth pairs
// joined to each other (this kernel has no dummy driver; pairing them keeps
// every interface in the namespace and none connected to the host), up, with
// no automatic link-local address, each carrying 203.0.113.5/30 (broadcast
// 203.0.113.7) and 2001:db8::203.0.113.5/126.
//
// The caller's thread never stays in the new namespace: Namespace locks its
// OS thread only while creating it and switches back before returning.
func Namespace(t testing.TB) string {
	t.Helper()
	testenv.RequireRoot(t)
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatalf("bsdhost: random name: %v", err)
	}
	name := fmt.Sprintf("pfcarp-bsdhost-%d-%s", os.Getpid(), hex.EncodeToString(rnd[:]))

	ns, err := newNamed(name)
	if err != nil {
		t.Fatalf("bsdhost: creating network namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		ns.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("bsdhost: deleting network namespace %s: %v", name, err)
		}
	})
	if err := populate(ns); err != nil {
		t.Fatalf("bsdhost: setting up network namespace %s: %v", name, err)
	}
	return name
}

// newNamed creates and names a network namespace from a locked thread and
// moves that thread back to its original namespace. If it cannot move back,
// the thread stays locked, and the runtime discards it when the goroutine
// ends, so no other goroutine ever runs in the wrong namespace.
func newNamed(name string) (netns.NsHandle, error) {
	type result struct {
		ns  netns.NsHandle
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{netns.None(), err}
			return
		}
		defer orig.Close()
		ns, err := netns.NewNamed(name)
		if err != nil {
			// NewNamed may have unshared before failing; do not reuse the thread.
			if netns.Set(orig) == nil {
				runtime.UnlockOSThread()
			}
			ch <- result{netns.None(), err}
			return
		}
		if err := netns.Set(orig); err != nil {
			ch <- result{ns, fmt.Errorf("returning to the original namespace: %w", err)}
			return // thread stays locked and is discarded
		}
		runtime.UnlockOSThread()
		ch <- result{ns, nil}
	}()
	r := <-ch
	return r.ns, r.err
}

// populate configures the namespace through a netlink handle bound to it.
func populate(ns netns.NsHandle) error {
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink handle: %w", err)
	}
	defer h.Close()

	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	if err := h.LinkSetName(lo, "lo0"); err != nil {
		return fmt.Errorf("renaming lo to lo0: %w", err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("lo0 up: %w", err)
	}
	if err := h.AddrAdd(lo, &netlink.Addr{IPNet: ipNet(lo0LL), Flags: unix.IFA_F_NODAD}); err != nil {
		return fmt.Errorf("lo0 %s: %w", lo0LL, err)
	}

	for n := VLANFirst; n <= VLANLast; n += 2 {
		a, b := VLANName(n), VLANName(n+1)
		// The kernel creates the peer first, so the peer gets the lower
		// ifindex: name it a, so interfaces come in the fixture's order.
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: b}, PeerName: a}
		if err := h.LinkAdd(veth); err != nil {
			return fmt.Errorf("veth pair %s/%s: %w", a, b, err)
		}
	}
	for n := VLANFirst; n <= VLANLast; n++ {
		name := VLANName(n)
		l, err := h.LinkByName(name)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := h.LinkSetIP6AddrGenMode(l, 1 /* IN6_ADDR_GEN_MODE_NONE */); err != nil {
			return fmt.Errorf("%s: no link-local address: %w", name, err)
		}
		// Added in FreeBSD's configuration order, IPv4 first; System lists
		// IPv6 first either way.
		if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipNet(vlanV4), Broadcast: net.IP(vlanV4Brd.AsSlice())}); err != nil {
			return fmt.Errorf("%s %s: %w", name, vlanV4, err)
		}
		if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipNet(vlanV6), Flags: unix.IFA_F_NODAD}); err != nil {
			return fmt.Errorf("%s %s: %w", name, vlanV6, err)
		}
	}
	for n := VLANFirst; n <= VLANLast; n++ {
		l, err := h.LinkByName(VLANName(n))
		if err != nil {
			return err
		}
		if err := h.LinkSetUp(l); err != nil {
			return fmt.Errorf("%s up: %w", VLANName(n), err)
		}
	}
	return nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
