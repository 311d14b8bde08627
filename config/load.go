package config

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Options control Load. The zero value reads files from the OS and
// resolves relative paths against the rc.conf's directory.
type Options struct {
	// Dir is the directory relative paths in the config (pf_rules,
	// pfsync_key_file, pfcarp_sysctl_conf) are resolved against; empty
	// means the directory of the rc.conf's name.
	Dir string
	// ReadFile reads a file; nil means os.ReadFile.
	ReadFile func(name string) ([]byte, error)
}

func (o *Options) readFile(name string) ([]byte, error) {
	if o != nil && o.ReadFile != nil {
		return o.ReadFile(name)
	}
	return os.ReadFile(name)
}

// LoadFile reads and loads the rc.conf at path.
func LoadFile(path string, opts *Options) (*Node, Diags) {
	src, err := opts.readFile(path)
	if err != nil {
		return nil, Diags{{Pos: Pos{File: path}, Severity: Error, ID: "read", Msg: err.Error()}}
	}
	return Load(path, src, opts)
}

// maxFile bounds the files Load reads; rc.conf files are small.
const maxFile = 1 << 20

// Load parses src, the rc.conf named name, into a Node: syntax, keys,
// values, CARP parent resolution and the node's sysctl.conf (see doc.go).
// It returns the findings, errors and warnings alike; the Node is usable
// only if none is an Error, but is returned (partial) either way, and is
// nil only when the file could not be read at all.
func Load(name string, src []byte, opts *Options) (*Node, Diags) {
	var d diagList
	if len(src) > maxFile {
		d.add(Pos{File: name}, Error, "read", "file is %d bytes; an rc.conf over %d bytes is surely not one", len(src), maxFile)
		return &Node{File: name}, d.list
	}
	rc, pd := ParseRC(name, src)
	d.list = append(d.list, pd...)
	for _, x := range pd {
		if x.Severity == Error {
			d.errors++
		}
	}
	n := &Node{File: name, rc: rc}
	n.Dir = filepath.Dir(name)
	if opts != nil && opts.Dir != "" {
		n.Dir = opts.Dir
	}
	l := &loader{n: n, d: &d, opts: opts}
	l.keys()
	l.interfaces()
	l.pfsync()
	l.sysctl()
	l.resolve()
	l.files()
	n.sortInterfaces()
	d.list.Sort()
	return n, d.list
}

type loader struct {
	n    *Node
	d    *diagList
	opts *Options
	ifs  []*Assign // ifconfig_ assignments in effect
}

func (l *loader) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(l.n.Dir, p)
}

// yesno parses rc.conf's boolean, as checkyesno(8) does.
func (l *loader) yesno(a *Assign) bool {
	switch strings.ToUpper(a.Value) {
	case "YES", "TRUE", "ON", "1":
		return true
	case "NO", "FALSE", "OFF", "0":
		return false
	}
	l.d.add(a.PosAt(0), Error, "value", "%s=%q: want YES or NO", a.Name, a.Value)
	return false
}

func (l *loader) addr(a *Assign, allowNo bool) netip.Addr {
	if allowNo && strings.EqualFold(a.Value, "NO") || a.Value == "" {
		return netip.Addr{}
	}
	ad, err := netip.ParseAddr(a.Value)
	if err != nil || ad.Zone() != "" {
		l.d.add(a.PosAt(0), Error, "value", "%s=%q: want an IP address", a.Name, a.Value)
		return netip.Addr{}
	}
	return ad.Unmap()
}

func (l *loader) keys() {
	n := l.n
	for _, a := range n.rc.Effective() {
		switch a.Name {
		case "hostname":
			if !validHostname(a.Value) {
				l.d.add(a.PosAt(0), Error, "value", "hostname=%q: not a valid host name", a.Value)
			}
			n.Hostname, n.HostnamePos = a.Value, a.Pos
		case "gateway_enable":
			n.GatewayEnable, n.GatewayEnablePos = l.yesno(a), a.Pos
		case "ipv6_gateway_enable":
			n.IPv6GatewayEnable = l.yesno(a)
		case "defaultrouter":
			n.DefaultRouter, n.DefaultRouterPos = l.addr(a, true), a.Pos
			if n.DefaultRouter.Is6() {
				l.d.add(a.PosAt(0), Error, "value", "defaultrouter is IPv4; use ipv6_defaultrouter for %s", n.DefaultRouter)
			}
		case "ipv6_defaultrouter":
			n.IPv6DefaultRouter = l.addr(a, true)
			if n.IPv6DefaultRouter.Is4() {
				l.d.add(a.PosAt(0), Error, "value", "ipv6_defaultrouter is IPv6; use defaultrouter for %s", n.IPv6DefaultRouter)
			}
		case "cloned_interfaces":
			n.ClonedPos = a.Pos
			l.cloned(a)
		case "pf_enable":
			n.PF.Enable = l.yesno(a)
		case "pf_rules":
			n.PF.Rules, n.PF.RulesPos = a.Value, a.Pos
		case "pf_flags":
			n.PF.Flags = a.Value
		case "pflog_enable":
			n.Pflog.Enable, n.Pflog.EnablePos = l.yesno(a), a.Pos
		case "pflog_logfile":
			n.Pflog.Logfile = a.Value
		case "pflog_flags":
			n.Pflog.Flags = a.Value
		case "relayd_enable":
			n.Relayd.Enable, n.Relayd.EnablePos = l.yesno(a), a.Pos
		case "relayd_flags":
			n.Relayd.Flags, n.Relayd.FlagsPos = a.Value, a.Pos
			l.relaydFlags(a)
		case "pfsync_enable", "pfsync_syncdev", "pfsync_syncpeer", "pfsync_ifconfig":
			// handled by pfsync()
		case "carp_preempt":
			n.Preempt, n.PreemptPos = l.yesno(a), a.Pos
		case "carp_vmac":
			n.CARPVMAC, n.CARPVMACPos = l.yesno(a), a.Pos
		case "carp_up_cmd":
			n.CARPUpCmd = a.Value
		case "carp_down_cmd":
			n.CARPDownCmd = a.Value
		case "pfsync_key":
			if a.Value == "" {
				l.d.add(a.Pos, Error, "value", "pfsync_key is empty; remove it to run pfsync unauthenticated")
				continue
			}
			n.PfsyncKey, n.PfsyncKeyPos = []byte(a.Value), a.Pos
		case "pfsync_key_file", "pfcarp_sysctl_conf":
			// handled by files() and sysctl()
		case "pfcarp_control_socket":
			if a.Value != "" && !filepath.IsAbs(a.Value) {
				l.d.add(a.PosAt(0), Error, "value", "pfcarp_control_socket=%q: want an absolute path", a.Value)
			}
			n.ControlSocket = a.Value
		case "pfcarp_metrics":
			if a.Value == "" || strings.EqualFold(a.Value, "NO") {
				continue
			}
			ap, err := netip.ParseAddrPort(a.Value)
			if err != nil {
				l.d.add(a.PosAt(0), Error, "value", "pfcarp_metrics=%q: want ADDR:PORT (e.g. 127.0.0.1:9412 or [::1]:9412), or NO", a.Value)
				continue
			}
			n.Metrics, n.MetricsPos = ap, a.Pos
		case "pfcarp_nice":
			v, err := strconv.Atoi(strings.TrimSpace(a.Value))
			if err != nil || v < -20 || v > 19 {
				l.d.add(a.PosAt(0), Error, "value", "pfcarp_nice=%q: want a priority from -20 (highest) to 19, as nice(1) takes", a.Value)
				continue
			}
			n.Nice, n.NiceSet, n.NicePos = v, true, a.Pos
		case "pfcarp_peer_status":
			ap, err := netip.ParseAddrPort(a.Value)
			if err != nil {
				l.d.add(a.PosAt(0), Error, "value", "pfcarp_peer_status=%q: want the peer's pfcarp_metrics ADDR:PORT", a.Value)
				continue
			}
			n.PeerStatus = ap
		default:
			if strings.HasPrefix(a.Name, "ifconfig_") && a.Name != "ifconfig_DEFAULT" {
				l.ifs = append(l.ifs, a)
				continue
			}
			l.unknown(a)
		}
	}
}

func (l *loader) unknown(a *Assign) {
	switch {
	case ignoredFreeBSDKeys[a.Name] || strings.HasSuffix(a.Name, "_enable") && !pfcarpLooking(a.Name):
		l.d.add(a.Pos, Warning, "ignored-key", "%s is a FreeBSD setting pfcarp does not use; ignored", a.Name)
	case pfcarpLooking(a.Name):
		if s := suggest(a.Name); s != "" {
			l.d.add(a.Pos, Error, "unknown-key", "unknown key %s (did you mean %s?)", a.Name, s)
		} else {
			l.d.add(a.Pos, Error, "unknown-key", "unknown or unsupported key %s", a.Name)
		}
	default:
		l.d.add(a.Pos, Warning, "unknown-key", "unknown key %s; ignored", a.Name)
	}
}

func (l *loader) cloned(a *Assign) {
	seen := map[string]bool{}
	for i := 0; i < len(a.Value); {
		for i < len(a.Value) && isBlank(a.Value[i]) {
			i++
		}
		s := i
		for i < len(a.Value) && !isBlank(a.Value[i]) {
			i++
		}
		if s == i {
			break
		}
		w := a.Value[s:i]
		switch {
		case seen[w]:
			l.d.add(a.PosAt(s), Warning, "value", "cloned_interfaces lists %s twice", w)
		case isCarpName(w):
			l.n.Cloned = append(l.n.Cloned, w)
		case isPfsyncName(w) || isPflogName(w):
			l.d.add(a.PosAt(s), Note, "value", "%s need not be cloned; pfcarp provides it when configured", w)
		default:
			l.d.add(a.PosAt(s), Error, "value", "cloned_interfaces: pfcarp can only clone carpN interfaces, not %q", w)
		}
		seen[w] = true
	}
}

// ifKey splits an ifconfig_ variable name into the interface, whether it
// is the _ipv6 line, and the alias number (-1 for none).
func ifKey(name string) (ifname string, ipv6 bool, alias int, ok bool) {
	rest := strings.TrimPrefix(name, "ifconfig_")
	if i := strings.LastIndex(rest, "_alias"); i > 0 {
		if n, err := strconv.Atoi(rest[i+len("_alias"):]); err == nil && n >= 0 && n < 1<<16 && !strings.HasPrefix(rest[i+len("_alias"):], "+") {
			return rest[:i], false, n, validIfName(rest[:i])
		}
	}
	if r, found := strings.CutSuffix(rest, "_ipv6"); found && r != "" {
		return r, true, -1, validIfName(r)
	}
	return rest, false, -1, validIfName(rest) && rest != ""
}

// maxIfLines bounds the ifconfig_ lines of one file, which keeps parent
// resolution (addresses x interfaces) cheap on hostile input.
const maxIfLines = 1024

type ifLine struct {
	a      *Assign
	ifname string
	order  int // 0 base, 1 ipv6, 2+N aliasN
}

func (l *loader) interfaces() {
	n := l.n
	if len(l.ifs) > maxIfLines {
		l.d.add(l.ifs[maxIfLines].Pos, Error, "too-many-errors", "more than %d ifconfig_ lines; the rest are ignored", maxIfLines)
		l.ifs = l.ifs[:maxIfLines]
	}
	var lines []ifLine
	first := map[string]int{}
	for _, a := range l.ifs {
		ifname, ipv6, alias, ok := ifKey(a.Name)
		if !ok {
			l.d.add(a.Pos, Error, "unknown-key", "%s: cannot tell the interface from the name", a.Name)
			continue
		}
		if strings.HasSuffix(a.Name, "_name") {
			l.d.add(a.Pos, Error, "unknown-key", "%s: renaming interfaces is not supported; use the Linux name", a.Name)
			continue
		}
		order := 0
		switch {
		case ipv6:
			order = 1
		case alias >= 0:
			order = 2 + alias
		}
		if _, ok := first[ifname]; !ok {
			first[ifname] = len(first)
		}
		lines = append(lines, ifLine{a, ifname, order})
	}
	sort.SliceStable(lines, func(i, j int) bool {
		if lines[i].ifname != lines[j].ifname {
			return first[lines[i].ifname] < first[lines[j].ifname]
		}
		return lines[i].order < lines[j].order
	})
	// FreeBSD stops at the first missing ifconfig_IF_aliasN; say so.
	nextAlias := map[string]int{}
	for _, ln := range lines {
		if ln.order >= 2 {
			want := nextAlias[ln.ifname]
			if ln.order-2 != want {
				l.d.add(ln.a.Pos, Warning, "alias-gap", "%s: FreeBSD ignores it because ifconfig_%s_alias%d is missing; pfcarp uses it", ln.a.Name, ln.ifname, want)
			}
			nextAlias[ln.ifname] = ln.order - 2 + 1
		}
	}
	groups := map[string]*CARPGroup{}
	for _, ln := range lines {
		a := ln.a
		switch {
		case isCarpName(ln.ifname):
			st := parseIfconfig(a, kindCarp, l.d)
			g := groups[ln.ifname]
			if g == nil {
				g = &CARPGroup{Name: ln.ifname, Key: a.Name, AdvBase: 1, Pos: a.Pos}
				groups[ln.ifname] = g
				n.CARP = append(n.CARP, g)
			}
			l.mergeCarp(g, a, st)
			if st.addr.IsValid() {
				g.VIPs = append(g.VIPs, IfAddr{Prefix: st.addr, Pos: st.addrPos})
			}
			if st.dhcp || st.mtu != 0 {
				l.d.add(a.Pos, Error, "ifconfig", "%s: DHCP and mtu do not apply to a carp interface", a.Name)
			}
		case isPfsyncName(ln.ifname):
			if ln.ifname != "pfsync0" || ln.order != 0 {
				l.d.add(a.Pos, Error, "unknown-key", "%s: pfcarp has one pfsync interface, configured by ifconfig_pfsync0", a.Name)
				continue
			}
			st := parseIfconfig(a, kindPfsync, l.d)
			l.setPfsync(a, st)
		case isPflogName(ln.ifname):
			parseIfconfig(a, kindPflog, l.d)
			if ln.ifname != "pflog0" {
				l.d.add(a.Pos, Error, "unknown-key", "%s: pfcarp logs to pflog0 only", a.Name)
			}
		default:
			st := parseIfconfig(a, kindPhys, l.d)
			ifc := n.ifaceFor(ln.ifname, a.Pos)
			ifc.Up = ifc.Up || st.up || st.addr.IsValid() || st.dhcp
			if st.down {
				ifc.Up = false
			}
			ifc.DHCP = ifc.DHCP || st.dhcp
			if st.mtu != 0 {
				ifc.MTU = st.mtu
			}
			if st.carpOpts && !st.vhidPos.IsValid() {
				l.d.add(a.Pos, Error, "ifconfig", "%s: CARP options need a vhid", a.Name)
				continue
			}
			if st.vhidPos.IsValid() {
				// FreeBSD >= 10: the vhid lives on the parent itself.
				key := ln.ifname + "\x00" + strconv.Itoa(st.vhid)
				g := groups[key]
				if g == nil {
					g = &CARPGroup{Key: a.Name, Dev: ln.ifname, AdvBase: 1, Pos: st.vhidPos, resolved: true}
					groups[key] = g
					n.CARP = append(n.CARP, g)
				}
				l.mergeCarp(g, a, st)
				if st.addr.IsValid() {
					g.VIPs = append(g.VIPs, IfAddr{Prefix: st.addr, Pos: st.addrPos})
				}
				continue
			}
			if st.addr.IsValid() {
				ifc.Addrs = append(ifc.Addrs, IfAddr{Prefix: st.addr, Pos: st.addrPos})
			}
		}
	}
	// cloned_interfaces and carpN lines should agree.
	cloned := map[string]bool{}
	for _, c := range n.Cloned {
		cloned[c] = true
		if groups[c] == nil {
			l.d.add(n.ClonedPos, Warning, "carp-cloned-unused", "cloned_interfaces lists %s but no ifconfig_%s configures it; it stays down", c, c)
		}
	}
	for _, g := range n.CARP {
		if g.Name != "" && !cloned[g.Name] {
			l.d.add(g.Pos, Warning, "carp-not-cloned", "%s is not in cloned_interfaces: FreeBSD would not create it; pfcarp does", g.Name)
		}
		if g.VHID == 0 {
			l.d.add(g.Pos, Error, "carp-no-vhid", "%s has no vhid", g.Key)
		}
	}
}

// mergeCarp applies st's CARP options to g, reporting options that
// contradict an earlier line for the same group.
func (l *loader) mergeCarp(g *CARPGroup, a *Assign, st ifStmt) {
	conflict := func(what string, p, prev Pos) {
		l.d.addRel(p, Error, "carp-conflict", []Pos{prev}, "%s: %s contradicts an earlier line for %s", a.Name, what, g.Key)
	}
	if st.vhidPos.IsValid() {
		if g.VHID != 0 && g.VHID != st.vhid {
			conflict("vhid", st.vhidPos, g.Pos)
		} else if g.VHID == 0 {
			g.VHID, g.Pos = st.vhid, st.vhidPos
		}
	}
	if st.passPos.IsValid() {
		if g.PassPos.IsValid() && g.Pass != st.pass {
			conflict("pass", st.passPos, g.PassPos)
		} else {
			g.Pass, g.PassPos = st.pass, st.passPos
		}
	}
	if st.advbasePos.IsValid() {
		if g.AdvBasePos.IsValid() && g.AdvBase != st.advbase {
			conflict("advbase", st.advbasePos, g.AdvBasePos)
		} else {
			g.AdvBase, g.AdvBasePos = st.advbase, st.advbasePos
		}
	}
	if st.advskewPos.IsValid() {
		if g.AdvSkewPos.IsValid() && g.AdvSkew != st.advskew {
			conflict("advskew", st.advskewPos, g.AdvSkewPos)
		} else {
			g.AdvSkew, g.AdvSkewPos = st.advskew, st.advskewPos
		}
		if st.advskew >= 240 {
			l.d.add(st.advskewPos, Warning, "carp-advskew-high", "%s: advskew %d: FreeBSD refuses advskew >= 240, and 240 is what a demoted node advertises", a.Name, st.advskew)
		}
	}
	if st.carpdevPos.IsValid() {
		if g.CarpDev != "" && g.CarpDev != st.carpdev {
			conflict("carpdev", st.carpdevPos, g.DevPos)
		} else {
			g.CarpDev, g.DevPos = st.carpdev, st.carpdevPos
		}
	}
	if st.carppeerPos.IsValid() {
		g.Peer = st.carppeer
	}
	if st.statePos.IsValid() {
		g.State = st.state
	}
	if st.advbasePos.IsValid() && st.advbase == 0 {
		l.d.add(st.advbasePos, Warning, "carp-advbase-zero", "%s: advbase 0 sends advertisements as fast as the skew allows (every advskew/256 s); a busy link then loses mastership on any delay", a.Name)
	}
}

func (l *loader) setPfsync(a *Assign, st ifStmt) {
	p := &Pfsync{Key: a.Name, Pos: a.Pos, Up: st.up, SyncDev: st.syncdev, SyncPeer: st.syncpeer, MaxUpd: 128, Defer: st.deferOn}
	if st.maxupdPos.IsValid() {
		p.MaxUpd = st.maxupd
	}
	l.n.Pfsync = p
}

// pfsync handles FreeBSD >= 9's pfsync_enable/pfsync_syncdev/... form.
func (l *loader) pfsync() {
	en := l.n.Lookup("pfsync_enable")
	others := []string{"pfsync_syncdev", "pfsync_syncpeer", "pfsync_ifconfig"}
	if en == nil || !l.yesnoQuiet(en) {
		for _, k := range others {
			if a := l.n.Lookup(k); a != nil {
				l.d.add(a.Pos, Warning, "pfsync-disabled", "%s is set but pfsync_enable is not YES; ignored", k)
			}
		}
		return
	}
	if l.n.Pfsync != nil {
		l.d.addRel(en.Pos, Error, "pfsync-twice", []Pos{l.n.Pfsync.Pos}, "pfsync is configured both by pfsync_enable and by ifconfig_pfsync0; keep one")
		return
	}
	// rc.d/pfsync runs: ifconfig pfsync0 syncdev $pfsync_syncdev $pfsync_ifconfig up
	st := ifStmt{}
	if a := l.n.Lookup("pfsync_ifconfig"); a != nil {
		st = parseIfconfig(a, kindPfsync, l.d)
	}
	if a := l.n.Lookup("pfsync_syncdev"); a != nil {
		if !validIfName(a.Value) {
			l.d.add(a.PosAt(0), Error, "value", "pfsync_syncdev=%q: not an interface name", a.Value)
		} else {
			st.syncdev, st.syncdevPos = a.Value, a.Pos
		}
	}
	if a := l.n.Lookup("pfsync_syncpeer"); a != nil {
		st.syncpeer = l.addr(a, false)
	}
	st.up = true
	l.setPfsync(en, st)
}

func (l *loader) yesnoQuiet(a *Assign) bool {
	switch strings.ToUpper(a.Value) {
	case "YES", "TRUE", "ON", "1":
		return true
	}
	return false
}

// sysctl reads the node's sysctl.conf: pfcarp_sysctl_conf if set (NO or
// empty: none), else sysctl.conf beside the rc.conf if there is one, as
// FreeBSD keeps /etc/sysctl.conf beside /etc/rc.conf.
func (l *loader) sysctl() {
	n := l.n
	name, explicit := filepath.Join(n.Dir, "sysctl.conf"), false
	var at *Assign
	if a := n.Lookup("pfcarp_sysctl_conf"); a != nil {
		at = a
		if a.Value == "" || strings.EqualFold(a.Value, "NO") {
			return
		}
		name, explicit = l.path(a.Value), true
	}
	src, err := l.opts.readFile(name)
	if err != nil {
		if explicit || !errors.Is(err, fs.ErrNotExist) {
			p := Pos{File: n.File}
			if at != nil {
				p = at.PosAt(0)
			}
			l.d.add(p, Error, "read", "sysctl.conf: %v", err)
		}
		return
	}
	if len(src) > maxFile {
		l.d.add(Pos{File: name}, Error, "read", "%s is over %d bytes", name, maxFile)
		return
	}
	n.SysctlFile = name
	parseSysctl(n, name, src, l.d)
}

// resolve finds each CARP group's parent interface and checks addresses.
func (l *loader) resolve() {
	n := l.n
	for _, g := range n.CARP {
		if g.resolved {
			continue
		}
		if g.CarpDev != "" {
			g.Dev = g.CarpDev
			ifc := n.Interface(g.CarpDev)
			if ifc == nil {
				l.d.add(g.DevPos, Warning, "carp-dev-unconfigured", "%s: carpdev %s has no ifconfig_%s line; it must be up with an address in the VIP's subnet for CARP to work", g.Key, g.CarpDev, g.CarpDev)
				continue
			}
			for _, v := range g.VIPs {
				if !ifc.DHCP && !inSubnet(ifc, v.Prefix.Addr()) {
					l.d.add(v.Pos, Warning, "carp-vip-off-subnet", "%s: virtual address %s is not in a subnet of carpdev %s; peers on that link will not reach it directly", g.Key, v.Prefix.Addr(), g.CarpDev)
				}
			}
			continue
		}
		if len(g.VIPs) == 0 {
			l.d.add(g.Pos, Error, "carp-no-parent", "%s has no virtual address and no carpdev: nothing tells which interface it runs on", g.Key)
			continue
		}
		for _, v := range g.VIPs {
			var cands []string
			for _, ifc := range n.Interfaces {
				if inSubnet(ifc, v.Prefix.Addr()) {
					cands = append(cands, ifc.Name)
				}
			}
			switch {
			case len(cands) == 0:
				l.d.add(v.Pos, Error, "carp-no-parent", "%s: no interface has an address in the subnet of %s, so the parent interface is unknown; give one an address there or set carpdev", g.Key, v.Prefix)
			case len(cands) > 1:
				l.d.add(v.Pos, Error, "carp-parent-ambiguous", "%s: %s is in the subnets of %s; set carpdev", g.Key, v.Prefix.Addr(), strings.Join(cands, " and "))
			case g.Dev != "" && g.Dev != cands[0]:
				l.d.add(v.Pos, Error, "carp-parent-ambiguous", "%s: %s is on %s but the group's other addresses are on %s; set carpdev", g.Key, v.Prefix.Addr(), cands[0], g.Dev)
			default:
				g.Dev, g.DevPos = cands[0], v.Pos
			}
		}
	}
	// Addresses: a VIP must not be a host address nor belong to two groups;
	// a vhid is unique on its link.
	owner := map[netip.Addr]*CARPGroup{}
	for _, g := range n.CARP {
		for _, v := range g.VIPs {
			ad := v.Prefix.Addr()
			if ifc, ok := n.OwnAddr(ad); ok {
				l.d.add(v.Pos, Error, "carp-vip-is-host", "%s: virtual address %s is also %s's own address", g.Key, ad, ifc.Name)
			}
			if o := owner[ad]; o != nil && o != g {
				l.d.addRel(v.Pos, Error, "carp-vip-dup", []Pos{o.Pos}, "%s: virtual address %s is also in %s", g.Key, ad, o.Key)
			}
			owner[ad] = g
		}
	}
	type link struct {
		dev  string
		vhid int
	}
	onLink := map[link]*CARPGroup{}
	for _, g := range n.CARP {
		if g.Dev == "" {
			continue
		}
		k := link{g.Dev, g.VHID}
		if h := onLink[k]; h != nil {
			l.d.addRel(g.Pos, Error, "carp-vhid-dup", []Pos{h.Pos}, "%s: vhid %d is already used on %s by %s; each group on a link needs its own vhid", g.Key, g.VHID, g.Dev, h.Key)
			continue
		}
		onLink[k] = g
	}
}

func inSubnet(ifc *Interface, a netip.Addr) bool {
	for _, x := range ifc.Addrs {
		if x.Prefix.Addr().Is4() == a.Is4() && x.Prefix.Masked().Contains(a) {
			return true
		}
	}
	return false
}

// files resolves the paths the config names and reads pfsync_key_file.
func (l *loader) files() {
	n := l.n
	if n.PF.Enable && n.PF.Rules == "" {
		n.PF.Rules = "/etc/pf.conf" // FreeBSD's default
	}
	n.PF.RulesPath = l.path(n.PF.Rules)
	if n.Relayd.Conf == "" {
		n.Relayd.Conf = DefaultRelaydConf
	}
	n.Relayd.Conf = l.path(n.Relayd.Conf)
	if a := n.Lookup("pfsync_key_file"); a != nil {
		if n.PfsyncKeyPos.IsValid() {
			l.d.addRel(a.Pos, Error, "value", []Pos{n.PfsyncKeyPos}, "set pfsync_key or pfsync_key_file, not both")
			return
		}
		b, err := l.opts.readFile(l.path(a.Value))
		if err != nil {
			l.d.add(a.PosAt(0), Error, "read", "pfsync_key_file: %v", err)
			return
		}
		b = []byte(strings.TrimRight(string(b), "\r\n"))
		if len(b) == 0 {
			l.d.add(a.PosAt(0), Error, "value", "pfsync_key_file %s is empty", a.Value)
			return
		}
		n.PfsyncKey, n.PfsyncKeyPos = b, a.Pos
	}
}

func validHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, lab := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if lab == "" || len(lab) > 63 || lab[0] == '-' || lab[len(lab)-1] == '-' {
			return false
		}
		for i := 0; i < len(lab); i++ {
			c := lab[i]
			if !(c == '-' || c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
				return false
			}
		}
	}
	return true
}

// relaydFlags reads relayd_flags as relayd(8) takes its flags: "-f FILE"
// names the relayd.conf; -v and -d (verbosity, foreground) mean nothing
// to a daemon that is already running and are accepted; -n (check only)
// and -D (macros) are refused by name, as is anything else.
func (l *loader) relaydFlags(a *Assign) {
	f := strings.Fields(a.Value)
	for i := 0; i < len(f); i++ {
		switch w := f[i]; {
		case w == "-f":
			if i+1 >= len(f) {
				l.d.add(a.PosAt(0), Error, "value", "relayd_flags=%q: -f needs a file", a.Value)
				return
			}
			i++
			l.n.Relayd.Conf = f[i]
		case strings.HasPrefix(w, "-f") && len(w) > 2:
			l.n.Relayd.Conf = w[2:]
		case w == "-v" || w == "-vv" || w == "-d" || w == "-dv" || w == "-vd":
		default:
			l.d.add(a.PosAt(0), Error, "value", "relayd_flags=%q: %s is not supported (only -f FILE, -d and -v)", a.Value, w)
			return
		}
	}
}
