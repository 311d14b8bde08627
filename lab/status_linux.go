package lab

import (
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/vishvananda/netlink"
)

// Status is a snapshot of a lab, read from the kernel (not from memory).
type Status struct {
	Dir    string       `json:"dir"`
	Prefix string       `json:"prefix"`
	Seed   bool         `json:"seed"`
	Nodes  []NodeStatus `json:"nodes"`
}

// NodeStatus is one node of a Status. Present is false when its namespace
// is gone; then only Name, Role and Namespace are set.
type NodeStatus struct {
	Name      string        `json:"name"`
	Role      Role          `json:"role"`
	Namespace string        `json:"namespace"`
	Present   bool          `json:"present"`
	Isolated  bool          `json:"isolated,omitempty"`
	Ifaces    []IfaceStatus `json:"ifaces"`
	Daemon    *ProcStatus   `json:"daemon,omitempty"`
	Backend   *ProcStatus   `json:"backend,omitempty"`
	Error     string        `json:"error,omitempty"`
}

// IfaceStatus is one link of a node. Cable is "plugged" or "pulled" (the
// switch end's state) for node interfaces, empty for switch ports.
type IfaceStatus struct {
	Name    string         `json:"name"`
	Up      bool           `json:"up"`
	Carrier bool           `json:"carrier"`
	Cable   string         `json:"cable,omitempty"`
	Addrs   []netip.Prefix `json:"addrs,omitempty"`
}

// ProcStatus is a daemon or backend process. State is "running",
// "stopped" or "not configured".
type ProcStatus struct {
	State string   `json:"state"`
	PID   int      `json:"pid,omitempty"`
	Cmd   []string `json:"cmd,omitempty"`
	Log   string   `json:"log,omitempty"`
}

// Status reads the lab's current state from the kernel.
func (l *Lab) Status() *Status {
	st := &Status{Dir: l.dir, Prefix: l.st.Prefix, Seed: l.plan.Seed}
	// Switch port states first, to tell each node whether its cable is in.
	ports := map[string]bool{} // "node-iface" -> switch end up
	for _, seg := range l.plan.Segments {
		h, ns, err := l.nsHandle(seg.Switch)
		if err != nil {
			continue
		}
		links, _ := h.LinkList()
		for _, link := range links {
			up, _ := linkCarrier(link)
			ports[link.Attrs().Name] = up
		}
		h.Close()
		ns.Close()
	}
	l.mu.Lock()
	nodes := map[string]nodeState{}
	for k, v := range l.st.Nodes {
		nodes[k] = *v
	}
	l.mu.Unlock()
	for _, n := range l.plan.Nodes {
		ns := NodeStatus{Name: n.Name, Role: n.Role, Namespace: l.Namespace(n.Name)}
		if _, err := os.Stat(l.nsPath(n.Name)); err != nil {
			st.Nodes = append(st.Nodes, ns)
			continue
		}
		ns.Present = true
		if err := l.fillLinks(&ns, ports); err != nil {
			ns.Error = err.Error()
		}
		if n.Role != RoleSwitch {
			iso, err := l.Isolated(n.Name)
			ns.Isolated = iso
			if err != nil && ns.Error == "" {
				ns.Error = err.Error()
			}
		}
		s := nodes[n.Name]
		if len(s.Daemon) > 0 {
			ns.Daemon = procStatus(s.DaemonProc, s.Daemon, filepath.Join(l.NodeDir(n.Name), "daemon.log"))
		} else if n.Role == RoleBalancer {
			ns.Daemon = &ProcStatus{State: "not configured"}
		}
		if n.Role == RoleServer {
			ns.Backend = procStatus(s.Backend, nil, filepath.Join(l.NodeDir(n.Name), "backend.log"))
		}
		st.Nodes = append(st.Nodes, ns)
	}
	return st
}

func procStatus(ref procRef, cmd []string, log string) *ProcStatus {
	p := &ProcStatus{State: "stopped", Cmd: cmd, Log: log}
	if ref.alive() {
		p.State, p.PID = "running", ref.PID
	}
	return p
}

func (l *Lab) fillLinks(ns *NodeStatus, ports map[string]bool) error {
	h, nsh, err := l.nsHandle(ns.Name)
	if err != nil {
		return err
	}
	defer nsh.Close()
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return err
	}
	sort.Slice(links, func(i, j int) bool { return links[i].Attrs().Name < links[j].Attrs().Name })
	for _, link := range links {
		name := link.Attrs().Name
		if name == "lo" {
			continue
		}
		up, carrier := linkCarrier(link)
		is := IfaceStatus{Name: name, Up: up, Carrier: carrier}
		if ns.Role != RoleSwitch {
			if in, ok := ports[portName(ns.Name, name)]; ok {
				is.Cable = "pulled"
				if in {
					is.Cable = "plugged"
				}
			}
		}
		addrs, err := h.AddrList(link, netlink.FAMILY_ALL)
		if err != nil {
			return err
		}
		for _, a := range addrs {
			ip, ok := netip.AddrFromSlice(a.IP)
			if !ok || ip.IsLinkLocalUnicast() {
				continue
			}
			ones, _ := a.Mask.Size()
			is.Addrs = append(is.Addrs, netip.PrefixFrom(ip.Unmap(), ones))
		}
		ns.Ifaces = append(ns.Ifaces, is)
	}
	return nil
}

// WriteText prints the status as a table, one line per interface.
func (s *Status) WriteText(w io.Writer) error {
	// The table is laid out in memory (writes there cannot fail), then
	// written to w at once.
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 8, 2, ' ', 0)
	row := func(format string, args ...any) { _, _ = fmt.Fprintf(tw, format, args...) }
	row("NODE\tROLE\tIFACE\tSTATE\tADDRESSES\tPROCESS\n")
	for _, n := range s.Nodes {
		proc := ""
		switch {
		case n.Daemon != nil && n.Daemon.State == "running":
			proc = fmt.Sprintf("daemon running (pid %d)", n.Daemon.PID)
		case n.Daemon != nil:
			proc = "daemon " + n.Daemon.State
		case n.Backend != nil && n.Backend.State == "running":
			proc = fmt.Sprintf("backend running (pid %d)", n.Backend.PID)
		case n.Backend != nil:
			proc = "backend " + n.Backend.State
		}
		if n.Isolated {
			proc = strings.TrimPrefix(proc+", ISOLATED", ", ")
		}
		if !n.Present {
			row("%s\t%s\t-\tMISSING (namespace %s gone)\t\t\n", n.Name, n.Role, n.Namespace)
			continue
		}
		if n.Error != "" {
			proc = strings.TrimPrefix(proc+", error: "+n.Error, ", ")
		}
		if len(n.Ifaces) == 0 {
			row("%s\t%s\t-\t\t\t%s\n", n.Name, n.Role, proc)
		}
		for i, ifc := range n.Ifaces {
			state := "down"
			if ifc.Up {
				state = "up"
				if !ifc.Carrier {
					state = "NO-CARRIER"
				}
			}
			if ifc.Cable == "pulled" {
				state += " (cable pulled)"
			}
			var as []string
			for _, a := range ifc.Addrs {
				as = append(as, a.String())
			}
			name, role := n.Name, string(n.Role)
			if i > 0 {
				name, role, proc = "", "", ""
			}
			row("%s\t%s\t%s\t%s\t%s\t%s\n", name, role, ifc.Name, state, strings.Join(as, " "), proc)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}
