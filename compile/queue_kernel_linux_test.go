package compile

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/pfcarp/pfcarp/internal/testenv"
	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/tc"
)

const queueConf = `
queue rootq on eth0 bandwidth 10M max 10M
queue std parent rootq bandwidth 2M default
queue ssh parent rootq bandwidth 1M
queue web parent rootq bandwidth 1M qlimit 100
pass
pass out proto tcp to port 22 set queue ssh
pass in proto tcp to port 8080 set queue web
`

// TestKernelQueues loads OpenBSD queues and rules that assign them on one
// end of a veth pair, reads the HTB tree back and checks that the kernel
// puts a connection's packets into the rule's class: ssh for an outbound
// connection to port 22, web for the replies of an inbound connection to
// port 8080, std (the default) for the rest.
func TestKernelQueues(t *testing.T) {
	testenv.RequireRoot(t)
	a, b := netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("192.0.2.2/24")
	hs, _ := testenv.TwoHosts(t, "pfq", a, b)
	has, err := tc.Probe()
	if err != nil {
		t.Fatal(err)
	}
	rs := ruleset(t, queueConf)
	prog, err := Compile(rs, Options{Host: testHost, Queues: has})
	if err != nil {
		t.Fatal(err)
	}
	if err := nft.Open(nft.WithNetNS(int(hs[0]))).Load(prog); err != nil {
		t.Fatalf("load: %v\n%s", err, prog)
	}
	testenv.In(t, hs[0], func() {
		if err := tc.Apply(prog.Queues); err != nil {
			t.Fatalf("apply: %v", err)
		}
	})
	id := func(name string) uint32 {
		h, ok := prog.Queues.ClassID(name)
		if !ok {
			t.Fatalf("no class id for %s", name)
		}
		return h
	}
	// The tree as the kernel has it.
	classes := readClasses(t, hs[0])
	for name, want := range map[string]struct{ rate, ceil uint64 }{
		"rootq": {10e6, 10e6}, "std": {2e6, 10e6}, "ssh": {1e6, 10e6}, "web": {1e6, 10e6},
	} {
		c := classes[id(name)]
		if c == nil {
			t.Fatalf("class %s (%s) missing: %v", name, netlink.HandleStr(id(name)), classes)
		}
		if c.Rate*8 != want.rate || c.Ceil*8 != want.ceil {
			t.Errorf("class %s: rate %d ceil %d bit/s, want %d %d", name, c.Rate*8, c.Ceil*8, want.rate, want.ceil)
		}
	}
	if p := classes[id("std")].Parent; p != id("rootq") {
		t.Errorf("std's parent is %s", netlink.HandleStr(p))
	}
	before := classBytes(classes)

	const n = 300 << 10
	payload := bytes.Repeat([]byte("q"), n)
	// Outbound to port 22: hs[0] sends.
	serveSink(t, hs[1], "192.0.2.2:22")
	send(t, hs[0], "192.0.2.2:22", payload)
	// Outbound to port 23: the default queue.
	serveSink(t, hs[1], "192.0.2.2:23")
	send(t, hs[0], "192.0.2.2:23", payload)
	// Inbound to port 8080: hs[0] answers with the payload.
	var ln net.Listener
	testenv.In(t, hs[0], func() { ln, err = net.Listen("tcp", "192.0.2.1:8080") })
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Write(payload)
		c.Close()
	}()
	var c net.Conn
	testenv.In(t, hs[1], func() { c, err = net.DialTimeout("tcp", "192.0.2.1:8080", 5*time.Second) })
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	got, err := io.ReadAll(c)
	c.Close()
	if err != nil || len(got) != n {
		t.Fatalf("read %d bytes from 8080: %v", len(got), err)
	}

	after := classBytes(readClasses(t, hs[0]))
	for _, name := range []string{"ssh", "std", "web"} {
		d := after[id(name)] - before[id(name)]
		t.Logf("class %s: %d bytes", name, d)
		if d < n {
			t.Errorf("class %s sent %d bytes, want at least the %d of its connection", name, d, n)
		}
		if d > n+n/2 {
			t.Errorf("class %s sent %d bytes: more than its connection", name, d)
		}
	}
}

func readClasses(t *testing.T, h netns.NsHandle) map[uint32]*netlink.HtbClass {
	t.Helper()
	out := map[uint32]*netlink.HtbClass{}
	testenv.In(t, h, func() {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		cs, err := netlink.ClassList(l, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if hc, ok := c.(*netlink.HtbClass); ok {
				out[hc.Handle] = hc
			}
		}
	})
	return out
}

func classBytes(cs map[uint32]*netlink.HtbClass) map[uint32]uint64 {
	out := map[uint32]uint64{}
	for h, c := range cs {
		if c.Statistics != nil && c.Statistics.Basic != nil {
			out[h] = c.Statistics.Basic.Bytes
		}
	}
	return out
}

// serveSink accepts connections on addr in h and reads them to the end.
func serveSink(t *testing.T, h netns.NsHandle, addr string) {
	t.Helper()
	var ln net.Listener
	var err error
	testenv.In(t, h, func() { ln, err = net.Listen("tcp", addr) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				io.Copy(io.Discard, c)
				c.Write([]byte("done"))
			}()
		}
	}()
}

// send writes p to addr from h and waits until the peer read it all.
func send(t *testing.T, h netns.NsHandle, addr string, p []byte) {
	t.Helper()
	var c net.Conn
	var err error
	testenv.In(t, h, func() { c, err = net.DialTimeout("tcp", addr, 5*time.Second) })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write(p); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	ack, err := io.ReadAll(c)
	if err != nil || string(ack) != "done" {
		t.Fatalf("%s: peer answered %q, %v", addr, ack, err)
	}
}
