package compile

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"

	"github.com/pfcarp/pfcarp/netdb"
	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/nft/nfttest"
	"github.com/pfcarp/pfcarp/pfconf"
)

// Kernel tests of synproxy state on the bed of kernel_linux_test.go.

// loadIn compiles src (no interfaces needed) and loads it with conn.
func loadIn(t *testing.T, conn *nft.Conn, src string) {
	t.Helper()
	f, err := pfconf.Parse("pf.conf", []byte(src), pfconf.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := pfconf.Expand(f, &netdb.Fixed{})
	if err != nil {
		t.Fatal(err)
	}
	prog, err := Compile(rs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Load(prog); err != nil {
		t.Fatalf("load: %v", err)
	}
}

// synReceived sums the SYNs the kernel's synproxy received in ns
// (/proc/net/stat/synproxy, one line per CPU, hexadecimal).
func synReceived(t *testing.T, ns *nfttest.NS) uint64 {
	t.Helper()
	var sum uint64
	err := ns.Do(func() error {
		f, err := os.Open("/proc/thread-self/net/stat/synproxy")
		if err != nil {
			return err
		}
		defer f.Close()
		s := bufio.NewScanner(f)
		s.Scan() // header
		for s.Scan() {
			fields := strings.Fields(s.Text())
			if len(fields) < 2 {
				continue
			}
			n, err := strconv.ParseUint(fields[1], 16, 64)
			if err != nil {
				return fmt.Errorf("synproxy stats %q: %w", s.Text(), err)
			}
			sum += n
		}
		return s.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// flowsTo returns the router's conntrack entries from src to dst.
func flowsTo(t *testing.T, b *bed, src netip.Addr, dst netip.AddrPort) []conntrack.Flow {
	t.Helper()
	ct, err := conntrack.Dial(&netlink.Config{NetNS: b.router.FD()})
	if err != nil {
		t.Fatal(err)
	}
	defer ct.Close()
	flows, err := ct.Dump(nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []conntrack.Flow
	for _, f := range flows {
		o := f.TupleOrig
		if o.IP.SourceAddress.Unmap() == src && o.IP.DestinationAddress.Unmap() == dst.Addr() && o.Proto.DestinationPort == dst.Port() {
			out = append(out, f)
		}
	}
	return out
}

// halfOpen starts n TCP connections from the client to dst without
// waiting (non-blocking connect); the sockets are closed at cleanup.
func halfOpen(t *testing.T, ns *nfttest.NS, src netip.Addr, dst netip.AddrPort, n int) {
	t.Helper()
	var fds []int
	t.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
	err := ns.Do(func() error {
		for i := 0; i < n; i++ {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
			if err != nil {
				return err
			}
			fds = append(fds, fd)
			if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: src.As4()}); err != nil {
				return err
			}
			err = unix.Connect(fd, &unix.SockaddrInet4{Addr: dst.Addr().As4(), Port: int(dst.Port())})
			if err != nil && err != unix.EINPROGRESS {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

const synproxyConf = `
set skip on lo
block all
pass in on eth0 proto tcp to 198.51.100.20 port 80 flags S/SA synproxy state
pass in on eth0 proto tcp to 192.0.2.1 port 22 flags S/SA synproxy state
pass out keep state
`

// A connection through the router and one to the router itself work end
// to end through the proxy, and the forwarded one is a state of its rule.
func TestKernelSynproxy(t *testing.T) {
	b := newBed(t)
	serveEcho(t, b.router, "192.0.2.1:22")
	before := synReceived(t, b.router)
	b.load(t, synproxyConf)
	c, err := dial(b.client, clientA, "192.0.2.1:22", 2*time.Second)
	if err != nil {
		t.Fatalf("local connection through synproxy: %v", err)
	}
	defer c.Close()
	if err := echo(c, 2*time.Second); err != nil {
		t.Fatalf("local connection through synproxy: %v", err)
	}
	if got, err := b.get(clientA, "198.51.100.20:80"); err != nil || got != "s1" {
		t.Fatalf("forwarded connection through synproxy: %q, %v", got, err)
	}
	if got := synReceived(t, b.router); got < before+2 {
		t.Errorf("the kernel's synproxy received %d SYNs, want at least 2: the connections bypassed it", got-before)
	}
	flows := flowsTo(t, b, clientA, netip.MustParseAddrPort("198.51.100.20:80"))
	if len(flows) == 0 {
		t.Fatal("no conntrack entry for the proxied connection")
	}
	for _, f := range flows {
		if f.Mark&CtMarkState == 0 || f.Mark&CtMarkRuleMask != 2 {
			t.Errorf("proxied connection %v: mark %#x, want CtMarkState and rule 1+1", f.TupleOrig, f.Mark)
		}
	}
	// The proxy answers a SYN the rules block: no.
	if _, err := b.client.Get(clientA, netip.MustParseAddrPort("198.51.100.150:80"), time.Second); err == nil {
		t.Error("a connection no rule passes got through")
	}
}

// A SYN flood's half-open connections reach the proxy and leave no
// conntrack entries on the router; with keep state instead of synproxy
// state the same SYNs do (the control).
func TestKernelSynproxyFlood(t *testing.T) {
	dst := netip.MustParseAddrPort("198.51.100.20:80")
	for _, tc := range []struct {
		state   string
		entries bool
	}{{"synproxy state", false}, {"keep state", true}} {
		t.Run(strings.ReplaceAll(tc.state, " ", "_"), func(t *testing.T) {
			b := newBed(t)
			b.load(t, strings.ReplaceAll(synproxyConf, "synproxy state", tc.state))
			// The client never answers a SYN+ACK: its handshakes stay half open.
			loadIn(t, nft.Open(nft.WithNetNS(b.client.FD())), "block in quick proto tcp flags SA/SA\n")
			const n = 20
			before := synReceived(t, b.router)
			halfOpen(t, b.client, clientA, dst, n)
			deadline := time.Now().Add(10 * time.Second)
			for {
				if tc.entries {
					if got := len(flowsTo(t, b, clientA, dst)); got >= n {
						break
					}
				} else if synReceived(t, b.router) >= before+n {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: the %d SYNs did not arrive (synproxy received %d, %d entries)", tc.state, n,
						synReceived(t, b.router)-before, len(flowsTo(t, b, clientA, dst)))
				}
				time.Sleep(20 * time.Millisecond)
			}
			got := len(flowsTo(t, b, clientA, dst))
			if !tc.entries && got != 0 {
				t.Errorf("synproxy state: %d conntrack entries for half-open connections, want 0", got)
			}
			if tc.entries && synReceived(t, b.router) != before {
				t.Errorf("keep state: the SYNs went to the proxy")
			}
		})
	}
}
