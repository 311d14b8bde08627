package compile

import (
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// prioObserver is a table of the test's own in the router's namespace
// that counts, after pfcarp's chains (postrouting priority 300), the
// packets matching each of its conditions.
type prioObserver struct {
	nc    *nftables.Conn
	table *nftables.Table
	chain *nftables.Chain
	names []string
}

func newPrioObserver(t *testing.T, b *bed, conds map[string]func(*builder)) *prioObserver {
	t.Helper()
	nc, err := nftables.New(nftables.WithNetNSFd(b.router.FD()))
	if err != nil {
		t.Fatal(err)
	}
	o := &prioObserver{nc: nc}
	o.table = nc.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "pfrf_obs"})
	o.chain = nc.AddChain(&nftables.Chain{Name: "post", Table: o.table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityRef(300)})
	for name, cond := range conds {
		bl := &builder{}
		cond(bl)
		bl.counter()
		nc.AddRule(&nftables.Rule{Table: o.table, Chain: o.chain, Exprs: bl.exprs, UserData: []byte(name)})
		o.names = append(o.names, name)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		nc.DelTable(o.table)
		nc.Flush()
	})
	return o
}

func (o *prioObserver) counts(t *testing.T) map[string]uint64 {
	t.Helper()
	rules, err := o.nc.GetRules(o.table, o.chain)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, r := range rules {
		for _, e := range r.Exprs {
			if c, ok := e.(*expr.Counter); ok {
				out[string(r.UserData)] = c.Packets
			}
		}
	}
	return out
}

func priorityIs(b *builder, p uint32, eq bool) {
	b.add("", &expr.Meta{Key: expr.MetaKeyPRIORITY, Register: 1},
		&expr.Cmp{Op: cmpOp(!eq), Register: 1, Data: u32(p)})
}

func tosLowdelay(b *builder, set bool) {
	b.family(famV4)
	op := expr.CmpOpEq
	if set {
		op = expr.CmpOpNeq
	}
	b.add("", &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 1, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x10}, Xor: []byte{0}},
		&expr.Cmp{Op: op, Register: 1, Data: []byte{0}})
}

// getTOS is nfttest's Get with the socket's IPv4 TOS set.
func getTOS(b *bed, src netip.Addr, dst string, tos int) (string, error) {
	var c net.Conn
	err := b.client.Do(func() (err error) {
		d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: src.AsSlice()},
			Control: func(_, _ string, rc syscall.RawConn) error {
				var serr error
				if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TOS, tos) }); err != nil {
					return err
				}
				return serr
			}}
		c, err = d.Dial("tcp", dst)
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// set prio (3, 5): a forwarded connection's SYN and data segments leave
// with priority 3, its ACKs without data (both directions) with 5, and
// with TOS lowdelay every packet leaves with 5.
func TestKernelSetPrioPair(t *testing.T) {
	b := newBed(t)
	b.load(t, `
set skip on lo
pass out on eth1 proto tcp set prio (3, 5)
`)
	tcpOnly := func(b *builder) { b.proto(protoTCP) }
	conds := map[string]func(*builder){
		"data at 3": func(b *builder) {
			tosLowdelay(b, false)
			tcpOnly(b)
			tcpFlags(b, tcpPSH, tcpPSH)
			priorityIs(b, 3, true)
		},
		"data not at 3": func(b *builder) {
			tosLowdelay(b, false)
			tcpOnly(b)
			tcpFlags(b, tcpPSH, tcpPSH)
			priorityIs(b, 3, false)
		},
		"bare ACK at 5": func(b *builder) {
			tosLowdelay(b, false)
			tcpOnly(b)
			tcpFlags(b, 0x3f, tcpACK)
			priorityIs(b, 5, true)
		},
		"bare ACK not at 5": func(b *builder) {
			tosLowdelay(b, false)
			tcpOnly(b)
			tcpFlags(b, 0x3f, tcpACK)
			priorityIs(b, 5, false)
		},
		"SYN at 3": func(b *builder) {
			tosLowdelay(b, false)
			tcpOnly(b)
			tcpFlags(b, 0x3f, tcpSYN)
			priorityIs(b, 3, true)
		},
		"SYN not at 3": func(b *builder) {
			tosLowdelay(b, false)
			tcpOnly(b)
			tcpFlags(b, 0x3f, tcpSYN)
			priorityIs(b, 3, false)
		},
		"lowdelay at 5": func(b *builder) {
			tosLowdelay(b, true)
			priorityIs(b, 5, true)
		},
		"lowdelay not at 5": func(b *builder) {
			tosLowdelay(b, true)
			priorityIs(b, 5, false)
		},
	}
	o := newPrioObserver(t, b, conds)
	if got, err := b.get(clientA, "198.51.100.20:80"); err != nil || got != "s1" {
		t.Fatalf("connection: %q, %v", got, err)
	}
	if got, err := getTOS(b, clientA, "198.51.100.20:80", 0x10); err != nil || got != "s1" {
		t.Fatalf("lowdelay connection: %q, %v", got, err)
	}
	c := o.counts(t)
	for _, name := range []string{"data at 3", "bare ACK at 5", "SYN at 3", "lowdelay at 5"} {
		if c[name] == 0 {
			t.Errorf("no packet %s: %v", name, c)
		}
	}
	for _, name := range []string{"data not at 3", "bare ACK not at 5", "SYN not at 3", "lowdelay not at 5"} {
		if c[name] != 0 {
			t.Errorf("%d packets %s: %v", c[name], name, c)
		}
	}
}
