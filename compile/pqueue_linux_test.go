package compile

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/pfcarp/pfcarp/internal/testenv"
	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/tc"
)

const pqueueConf = `
queue rootq on eth0 bandwidth 100M max 100M
queue std parent rootq bandwidth 10M default
queue data parent rootq bandwidth 10M
queue ack parent rootq bandwidth 10M
pass
pass in proto tcp to port { 8080, 8081 } queue (data, ack)
pass out proto tcp to port 22 set queue (data, ack)
`

// iptosLowdelay is IPTOS_LOWDELAY (netinet/ip.h).
const iptosLowdelay = 0x10

// classCounts is the bytes and packets an HTB class has sent.
type classCounts struct{ bytes, packets uint64 }

func readCounts(t *testing.T, h netns.NsHandle) map[uint32]classCounts {
	t.Helper()
	out := map[uint32]classCounts{}
	for id, c := range readClasses(t, h) {
		if c.Statistics != nil && c.Statistics.Basic != nil {
			out[id] = classCounts{c.Statistics.Basic.Bytes, uint64(c.Statistics.Basic.Packets)}
		}
	}
	return out
}

// TestKernelQueuePairs loads "queue (data, ack)" rules on one end of a
// veth pair (HTB on its eth0) and checks, by the classes' counters, that
// the kernel sends the replies of an inbound connection with data in
// class data and its empty ACKs in class ack, the data of a connection
// whose server sets TOS lowdelay in class ack, and for an outbound rule
// (set queue) the data in class data and the empty ACKs in class ack.
func TestKernelQueuePairs(t *testing.T) {
	testenv.RequireRoot(t)
	a, b := netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("192.0.2.2/24")
	hs, _ := testenv.TwoHosts(t, "paq", a, b)
	has, err := tc.Probe()
	if err != nil {
		t.Fatal(err)
	}
	if !has(tc.HTB) {
		t.Fatal("this kernel has no HTB qdisc (CONFIG_NET_SCH_HTB)")
	}
	prog, err := Compile(ruleset(t, pqueueConf), Options{Host: testHost, Queues: has})
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
	const n = 200 << 10
	payload := bytes.Repeat([]byte("p"), n)
	delta := func(before, after map[uint32]classCounts, name string) classCounts {
		a, b := after[id(name)], before[id(name)]
		return classCounts{a.bytes - b.bytes, a.packets - b.packets}
	}
	// An empty ACK is at most 14 + 60 + 60 bytes (Ethernet, IPv4 and TCP
	// headers with options); Linux's are 66 with timestamps.
	const maxEmpty = 134
	checkEmpty := func(what string, c classCounts, min uint64) {
		t.Helper()
		t.Logf("%s: class ack %d packets, %d bytes", what, c.packets, c.bytes)
		if c.packets < min {
			t.Errorf("%s: class ack sent %d packets, want at least %d empty ACKs", what, c.packets, min)
		}
		if c.bytes > c.packets*maxEmpty {
			t.Errorf("%s: class ack sent %d bytes in %d packets: more than empty ACKs", what, c.bytes, c.packets)
		}
	}

	// 1. Inbound to 8080: hs[1] sends n bytes, hs[0] acknowledges them
	// (empty ACKs: class ack) and answers with n bytes (class data).
	before := readCounts(t, hs[0])
	echoTOS(t, hs[0], "192.0.2.1:8080", 0, hs[1], payload)
	after := readCounts(t, hs[0])
	d := delta(before, after, "data")
	t.Logf("8080: class data %d packets, %d bytes", d.packets, d.bytes)
	if d.bytes < n || d.bytes > n+n/2 {
		t.Errorf("8080: class data sent %d bytes, want the %d of the answer", d.bytes, n)
	}
	checkEmpty("8080", delta(before, after, "ack"), 3)

	// 2. Inbound to 8081, the server's socket has TOS lowdelay: its data
	// goes to class ack too.
	before = readCounts(t, hs[0])
	echoTOS(t, hs[0], "192.0.2.1:8081", iptosLowdelay, hs[1], payload)
	after = readCounts(t, hs[0])
	if d := delta(before, after, "ack"); d.bytes < n {
		t.Errorf("8081 (lowdelay): class ack sent %d bytes, want at least the %d of the answer", d.bytes, n)
	}
	if d := delta(before, after, "data"); d.bytes > n/10 {
		t.Errorf("8081 (lowdelay): class data sent %d bytes, want none of the lowdelay answer", d.bytes)
	}

	// 3. Outbound to 22 (set queue on an outbound rule: the original
	// direction's label word): hs[0] sends n bytes; the handshake's ACK
	// and the ACK of the peer's "done" are empty.
	serveSink(t, hs[1], "192.0.2.2:22")
	before = readCounts(t, hs[0])
	send(t, hs[0], "192.0.2.2:22", payload)
	after = readCounts(t, hs[0])
	if d := delta(before, after, "data"); d.bytes < n || d.bytes > n+n/2 {
		t.Errorf("22: class data sent %d bytes, want the %d sent", d.bytes, n)
	}
	checkEmpty("22", delta(before, after, "ack"), 2)
}

// echoTOS listens on addr in server (with IP_TOS tos when not 0), and from
// client sends p, reads the server's answer (p again) and checks it.
func echoTOS(t *testing.T, server netns.NsHandle, addr string, tos int, client netns.NsHandle, p []byte) {
	t.Helper()
	setTOS := func(rc syscall.RawConn) error {
		if tos == 0 {
			return nil
		}
		var serr error
		err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TOS, tos) })
		if err != nil {
			return err
		}
		return serr
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error { return setTOS(rc) }}
	var ln net.Listener
	var err error
	testenv.In(t, server, func() { ln, err = lc.Listen(context.Background(), "tcp", addr) })
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if rc, err := c.(*net.TCPConn).SyscallConn(); err != nil || setTOS(rc) != nil {
			return // the client's check fails
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		got, err := io.ReadAll(c)
		if err == nil {
			c.Write(got)
		}
	}()
	var c net.Conn
	testenv.In(t, client, func() { c, err = net.DialTimeout("tcp", addr, 5*time.Second) })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write(p); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, p) {
		t.Fatalf("%s: read %d bytes back of %d: %v", addr, len(got), len(p), err)
	}
}
