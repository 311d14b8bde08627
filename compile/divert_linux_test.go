package compile

import (
	"context"
	"net"
	"sync"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/nft/nfttest"
)

// serveTransparent listens on addr in ns with IP_TRANSPARENT (tproxy
// delivers only to transparent sockets) and writes "div " and the local
// address each connection sees, then closes it.
func serveTransparent(t *testing.T, ns *nfttest.NS, addr string) {
	t.Helper()
	var ln net.Listener
	ns.Exec(t, "listen "+addr, func() (err error) {
		lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_TRANSPARENT, 1) }); err != nil {
				return err
			}
			return serr
		}}
		ln, err = lc.Listen(context.Background(), "tcp", addr)
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
			c.Write([]byte("div " + c.LocalAddr().String()))
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
}

// pfcarpRules returns the routing rules of pfcarp's in ns.
func pfcarpRules(t *testing.T, ns *nfttest.NS) []netlink.Rule {
	t.Helper()
	var out []netlink.Rule
	err := ns.Do(func() error {
		rules, err := netlink.RuleList(unix.AF_INET)
		for _, r := range rules {
			if r.Priority == nft.PolicyRulePriority {
				out = append(out, r)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// divert-to delivers a connection to a server behind the router to the
// router's transparent socket, which sees the original destination; the
// policy routing it needs is pfcarp's and goes with the ruleset.
func TestKernelDivertTo(t *testing.T) {
	b := newBed(t)
	serveTransparent(t, b.router, "127.0.0.1:8021")
	b.load(t, `
set skip on lo
block all
pass in on eth0 inet proto tcp to 198.51.100.20 port 80 divert-to 127.0.0.1 port 8021
pass in on eth0 inet proto tcp to 198.51.100.150 port 80
pass out keep state
`)
	if got, err := b.get(clientA, "198.51.100.20:80"); err != nil || got != "div 198.51.100.20:80" {
		t.Fatalf("diverted connection: %q, %v (want the local socket, seeing the original destination)", got, err)
	}
	if got, err := b.get(clientA, "198.51.100.150:80"); err != nil || got != "s2" {
		t.Fatalf("connection not diverted: %q, %v", got, err)
	}
	rules := pfcarpRules(t, b.router)
	if len(rules) != 1 || rules[0].Table != nft.PolicyTableBase || rules[0].Mark != MetaMarkDivert {
		t.Fatalf("routing rules of pfcarp's: %v, want one fwmark %#x lookup %d", rules, MetaMarkDivert, nft.PolicyTableBase)
	}
	// A ruleset without divert takes the routing away; so does Delete.
	b.load(t, "pass all\n")
	if rules := pfcarpRules(t, b.router); len(rules) != 0 {
		t.Fatalf("routing rules left after a load without divert-to: %v", rules)
	}
	if got, err := b.get(clientA, "198.51.100.20:80"); err != nil || got != "s1" {
		t.Fatalf("after the reload: %q, %v (want the server)", got, err)
	}
	b.load(t, "pass in on eth0 inet proto tcp to port 80 divert-to 127.0.0.1 port 8021\n")
	if err := b.conn.Delete(); err != nil {
		t.Fatal(err)
	}
	if rules := pfcarpRules(t, b.router); len(rules) != 0 {
		t.Fatalf("routing rules left after Delete: %v", rules)
	}
}
