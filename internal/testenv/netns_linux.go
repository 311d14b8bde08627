package testenv

import (
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// TwoHosts builds two named namespaces, PREFIX-PID-0 and PREFIX-PID-1,
// joined by a veth pair named eth0 on both sides and addressed with a and
// b, and removes them when the test ends. It returns their handles and
// names (for a child process: /run/netns/NAME).
func TwoHosts(t testing.TB, prefix string, a, b netip.Prefix) (hs [2]netns.NsHandle, names [2]string) {
	t.Helper()
	RequireRoot(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	defer netns.Set(orig)
	for i := range hs {
		names[i] = fmt.Sprintf("%s%d-%d", prefix, os.Getpid(), i)
		netns.DeleteNamed(names[i]) // left by a crashed run with this pid
		h, err := netns.NewNamed(names[i])
		if err != nil {
			t.Fatalf("create namespace: %v", err)
		}
		hs[i] = h
		name := names[i]
		t.Cleanup(func() { h.Close(); netns.DeleteNamed(name) })
		lo, _ := netlink.LinkByName("lo")
		netlink.LinkSetUp(lo)
	}
	// Now in hs[1]; create the pair here and move one end to hs[0].
	la := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "tha0"}, PeerName: "eth0"}
	if err := netlink.LinkAdd(la); err != nil {
		t.Fatalf("veth: %v", err)
	}
	if err := netlink.LinkSetNsFd(la, int(hs[0])); err != nil {
		t.Fatal(err)
	}
	setup := func(h netns.NsHandle, old string, p netip.Prefix) {
		if err := netns.Set(h); err != nil {
			t.Fatal(err)
		}
		l, err := netlink.LinkByName(old)
		if err != nil {
			t.Fatal(err)
		}
		if old != "eth0" {
			if err := netlink.LinkSetName(l, "eth0"); err != nil {
				t.Fatal(err)
			}
		}
		addr, _ := netlink.ParseAddr(p.String())
		if err := netlink.AddrAdd(l, addr); err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	setup(hs[0], "tha0", a)
	setup(hs[1], "eth0", b)
	return hs, names
}

// In runs f with the calling goroutine's thread in namespace h.
func In(t testing.TB, h netns.NsHandle, f func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	if err := netns.Set(h); err != nil {
		t.Fatal(err)
	}
	defer netns.Set(orig)
	f()
}
