package lab

import (
	"net/netip"
	"strings"
	"testing"
)

func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		seed           bool
		backends       int
		extVIP, intVIP string
		lb1Sync        string
		s2             string
		clients        string
	}{
		{false, 2, "198.51.100.51", "192.0.2.100", "203.0.113.250", "192.0.2.21", "198.51.100.89 198.51.100.90 198.51.100.91"},
		{true, 3, "192.168.1.51", "192.168.10.100", "10.10.10.250", "192.168.10.21", "192.168.1.89 192.168.1.90 192.168.1.91"},
	} {
		p, err := NewPlan(tc.seed, tc.backends)
		if err != nil {
			t.Fatal(err)
		}
		ext, _ := p.Segment(SegExternal)
		in, _ := p.Segment(SegInternal)
		if ext.VIP.String() != tc.extVIP || in.VIP.String() != tc.intVIP {
			t.Errorf("seed=%v: VIPs %v %v, want %s %s", tc.seed, ext.VIP, in.VIP, tc.extVIP, tc.intVIP)
		}
		if a, _ := p.Addr("lb1", "eth2"); a.String() != tc.lb1Sync {
			t.Errorf("seed=%v: lb1 eth2 %v, want %s", tc.seed, a, tc.lb1Sync)
		}
		if a, _ := p.Addr("s2", "eth0"); a.String() != tc.s2 {
			t.Errorf("seed=%v: s2 %v, want %s", tc.seed, a, tc.s2)
		}
		var cs []string
		for _, a := range p.ClientAddrs() {
			cs = append(cs, a.String())
		}
		if got := strings.Join(cs, " "); got != tc.clients {
			t.Errorf("seed=%v: clients %s, want %s", tc.seed, got, tc.clients)
		}
		if got := len(p.Servers()); got != tc.backends {
			t.Errorf("seed=%v: %d servers, want %d", tc.seed, got, tc.backends)
		}
		for _, s := range p.Servers() {
			if len(s.Routes) != 1 || s.Routes[0].Via != in.VIP || s.Routes[0].Dst.Bits() != 0 {
				t.Errorf("server %s routes %v, want default via %v", s.Name, s.Routes, in.VIP)
			}
		}
		// lb interface names are fixed by the project's examples.
		lb, _ := p.Node("lb2")
		for i, want := range []string{SegExternal, SegInternal, SegSync} {
			if lb.Ifaces[i].Name != "eth"+string(rune('0'+i)) || lb.Ifaces[i].Segment != want {
				t.Errorf("lb2 iface %d = %+v, want eth%d on %s", i, lb.Ifaces[i], i, want)
			}
		}
	}
}

func TestPlanAddressesAndNamesAreUnique(t *testing.T) {
	p, err := NewPlan(false, MaxBackends)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[netip.Addr]string{}
	for _, s := range p.Segments {
		if s.VIP.IsValid() {
			seen[s.VIP] = "VIP of " + s.Name
		}
	}
	names := map[string]bool{}
	for _, n := range p.Nodes {
		if names[n.Name] {
			t.Errorf("duplicate node %s", n.Name)
		}
		names[n.Name] = true
		for _, ifc := range n.Ifaces {
			if len(ifc.Name) > 15 {
				t.Errorf("%s: interface name %q longer than IFNAMSIZ-1", n.Name, ifc.Name)
			}
			for _, a := range ifc.Addrs {
				seg, _ := p.Segment(ifc.Segment)
				if !seg.Prefix.Contains(a.Addr()) {
					t.Errorf("%s %s: %v outside segment %s %v", n.Name, ifc.Name, a, seg.Name, seg.Prefix)
				}
				if who, dup := seen[a.Addr()]; dup {
					t.Errorf("%s %s: %v already used by %s", n.Name, ifc.Name, a, who)
				}
				seen[a.Addr()] = n.Name
			}
		}
	}
	sw, _ := p.Node("sw-int")
	if got, want := len(sw.Ifaces), 2+MaxBackends; got != want {
		t.Errorf("sw-int has %d ports, want %d", got, want)
	}
}

func TestPlanRejectsBadBackends(t *testing.T) {
	for _, n := range []int{-1, 0, MaxBackends + 1} {
		if _, err := NewPlan(false, n); err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("NewPlan(%d): err %v, want out of range", n, err)
		}
	}
}
