package lab

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/pfcarp/pfcarp/compile"
	"github.com/pfcarp/pfcarp/examples/seed"
)

// iperfPort is iperf3's default port; the bench's rdr, DNAT and HAProxy
// forward it to the pool beside the seed's 80 and 443.
const iperfPort = 5201

// fwdVariant is one way of getting the client's traffic to the pool.
type fwdVariant struct {
	key, name string
	// setup builds the lab and returns the address:port the client loads
	// (host only: the port is 80 for HTTP, iperfPort for iperf3).
	setup func(ctx context.Context, b *Bench) (*Lab, netip.Addr, error)
}

func fwdVariants() []fwdVariant {
	return []fwdVariant{
		{"a", "(a) pfcarp rdr+pfsync", setupPfcarp},
		{"b", "(b) nftables by hand", setupHandNft},
		{"c", "(c) plain routing", setupRouting},
		{"d", "(d) haproxy tcp", setupHAProxy},
	}
}

// fwdLoad is the load the forwarding step applies.
type fwdLoad struct {
	dur               time.Duration
	threads, connsNew int
	connsKeep         int
}

func (b *Bench) fwdLoad() fwdLoad {
	if b.Quick {
		return fwdLoad{dur: 3 * time.Second, threads: 2, connsNew: 32, connsKeep: 64}
	}
	return fwdLoad{dur: 10 * time.Second, threads: 2, connsNew: 64, connsKeep: 256}
}

// benchForwarding measures each variant in its own lab, the variants
// interleaved within each run so that a noisy machine hurts them alike.
func benchForwarding(ctx context.Context, b *Bench, r *Report) error {
	wrk, err := lookTool("wrk", "wrk")
	if err != nil {
		note(r, "forwarding", "new conn/s", "conn/s", err.Error())
		return nil
	}
	iperf, ierr := lookTool("iperf3", "iperf3")
	ld := b.fwdLoad()
	vs := fwdVariants()
	for run := 0; run < b.runs(); run++ {
		for _, v := range vs {
			if err := ctx.Err(); err != nil {
				return err
			}
			b.logf("forwarding run %d: %s", run+1, v.name)
			if err := b.fwdOne(ctx, r, v, wrk, iperf, ierr, ld); err != nil {
				note(r, "forwarding", "new conn/s "+v.name, "conn/s", err.Error())
				b.logf("forwarding %s: %v", v.name, err)
			}
			if err := Cleanup(b.Dir, b.Prefix, nil); err != nil {
				return err
			}
		}
	}
	// The ratios of the medians.
	a, okA := r.Median("forwarding", "new conn/s (a) pfcarp rdr+pfsync")
	for _, k := range []struct{ key, name string }{{"b", "(b) nftables by hand"}, {"d", "(d) haproxy tcp"}} {
		if o, ok := r.Median("forwarding", "new conn/s "+k.name); okA && ok && o > 0 {
			add(r, "forwarding", "new conn/s a/"+k.key, "ratio", a/o)
		}
	}
	ka, okKA := r.Median("forwarding", "req/s keep-alive (a) pfcarp rdr+pfsync")
	for _, k := range []struct{ key, name string }{{"b", "(b) nftables by hand"}, {"d", "(d) haproxy tcp"}} {
		if o, ok := r.Median("forwarding", "req/s keep-alive "+k.name); okKA && ok && o > 0 {
			add(r, "forwarding", "req/s keep-alive a/"+k.key, "ratio", ka/o)
		}
	}
	return nil
}

func (b *Bench) fwdOne(ctx context.Context, r *Report, v fwdVariant, wrk, iperf string, ierr error, ld fwdLoad) error {
	l, dst, err := v.setup(ctx, b)
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	// iperf3's servers start first, so they listen when the client comes.
	if ierr == nil {
		for _, s := range l.plan.Servers() {
			stop, err := startBg(l, s.Name, "iperf3.log", iperf, "-s", "--forceflush", "-p", strconv.Itoa(iperfPort))
			if err != nil {
				return err
			}
			defer stop()
		}
	}
	url := "http://" + netip.AddrPortFrom(dst, 80).String() + "/"
	wrkArgs := func(conns int, extra ...string) []string {
		return append([]string{wrk, "--latency", "-t", strconv.Itoa(ld.threads), "-c", strconv.Itoa(conns),
			"-d", strconv.Itoa(int(ld.dur.Seconds())) + "s", "--timeout", "2s"}, append(extra, url)...)
	}
	// New connections: every request on its own connection.
	out, err := runOut(ctx, l, "client", wrkArgs(ld.connsNew, "-H", "Connection: close")...)
	if err != nil {
		return err
	}
	w, err := ParseWrk(bytes.NewReader(out))
	if err != nil {
		return err
	}
	add(r, "forwarding", "new conn/s "+v.name, "conn/s", w.RPS)
	add(r, "forwarding", "new conn p50 "+v.name, "ms", ms(w.P50))
	add(r, "forwarding", "new conn p99 "+v.name, "ms", ms(w.P99))
	if w.Errors > 0 {
		note(r, "forwarding", "new conn/s "+v.name, "conn/s", "wrk errors: "+w.SocketErrs)
	}
	// Requests on kept-alive connections.
	out, err = runOut(ctx, l, "client", wrkArgs(ld.connsKeep)...)
	if err != nil {
		return err
	}
	if w, err = ParseWrk(bytes.NewReader(out)); err != nil {
		return err
	}
	add(r, "forwarding", "req/s keep-alive "+v.name, "req/s", w.RPS)
	add(r, "forwarding", "keep-alive p50 "+v.name, "ms", ms(w.P50))
	add(r, "forwarding", "keep-alive p99 "+v.name, "ms", ms(w.P99))
	// Bulk throughput.
	if ierr != nil {
		note(r, "forwarding", "iperf3 "+v.name, "Gbit/s", ierr.Error())
		return nil
	}
	// iperf3 -s serves one test at a time and takes any connection for a
	// test's control connection, so it is not probed: the client retries
	// while the server is not listening yet.
	for try := 0; ; try++ {
		out, err = runOut(ctx, l, "client", iperf, "-c", dst.String(), "-p", strconv.Itoa(iperfPort), "-t", strconv.Itoa(int(ld.dur.Seconds())), "-J")
		if err == nil || try >= 100 || !bytes.Contains(out, []byte("Connection refused")) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	ir, perr := ParseIperf3(out)
	if perr != nil {
		if os.Getenv("PFCARP_BENCH_DEBUG") != "" {
			for _, n := range []string{"lb1"} {
				d, _ := runOut(ctx, l, n, l.st.Bin, "pfctl", "-s", "all")
				b.logf("debug %s:\n%s", n, d)
			}
			for _, s := range l.plan.Servers() {
				b.logf("debug %s iperf3.log: %s", s.Name, tail(filepath.Join(l.NodeDir(s.Name), "iperf3.log")))
			}
		}
		if err != nil {
			return err
		}
		return perr
	}
	add(r, "forwarding", "iperf3 "+v.name, "Gbit/s", ir.BitsPerSecond/1e9)
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// waitTCP polls until addr accepts a TCP connection from node.
func waitTCP(ctx context.Context, l *Lab, node string, addr netip.AddrPort, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		dctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		c, err := l.Dial(dctx, node, "tcp", addr.String())
		cancel()
		if err == nil {
			_ = c.Close() // only the connect was the test
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s does not answer from %s: %w", addr, node, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (l *Lab) extVIP() netip.Addr {
	s, _ := l.plan.Segment(SegExternal)
	return s.VIP
}

// benchPfConf is the seed's pf.conf with iperf3's port added to web_ports,
// so the bulk figure goes through the same rdr.
func benchPfConf() ([]byte, error) {
	pf, err := seed.ReadFile("pf.conf")
	if err != nil {
		return nil, err
	}
	old := []byte(`web_ports = "{ 80, 443 }"`)
	if !bytes.Contains(pf, old) {
		return nil, fmt.Errorf("examples/seed/pf.conf: no line %s to add port %d to", old, iperfPort)
	}
	return bytes.Replace(pf, old, []byte(fmt.Sprintf(`web_ports = "{ 80, 443, %d }"`, iperfPort)), 1), nil
}

// pfcarpCluster builds the seed cluster with the bench's pf.conf and waits
// until lb1 is MASTER and lb2 BACKUP.
func (b *Bench) pfcarpCluster(ctx context.Context, start bool) (*Lab, error) {
	pf, err := benchPfConf()
	if err != nil {
		return nil, err
	}
	o, err := WithCluster(Options{Dir: b.Dir, NodeFiles: map[string]map[string][]byte{}})
	if err != nil {
		return nil, err
	}
	for _, n := range []string{"lb1", "lb2"} {
		o.NodeFiles[n]["pf.conf"] = TranslateAddrs(pf, AddressingFor(true), AddressingFor(false))
	}
	o.StartDaemons = start
	l, err := b.benchLab(ctx, o)
	if err != nil {
		return nil, err
	}
	if !start {
		return l, nil
	}
	if err := waitMaster(ctx, l, "lb1", "lb2"); err != nil {
		return l, err
	}
	return l, nil
}

// waitMaster waits until master's daemon is MASTER of every group and
// backup's BACKUP.
func waitMaster(ctx context.Context, l *Lab, master, backup string) error {
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	_, err := l.WaitCARP(wctx, map[string]string{master: "MASTER", backup: "BACKUP"})
	return err
}

func setupPfcarp(ctx context.Context, b *Bench) (*Lab, netip.Addr, error) {
	l, err := b.pfcarpCluster(ctx, true)
	if err != nil {
		return nil, netip.Addr{}, err
	}
	return l, l.extVIP(), waitTCP(ctx, l, "client", netip.AddrPortFrom(l.extVIP(), 80), 5*time.Second)
}

func setupRouting(ctx context.Context, b *Bench) (*Lab, netip.Addr, error) {
	l, err := b.benchLab(ctx, Options{})
	if err != nil {
		return nil, netip.Addr{}, err
	}
	if err := l.StaticBalancer("lb1"); err != nil {
		return l, netip.Addr{}, err
	}
	s1, _ := l.plan.Addr("s1", "eth0")
	return l, s1, waitTCP(ctx, l, "client", netip.AddrPortFrom(s1, 80), 5*time.Second)
}

// handNftTable is the name of the hand-written table of variant (b).
const handNftTable = "bench_dnat"

// setupHandNft is variant (b): the same DNAT as the seed's rdr
// (round-robin over the pool, sticky-address for DefaultStickyTimeout)
// written by hand with nftables in lb1, without pfcarp's daemon, filter
// rules or pfsync: the kernel's ceiling for (a). In nft(8) syntax:
//
//	table ip bench_dnat {
//	  map pool { type integer : ipv4_addr; elements = { 0 : S1, 1 : S2 } }
//	  map sticky { type ipv4_addr : ipv4_addr; flags dynamic,timeout; timeout 5m }
//	  chain pre { type nat hook prerouting priority dstnat;
//	    ip daddr VIP tcp dport { 80, 443, 5201 } dnat to ip saddr map @sticky update @sticky { ip saddr : ... }
//	    ip daddr VIP tcp dport { 80, 443, 5201 } dnat to numgen inc mod 2 map @pool update @sticky { ... }
//	  }
//	}
func setupHandNft(ctx context.Context, b *Bench) (*Lab, netip.Addr, error) {
	l, err := b.benchLab(ctx, Options{})
	if err != nil {
		return nil, netip.Addr{}, err
	}
	if err := l.StaticBalancer("lb1"); err != nil {
		return l, netip.Addr{}, err
	}
	vip := l.extVIP()
	var pool []netip.Addr
	for _, s := range l.plan.Servers() {
		a, _ := l.plan.Addr(s.Name, "eth0")
		pool = append(pool, a)
	}
	err = handNftDNAT(l, "lb1", vip, pool)
	if err != nil {
		return l, netip.Addr{}, fmt.Errorf("hand-written nftables DNAT: %w", err)
	}
	if err := waitTCP(ctx, l, "client", netip.AddrPortFrom(vip, 80), 5*time.Second); err != nil {
		return l, vip, fmt.Errorf("%w (haproxy.log: %s)", err, tail(filepath.Join(l.NodeDir("lb1"), "haproxy.log")))
	}
	return l, vip, nil
}

// haproxyConfig is variant (d)'s configuration: HAProxy on lb1 in TCP mode
// for the same ports and pool, with the stickiness its configuration
// manual gives for source affinity (a stick-table on src: "stick on src")
// over round-robin. Servers have no port: HAProxy then connects to the
// port the client asked for. Timeouts are the manual's example values.
func haproxyConfig(vip netip.Addr, pool []netip.Addr) []byte {
	var b strings.Builder
	b.WriteString(`# written by pfcarp lab bench (variant (d))
global
defaults
	mode tcp
	timeout connect 5s
	timeout client 50s
	timeout server 50s
frontend web
`)
	for _, p := range []int{80, 443, iperfPort} {
		fmt.Fprintf(&b, "\tbind %s\n", netip.AddrPortFrom(vip, uint16(p)))
	}
	b.WriteString("\tdefault_backend pool\nbackend pool\n\tbalance roundrobin\n\tstick-table type ip size 1m expire 5m\n\tstick on src\n")
	for i, a := range pool {
		fmt.Fprintf(&b, "\tserver s%d %s\n", i+1, a)
	}
	return []byte(b.String())
}

func setupHAProxy(ctx context.Context, b *Bench) (*Lab, netip.Addr, error) {
	hap, err := lookTool("haproxy", "haproxy")
	if err != nil {
		return nil, netip.Addr{}, err
	}
	l, err := b.benchLab(ctx, Options{})
	if err != nil {
		return nil, netip.Addr{}, err
	}
	if err := l.StaticBalancer("lb1"); err != nil {
		return l, netip.Addr{}, err
	}
	vip := l.extVIP()
	var pool []netip.Addr
	for _, s := range l.plan.Servers() {
		a, _ := l.plan.Addr(s.Name, "eth0")
		pool = append(pool, a)
	}
	cfg := filepath.Join(l.NodeDir("lb1"), "haproxy.cfg")
	if err := os.WriteFile(cfg, haproxyConfig(vip, pool), 0o644); err != nil {
		return l, netip.Addr{}, err
	}
	// -db: foreground, no daemon; the lab's Cleanup kills it with the namespace's processes.
	if _, err := startBg(l, "lb1", "haproxy.log", hap, "-db", "-f", cfg); err != nil {
		return l, netip.Addr{}, err
	}
	if err := waitTCP(ctx, l, "client", netip.AddrPortFrom(vip, 80), 5*time.Second); err != nil {
		return l, vip, fmt.Errorf("%w (haproxy.log: %s)", err, tail(filepath.Join(l.NodeDir("lb1"), "haproxy.log")))
	}
	return l, vip, nil
}

// handNftDNAT loads variant (b)'s table into node.
func handNftDNAT(l *Lab, node string, vip netip.Addr, pool []netip.Addr) error {
	return l.InNode(node, func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: handNftTable})
		poolMap := &nftables.Set{Table: t, Name: "pool", IsMap: true, Constant: true, KeyType: nftables.TypeInteger, DataType: nftables.TypeIPAddr}
		var me []nftables.SetElement
		for i, a := range pool {
			k := make([]byte, 4)
			binary.NativeEndian.PutUint32(k, uint32(i))
			me = append(me, nftables.SetElement{Key: k, Val: a.AsSlice()})
		}
		if err := c.AddSet(poolMap, me); err != nil {
			return err
		}
		sticky := &nftables.Set{Table: t, Name: "sticky", IsMap: true, Dynamic: true, HasTimeout: true,
			Timeout: compile.DefaultStickyTimeout, KeyType: nftables.TypeIPAddr, DataType: nftables.TypeIPAddr}
		if err := c.AddSet(sticky, nil); err != nil {
			return err
		}
		ch := c.AddChain(&nftables.Chain{Table: t, Name: "pre", Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest})
		// An anonymous set binds to one rule: each rule gets its own.
		match := func() ([]expr.Any, error) {
			ports := &nftables.Set{Table: t, Anonymous: true, Constant: true, KeyType: nftables.TypeInetService}
			var pe []nftables.SetElement
			for _, p := range []uint16{80, 443, iperfPort} {
				pe = append(pe, nftables.SetElement{Key: []byte{byte(p >> 8), byte(p)}})
			}
			if err := c.AddSet(ports, pe); err != nil {
				return nil, err
			}
			return []expr.Any{
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: vip.AsSlice()},
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Lookup{SourceRegister: 1, SetName: ports.Name, SetID: ports.ID},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
			}, nil
		}
		tail := []expr.Any{
			&expr.Dynset{SrcRegKey: 1, SrcRegData: 2, SetName: sticky.Name, SetID: sticky.ID, Operation: unix.NFT_DYNSET_OP_UPDATE},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 2},
		}
		reuse, err := match()
		if err != nil {
			return err
		}
		reuse = append(append(reuse,
			&expr.Lookup{SourceRegister: 1, DestRegister: 2, IsDestRegSet: true, SetName: sticky.Name, SetID: sticky.ID}), tail...)
		choose, err := match()
		if err != nil {
			return err
		}
		choose = append(append(choose,
			&expr.Numgen{Register: 2, Modulus: uint32(len(pool)), Type: unix.NFT_NG_INCREMENTAL},
			&expr.Lookup{SourceRegister: 2, DestRegister: 2, IsDestRegSet: true, SetName: poolMap.Name, SetID: poolMap.ID}), tail...)
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: reuse})
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: choose})
		return c.Flush()
	})
}
