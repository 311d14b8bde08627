package lab

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// isolateTable is the nftables table (family netdev) that Isolate puts in a
// node's namespace. It belongs to the lab, never to pfcarp's own ruleset.
const isolateTable = "pfcarp_lab_isolate"

// SetCable plugs (up) or pulls (!up) the cable of node's iface: the switch
// end of the veth goes down, so the node sees NO-CARRIER as with a real
// unplugged cable, while its own interface stays administratively up.
func (l *Lab) SetCable(node, iface string, up bool) error {
	n, err := l.node(node)
	if err != nil {
		return err
	}
	if n.Role == RoleSwitch {
		return fmt.Errorf("node %s is a switch; name the node at the other end of the cable", node)
	}
	ifc, ok := n.Iface(iface)
	if !ok {
		var names []string
		for _, i := range n.Ifaces {
			names = append(names, i.Name)
		}
		return fmt.Errorf("node %s has no interface %q (it has %v)", node, iface, names)
	}
	seg, _ := l.plan.Segment(ifc.Segment)
	h, ns, err := l.nsHandle(seg.Switch)
	if err != nil {
		return err
	}
	defer ns.Close()
	defer h.Close()
	port := portName(node, iface)
	link, err := h.LinkByName(port)
	if err != nil {
		return fmt.Errorf("switch %s: port %s: %w", seg.Switch, port, err)
	}
	if up {
		err = h.LinkSetUp(link)
	} else {
		err = h.LinkSetDown(link)
	}
	if err != nil {
		return fmt.Errorf("switch %s: port %s: %w", seg.Switch, port, err)
	}
	return nil
}

// CutSync pulls the sync cable of both balancers; HealSync plugs them in.
func (l *Lab) CutSync() error { return l.setSync(false) }

// HealSync restores the sync cables CutSync pulled.
func (l *Lab) HealSync() error { return l.setSync(true) }

func (l *Lab) setSync(up bool) error {
	var errs []error
	for _, n := range l.plan.Nodes {
		for _, ifc := range n.Ifaces {
			if n.Role != RoleSwitch && ifc.Segment == SegSync {
				errs = append(errs, l.SetCable(n.Name, ifc.Name, up))
			}
		}
	}
	return errors.Join(errs...)
}

// Isolate drops all of node's traffic, in and out on every interface,
// without touching carrier: a netdev-family nftables table with an ingress
// and an egress chain per interface, policy drop. Isolating twice is fine.
func (l *Lab) Isolate(node string) error {
	n, err := l.node(node)
	if err != nil {
		return err
	}
	if n.Role == RoleSwitch {
		return fmt.Errorf("node %s is a switch; isolate the nodes on it, or pull cables", node)
	}
	return l.withNft(node, func(c *nftables.Conn) error {
		if t, _ := findTable(c); t != nil {
			return nil
		}
		t := c.AddTable(&nftables.Table{Name: isolateTable, Family: nftables.TableFamilyNetdev})
		drop := nftables.ChainPolicyDrop
		for _, ifc := range n.Ifaces {
			c.AddChain(&nftables.Chain{Name: "in_" + ifc.Name, Table: t, Type: nftables.ChainTypeFilter,
				Hooknum: nftables.ChainHookIngress, Priority: nftables.ChainPriorityFilter, Device: ifc.Name, Policy: &drop})
		}
		if err := c.Flush(); err != nil {
			return nftFeatureErr("netdev family with ingress hook", "CONFIG_NF_TABLES_NETDEV, CONFIG_NET_INGRESS", err)
		}
		for _, ifc := range n.Ifaces {
			c.AddChain(&nftables.Chain{Name: "out_" + ifc.Name, Table: t, Type: nftables.ChainTypeFilter,
				Hooknum: nftables.ChainHookEgress, Priority: nftables.ChainPriorityFilter, Device: ifc.Name, Policy: &drop})
		}
		if err := c.Flush(); err != nil {
			c.DelTable(t)
			derr := c.Flush()
			return errors.Join(nftFeatureErr("netdev egress hook", "CONFIG_NETFILTER_EGRESS", err), derr)
		}
		return nil
	})
}

// Heal undoes Isolate. Healing a node that is not isolated is fine.
func (l *Lab) Heal(node string) error {
	if _, err := l.node(node); err != nil {
		return err
	}
	return l.withNft(node, func(c *nftables.Conn) error {
		t, err := findTable(c)
		if err != nil || t == nil {
			return err
		}
		c.DelTable(t)
		return c.Flush()
	})
}

// Isolated reports whether node is isolated.
func (l *Lab) Isolated(node string) (bool, error) {
	var t *nftables.Table
	err := l.withNft(node, func(c *nftables.Conn) error {
		var err error
		t, err = findTable(c)
		return err
	})
	return t != nil, err
}

func (l *Lab) withNft(node string, fn func(*nftables.Conn) error) error {
	h, ns, err := l.nsHandle(node)
	if err != nil {
		return err
	}
	h.Close()
	defer ns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return fmt.Errorf("node %s: nftables: %w", node, err)
	}
	defer c.CloseLasting()
	if err := fn(c); err != nil {
		return fmt.Errorf("node %s: %w", node, err)
	}
	return nil
}

func findTable(c *nftables.Conn) (*nftables.Table, error) {
	ts, err := c.ListTablesOfFamily(nftables.TableFamilyNetdev)
	if err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EPROTONOSUPPORT) {
			return nil, nftFeatureErr("nftables", "CONFIG_NF_TABLES", err)
		}
		return nil, fmt.Errorf("list nftables tables: %w", err)
	}
	for _, t := range ts {
		if t.Name == isolateTable {
			return t, nil
		}
	}
	return nil, nil
}

func nftFeatureErr(feature, config string, err error) error {
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EAFNOSUPPORT) ||
		errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("isolate: kernel lacks nftables %s (%s): %w", feature, config, err)
	}
	return fmt.Errorf("isolate: %w", err)
}

// StartDaemon starts node's configured daemon (logging to daemon.log in the
// node's directory). It fails when none is configured or one already runs.
func (l *Lab) StartDaemon(node string) error {
	if _, err := l.node(node); err != nil {
		return err
	}
	l.mu.Lock()
	ns := l.st.Nodes[node]
	argv, ref := ns.Daemon, ns.DaemonProc
	l.mu.Unlock()
	if len(argv) == 0 {
		return fmt.Errorf("node %s has no daemon configured (the lab was built without one)", node)
	}
	if ref.alive() {
		return fmt.Errorf("node %s: daemon already runs (pid %d)", node, ref.PID)
	}
	ref, err := l.startDetached(node, "daemon.log", argv)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.st.Nodes[node].DaemonProc = ref
	err = l.saveLocked()
	l.mu.Unlock()
	return err
}

// KillDaemon kills node's daemon with SIGKILL (a crash, no clean shutdown)
// and waits until it is gone. Killing a daemon that is not running is an
// error that says so.
func (l *Lab) KillDaemon(node string) error {
	if _, err := l.node(node); err != nil {
		return err
	}
	l.mu.Lock()
	ns := l.st.Nodes[node]
	argv, ref := ns.Daemon, ns.DaemonProc
	l.mu.Unlock()
	if len(argv) == 0 {
		return fmt.Errorf("node %s has no daemon configured (the lab was built without one)", node)
	}
	if !ref.alive() {
		return fmt.Errorf("node %s: daemon is not running", node)
	}
	if err := l.killWait(node, "daemon", ref); err != nil {
		return err
	}
	l.mu.Lock()
	l.st.Nodes[node].DaemonProc = procRef{}
	err := l.saveLocked()
	l.mu.Unlock()
	return err
}

// killWait sends ref (node's what) SIGKILL and waits, 3 s at most, until
// it is gone.
func (l *Lab) killWait(node, what string, ref procRef) error {
	if err := ref.kill(); err != nil {
		return fmt.Errorf("node %s: %w", node, err)
	}
	l.reap(ref.PID)
	deadline := time.Now().Add(3 * time.Second)
	for ref.alive() {
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s: %s pid %d survived SIGKILL for 3s", node, what, ref.PID)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// DaemonRunning reports whether node's daemon runs (false for a node
// without one).
func (l *Lab) DaemonRunning(node string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	ns := l.st.Nodes[node]
	return ns != nil && ns.DaemonProc.alive()
}

// linkCarrier reports a link's admin state and carrier.
func linkCarrier(link netlink.Link) (up, carrier bool) {
	a := link.Attrs()
	return a.Flags&unix.IFF_UP != 0, a.RawFlags&unix.IFF_LOWER_UP != 0
}

// StopBackend kills server node's web backend with SIGKILL (the service
// dies, the host stays: its ports refuse connections) and waits until it
// is gone.
func (l *Lab) StopBackend(node string) error {
	n, err := l.node(node)
	if err != nil {
		return err
	}
	if n.Role != RoleServer {
		return fmt.Errorf("node %s is not a server", node)
	}
	l.mu.Lock()
	ref := l.st.Nodes[node].Backend
	l.mu.Unlock()
	if !ref.alive() {
		return fmt.Errorf("node %s: backend is not running", node)
	}
	if err := l.killWait(node, "backend", ref); err != nil {
		return err
	}
	l.mu.Lock()
	l.st.Nodes[node].Backend = procRef{}
	err = l.saveLocked()
	l.mu.Unlock()
	return err
}

// StartBackend starts server node's web backend again (as Up does) and
// waits until it answers.
func (l *Lab) StartBackend(ctx context.Context, node string) error {
	n, err := l.node(node)
	if err != nil {
		return err
	}
	if n.Role != RoleServer {
		return fmt.Errorf("node %s is not a server", node)
	}
	l.mu.Lock()
	running := l.st.Nodes[node].Backend.alive()
	l.mu.Unlock()
	if running {
		return fmt.Errorf("node %s: backend already runs", node)
	}
	ref, err := l.startDetached(node, "backend.log", []string{
		l.st.Bin, "lab", "backend", "--index", strconv.Itoa(n.Index), "--listen", ":80", "--listen", ":443"})
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.st.Nodes[node].Backend = ref
	err = l.saveLocked()
	l.mu.Unlock()
	if err != nil {
		return err
	}
	return l.waitBackend(ctx, node)
}
