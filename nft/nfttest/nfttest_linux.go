// Package nfttest builds throwaway network namespaces for the tests of nft
// and compile: named namespaces (so `ip netns exec` works while debugging),
// veth pairs between them, addresses, routes, and a way to run code inside
// one on a locked OS thread. Every namespace is deleted by t.Cleanup. It
// never connects a namespace to the caller's own.
//
// nfttest does not gate on root (callers use internal/testenv.RequireRoot
// first) and does not know about pf or nftables.
package nfttest

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

var seq atomic.Int64

// NS is one namespace created for a test.
type NS struct {
	Name string
	h    netns.NsHandle
	nl   *netlink.Handle
}

// FD returns the namespace's file descriptor (valid until cleanup).
func (n *NS) FD() int { return int(n.h) }

// New creates a namespace named "pfct-<tag>-<pid>-<seq>" with lo up.
func New(t testing.TB, tag string) *NS {
	t.Helper()
	return Named(t, fmt.Sprintf("pfct-%s-%d-%d", tag, os.Getpid(), seq.Add(1)))
}

// Named creates a namespace with the given name (a test's own prefix), lo
// up; a namespace of that name left by a crashed run is deleted first.
func Named(t testing.TB, name string) *NS {
	t.Helper()
	_ = netns.DeleteNamed(name) // usually there is none; creating it below reports a real problem
	errc := make(chan error, 1)
	var h netns.NsHandle
	go func() {
		runtime.LockOSThread()
		origin, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		nh, err := netns.NewNamed(name)
		if err != nil {
			origin.Close()
			errc <- err
			return
		}
		h = nh
		if err := netns.Set(origin); err != nil {
			origin.Close()
			errc <- fmt.Errorf("returning from %s: %w", name, err) // thread stays locked and dies
			return
		}
		origin.Close()
		runtime.UnlockOSThread()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		h.Close()
		if derr := netns.DeleteNamed(name); derr != nil {
			t.Errorf("deleting namespace %s: %v", name, derr)
		}
		t.Fatalf("netlink handle in %s: %v", name, err)
	}
	n := &NS{Name: name, h: h, nl: nl}
	t.Cleanup(func() {
		nl.Close()
		h.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("deleting namespace %s: %v", name, err)
		}
	})
	lo, err := nl.LinkByName("lo")
	if err == nil {
		err = nl.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatalf("namespace %s: lo up: %v", name, err)
	}
	return n
}

// Do runs fn on an OS thread inside n and returns its error.
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		origin, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer origin.Close()
		if err := netns.Set(n.h); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		ferr := fn()
		if err := netns.Set(origin); err != nil {
			errc <- err // leave the thread locked: it dies with the goroutine
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Sysctl writes a sysctl (dotted or slashed name) inside n.
func (n *NS) Sysctl(t testing.TB, key, value string) {
	t.Helper()
	path := filepath.Join("/proc/sys", filepath.FromSlash(replaceDots(key)))
	if err := n.Do(func() error { return os.WriteFile(path, []byte(value), 0o644) }); err != nil {
		t.Fatalf("%s: sysctl %s=%s: %v", n.Name, key, value, err)
	}
}

func replaceDots(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '.' {
			b[i] = '/'
		}
	}
	return string(b)
}

// Link connects a (interface aName) and b (interface bName) with a veth
// pair, gives them the addresses and brings both up.
func Link(t testing.TB, a *NS, aName string, aAddr netip.Prefix, b *NS, bName string, bAddr netip.Prefix) {
	t.Helper()
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: aName},
		PeerName:      bName,
		PeerNamespace: netlink.NsFd(b.h),
	}
	if err := a.nl.LinkAdd(veth); err != nil {
		t.Fatalf("veth %s/%s - %s/%s: %v", a.Name, aName, b.Name, bName, err)
	}
	a.AddrUp(t, aName, aAddr)
	b.AddrUp(t, bName, bAddr)
}

// AddrUp adds p to interface name (if p is valid) and brings it up.
func (n *NS) AddrUp(t testing.TB, name string, p netip.Prefix) {
	t.Helper()
	l, err := n.nl.LinkByName(name)
	if err != nil {
		t.Fatalf("%s: %s: %v", n.Name, name, err)
	}
	if p.IsValid() {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
		if p.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := n.nl.AddrAdd(l, a); err != nil {
			t.Fatalf("%s: address %s on %s: %v", n.Name, p, name, err)
		}
	}
	if err := n.nl.LinkSetUp(l); err != nil {
		t.Fatalf("%s: up %s: %v", n.Name, name, err)
	}
}

// DefaultRoute sets n's default route for gw's family via gw.
func (n *NS) DefaultRoute(t testing.TB, gw netip.Addr) {
	t.Helper()
	r := &netlink.Route{Gw: gw.AsSlice()}
	if gw.Is6() {
		r.Family = netlink.FAMILY_V6
	}
	if err := n.nl.RouteAdd(r); err != nil {
		t.Fatalf("%s: default route via %s: %v", n.Name, gw, err)
	}
}

// Exec runs fn in n and fails t on error.
func (n *NS) Exec(t testing.TB, what string, fn func() error) {
	t.Helper()
	if err := n.Do(fn); err != nil {
		t.Fatalf("%s: %s: %v", n.Name, what, err)
	}
}

// Serve listens on TCP addr inside n and answers every connection with
// reply (or, when reply is "", the client's address as the server sees
// it), then closes it. The server stops at cleanup.
func (n *NS) Serve(t testing.TB, addr netip.AddrPort, reply string) {
	t.Helper()
	var ln net.Listener
	n.Exec(t, "listen "+addr.String(), func() (err error) {
		ln, err = net.Listen("tcp", addr.String())
		return err
	})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			msg := reply
			if msg == "" {
				msg = c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap().String()
			}
			// A client that went away is the client's test to fail:
			// it reads fewer bytes than it expects.
			err = c.SetDeadline(time.Now().Add(5 * time.Second))
			if err == nil {
				_, err = c.Write([]byte(msg))
			}
			if cerr := c.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Logf("server %s: answering %s: %v", addr, c.RemoteAddr(), err)
			}
		}
	}()
	t.Cleanup(func() {
		if err := ln.Close(); err != nil {
			t.Errorf("closing listener %s: %v", addr, err)
		}
		wg.Wait()
	})
}

// Get connects from n (from src when valid) to addr and returns what the
// server wrote before closing. Timeout bounds the whole exchange.
func (n *NS) Get(src netip.Addr, addr netip.AddrPort, timeout time.Duration) (string, error) {
	var c net.Conn
	err := n.Do(func() (err error) {
		d := net.Dialer{Timeout: timeout}
		if src.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
		}
		c, err = d.Dial("tcp", addr.String())
		return err
	})
	if err != nil {
		return "", err
	}
	defer func() { _ = c.Close() }() // everything was read: nothing to lose
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}
