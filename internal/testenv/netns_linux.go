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
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer orig.Close()
	defer restoreNS(t, orig)
	for i := range hs {
		names[i] = fmt.Sprintf("%s%d-%d", prefix, os.Getpid(), i)
		// One left by a crashed run with this pid; usually there is none,
		// and NewNamed below reports a real problem.
		_ = netns.DeleteNamed(names[i])
		h, err := netns.NewNamed(names[i])
		if err != nil {
			t.Fatalf("create namespace: %v", err)
		}
		hs[i] = h
		name := names[i]
		t.Cleanup(func() {
			h.Close()
			if err := netns.DeleteNamed(name); err != nil {
				t.Errorf("removing namespace %s: %v", name, err)
			}
		})
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		if err != nil {
			t.Fatalf("namespace %s: lo up: %v", name, err)
		}
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
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer orig.Close()
	defer restoreNS(t, orig)
	if err := netns.Set(h); err != nil {
		t.Fatal(err)
	}
	f()
}

// restoreNS moves the locked thread back to orig and unlocks it. When that
// fails the thread stays locked, so the runtime ends it with its goroutine
// instead of running other goroutines in the wrong namespace.
func restoreNS(t testing.TB, orig netns.NsHandle) {
	if err := netns.Set(orig); err != nil {
		t.Errorf("returning the thread to its namespace: %v", err)
		return
	}
	runtime.UnlockOSThread()
}
