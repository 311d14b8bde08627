package pfsync

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"

	"github.com/pfcarp/pfcarp/internal/testenv"
)

// queueNewTCP loads, into n's nftables, an output rule that queues the
// first packet of each new TCP connection to port to queue 0. It uses
// the plain NF_QUEUE verdict (queue 0, no bypass), which needs no
// nft_queue, so that the queue path can be tested on kernels without it;
// a deployment uses the queue statement with bypass.
func queueNewTCP(t *testing.T, n *testNS, port uint16) {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(n.h)))
	if err != nil {
		t.Fatal(err)
	}
	tb := c.AddTable(&nftables.Table{Name: "pfsync_defer", Family: nftables.TableFamilyINet})
	ch := c.AddChain(&nftables.Chain{Name: "out", Table: tb, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter})
	c.AddRule(&nftables.Rule{Table: tb, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{byte(port >> 8), byte(port)}},
		&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitNEW), Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
		&expr.Verdict{Kind: expr.VerdictQueue},
	}})
	if err := c.Flush(); err != nil {
		t.Fatalf("nftables queue rule in %s: %v", n.name, err)
	}
}

// TestDeferOverNFQueue runs `defer` through the kernel: router A's first
// packet of a new connection waits in NFQUEUE while its state goes to B;
// B's ack releases it, and the connection completes with B already
// holding its entry.
func TestDeferOverNFQueue(t *testing.T) {
	testenv.RequireRoot(t)
	ra, rb := newNS(t, "ra"), newNS(t, "rb")
	var q *NFQueue
	var qerr error
	ra.do(t, func() error { q, qerr = ListenNFQueue(0); return nil })
	if errors.Is(qerr, ErrDeferUnsupported) {
		t.Skipf("the kernel cannot run defer: %v", qerr)
	} else if qerr != nil {
		t.Fatal(qerr)
	}
	link(t, ra, "async", "169.254.240.1/24", rb, "bsync", "169.254.240.2/24")
	ra.do(t, func() error { return waitOperUp("async") })
	rb.do(t, func() error { return waitOperUp("bsync") })
	key := []byte("defer test")
	na := startSyncNode(t, ra, "async", 1, key)
	nb := startSyncNode(t, rb, "bsync", 2, key)
	poll(t, "bulk updates", func() bool { return na.r.Status().Bulk == "idle" && nb.r.Status().Bulk == "idle" })

	stop := make(chan struct{})
	served := make(chan error, 1)
	go func() { served <- ServeDefer(na.r, q, stop) }()
	t.Cleanup(func() {
		close(stop)
		q.Close()
		if err := <-served; err != nil {
			t.Errorf("ServeDefer: %v", err)
		}
	})
	var ln net.Listener
	ra.do(t, func() error { var err error; ln, err = net.Listen("tcp4", "127.0.0.1:7777"); return err })
	defer ln.Close()
	queueNewTCP(t, ra, 7777)

	var c net.Conn
	ra.do(t, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, "tcp4", "127.0.0.1:7777")
		return err
	})
	defer c.Close()
	local := c.LocalAddr().(*net.TCPAddr).AddrPort()
	st := na.r.Status()
	if st.Deferred != 1 || st.DeferAcked != 1 {
		t.Fatalf("A: deferred %d, acked %d (timeouts %d); want 1, 1", st.Deferred, st.DeferAcked, st.DeferTimeouts)
	}
	found := false
	for _, s := range dumpIn(t, rb) {
		if s.Proto == unix.IPPROTO_TCP && s.Orig.SrcPort == local.Port() && s.Orig.DstPort == 7777 {
			found = true
		}
	}
	if !found {
		t.Fatalf("B does not hold the connection from %v", local)
	}
}

// TestDecodeQueued decodes a queued-packet message as the kernel builds
// it (NFQA_PACKET_HDR, and NFQA_CT nested with the entry's ctnetlink
// attributes), since the kernel here cannot produce one: the conntrack
// attributes are those Inject writes for a state without NAT.
func TestDecodeQueued(t *testing.T) {
	s := benchState(9)
	s.Status = StatusSeenReply | StatusConfirmed
	s.Reply = s.Orig.Invert()
	s.Mark, s.TCP.State = 0x42, TCPSynSent
	ctm, err := injectMessage(&s, true)
	if err != nil {
		t.Fatal(err)
	}
	hdr := []byte{0, 0, 0, 7, 0x08, 0x00, 3} // packet id 7, IPv4, hook 3 (output)
	m, err := netfilter.MarshalNetlink(netfilter.Header{SubsystemID: nfnlSubsysQueue, MessageType: nfqnlMsgPacket,
		Family: netfilter.ProtoIPv4, ResourceID: 0}, []netfilter.Attribute{
		{Type: nfqaPacketHdr, Data: hdr},
		{Type: nfqaCT | unix.NLA_F_NESTED, Data: ctm.Data[4:]},
	})
	if err != nil {
		t.Fatal(err)
	}
	p, ok, err := decodeQueued(m)
	if err != nil || !ok || p.ID != 7 || !p.HasState {
		t.Fatalf("decoded %+v ok %v: %v", p, ok, err)
	}
	g := p.State
	if g.Key() != s.Key() || g.Reply != s.Reply || g.Mark != s.Mark || g.TCP.State != s.TCP.State || g.Status&StatusSeenReply == 0 {
		t.Fatalf("decoded state %+v, want %+v", g, s)
	}
	// A packet without conntrack information has no state.
	m2, _ := netfilter.MarshalNetlink(netfilter.Header{SubsystemID: nfnlSubsysQueue, MessageType: nfqnlMsgPacket,
		Family: netfilter.ProtoIPv4}, []netfilter.Attribute{{Type: nfqaPacketHdr, Data: hdr}})
	if p, ok, err := decodeQueued(m2); err != nil || !ok || p.HasState {
		t.Fatalf("without NFQA_CT: %+v %v %v", p, ok, err)
	}
}
