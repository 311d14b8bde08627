package config

import (
	"net/netip"
	"strconv"
	"strings"
)

// ifKind says what an ifconfig_ variable configures, which decides the
// options it may carry.
type ifKind int

const (
	kindPhys   ifKind = iota // a physical interface (may carry vhid: FreeBSD >= 10)
	kindCarp                 // carpN (FreeBSD < 10)
	kindPfsync               // pfsyncN
	kindPflog                // pflogN
)

// ifStmt is one ifconfig_ value: the arguments of one ifconfig command.
type ifStmt struct {
	up, down bool
	dhcp     bool
	mtu      int

	addr    netip.Prefix // valid iff an address was given
	addrPos Pos
	addrLen bool // the address was written with a /length
	alias   bool

	// CARP options; the *Pos are valid iff the option was given.
	vhid              int
	vhidPos           Pos
	pass              string
	passPos           Pos
	advbase, advskew  int
	advbasePos        Pos
	advskewPos        Pos
	carpdev           string
	carpdevPos        Pos
	carppeer          netip.Addr
	carppeerPos       Pos
	state             string
	statePos          Pos
	carpOpts          bool // any CARP option given
	syncdev           string
	syncdevPos        Pos
	syncpeer          netip.Addr
	maxupd            int
	maxupdPos         Pos
	deferSet, deferOn bool
	pfsyncOpts        bool
}

// ifconfig options pfcarp accepts and ignores (offloads, media): the kernel
// driver or ethtool owns them on Linux. Value: whether it takes an argument.
var ignoredIfOpts = map[string]bool{
	"media": true, "mediaopt": true, "-mediaopt": true, "description": true, "descr": true,
	"polling": false, "-polling": false, "rxcsum": false, "-rxcsum": false,
	"txcsum": false, "-txcsum": false, "tso": false, "-tso": false, "lro": false, "-lro": false,
	"vlanmtu": false, "-vlanmtu": false, "vlanhwtag": false, "-vlanhwtag": false,
	"vlanhwcsum": false, "-vlanhwcsum": false, "vlanhwtso": false, "-vlanhwtso": false,
	"wol": false, "-wol": false, "accept_rtadv": false, "-accept_rtadv": false,
	"auto_linklocal": false, "-auto_linklocal": false,
}

// parseIfconfig parses a's value as ifconfig arguments for an interface of
// the given kind. Problems are reported to d with the position of the
// offending word.
func parseIfconfig(a *Assign, kind ifKind, d *diagList) ifStmt {
	var st ifStmt
	type word struct {
		s   string
		off int
	}
	var words []word
	v := a.Value
	for i := 0; i < len(v); {
		for i < len(v) && isBlank(v[i]) {
			i++
		}
		s := i
		for i < len(v) && !isBlank(v[i]) {
			i++
		}
		if s < i {
			words = append(words, word{v[s:i], s})
		}
	}
	family := 0 // 0: not said; 4 or 6
	var netmask netip.Addr
	netmaskPos := Pos{}
	prefixlen := -1
	prefixlenPos := Pos{}
	for k := 0; k < len(words); k++ {
		w := words[k]
		pos := a.PosAt(w.off)
		arg := func(what string) (string, Pos, bool) {
			if k+1 >= len(words) {
				d.add(pos, Error, "ifconfig", "%s: %q needs %s", a.Name, w.s, what)
				return "", pos, false
			}
			k++
			return words[k].s, a.PosAt(words[k].off), true
		}
		num := func(what string, lo, hi int) (int, Pos, bool) {
			s, p, ok := arg(what)
			if !ok {
				return 0, p, false
			}
			n, err := strconv.Atoi(s)
			if err != nil || n < lo || n > hi {
				d.add(p, Error, "ifconfig", "%s: %s %q: want a number from %d to %d", a.Name, w.s, s, lo, hi)
				return 0, p, false
			}
			return n, p, true
		}
		// carpOnly and pfsyncOnly report an option used on the wrong
		// kind of interface, skipping its argument so it is not taken
		// for an address.
		lw := strings.ToLower(w.s)
		carpOnly := func() bool {
			st.carpOpts = true
			if kind == kindPfsync || kind == kindPflog {
				d.add(pos, Error, "ifconfig", "%s: %q is a CARP option; it does not apply here", a.Name, w.s)
				if !strings.HasPrefix(w.s, "-") && k+1 < len(words) {
					k++
				}
				return false
			}
			return true
		}
		pfsyncOnly := func() bool {
			st.pfsyncOpts = true
			if kind != kindPfsync {
				d.add(pos, Error, "ifconfig", "%s: %q is a pfsync option; it belongs on ifconfig_pfsync0", a.Name, w.s)
				if lw != "defer" && !strings.HasPrefix(w.s, "-") && k+1 < len(words) {
					k++
				}
				return false
			}
			return true
		}
		switch lw {
		case "inet":
			family = 4
		case "inet6":
			family = 6
		case "up":
			st.up = true
		case "down":
			st.down = true
		case "dhcp", "syncdhcp", "nosyncdhcp":
			if kind != kindPhys {
				d.add(pos, Error, "ifconfig", "%s: DHCP does not apply to %s", a.Name, kindName(kind))
				continue
			}
			st.dhcp = true
		case "mtu":
			if n, _, ok := num("a size", 68, 65535); ok {
				st.mtu = n
			}
		case "netmask":
			s, p, ok := arg("a mask")
			if !ok {
				continue
			}
			m, ok := parseNetmask(s)
			if !ok {
				d.add(p, Error, "ifconfig", "%s: bad netmask %q: want a contiguous dotted-quad (255.255.255.0) or hex (0xffffff00) mask", a.Name, s)
				continue
			}
			netmask, netmaskPos = m, p
		case "prefixlen":
			if n, _, ok := num("a length", 0, 128); ok {
				prefixlen, prefixlenPos = n, pos
			}
		case "broadcast":
			s, p, ok := arg("an address")
			if ok {
				if _, err := netip.ParseAddr(s); err != nil {
					d.add(p, Error, "ifconfig", "%s: bad broadcast address %q", a.Name, s)
				}
			}
		case "alias":
			st.alias = true
		case "-alias", "delete", "remove":
			d.add(pos, Error, "ifconfig", "%s: %q removes an address; a config can only add them", a.Name, w.s)
		case "vhid":
			if carpOnly() {
				if n, p, ok := num("a virtual host id", 1, 255); ok {
					st.vhid, st.vhidPos = n, p
				}
			}
		case "pass":
			if !carpOnly() {
				continue
			}
			s, p, ok := arg("a password")
			if !ok {
				continue
			}
			// FreeBSD's ifconfig copies the password into a 20-byte,
			// NUL-terminated key (CARP_KEY_LEN) with strlcpy: longer
			// ones are cut to 19 bytes, silently. Do the same, loudly,
			// so a pair with a FreeBSD peer still agrees on the key.
			if len(s) > carpMaxPass {
				d.add(p, Warning, "carp-pass-truncated", "%s: CARP password is %d bytes; only the first %d are used (FreeBSD's ifconfig truncates it the same way)", a.Name, len(s), carpMaxPass)
				s = s[:carpMaxPass]
			}
			st.pass, st.passPos = s, p
		case "advbase":
			if carpOnly() {
				if n, p, ok := num("seconds", 0, 255); ok {
					st.advbase, st.advbasePos = n, p
				}
			}
		case "advskew":
			if carpOnly() {
				if n, p, ok := num("a skew", 0, 254); ok {
					st.advskew, st.advskewPos = n, p
				}
			}
		case "carpdev":
			if carpOnly() {
				if kind == kindPhys {
					d.add(pos, Error, "ifconfig", "%s: carpdev is implied by the interface in this form; remove it", a.Name)
					continue
				}
				s, p, ok := arg("an interface")
				if ok {
					if !validIfName(s) {
						d.add(p, Error, "ifconfig", "%s: bad interface name %q", a.Name, s)
						continue
					}
					st.carpdev, st.carpdevPos = s, p
				}
			}
		case "carppeer":
			if carpOnly() {
				s, p, ok := arg("an address")
				if ok {
					ad, err := netip.ParseAddr(s)
					if err != nil || ad.Zone() != "" {
						d.add(p, Error, "ifconfig", "%s: bad carppeer address %q", a.Name, s)
						continue
					}
					st.carppeer, st.carppeerPos = ad.Unmap(), p
				}
			}
		case "-carppeer":
			carpOnly()
		case "state":
			if carpOnly() {
				s, p, ok := arg("backup or master")
				if ok {
					switch ls := strings.ToLower(s); ls {
					case "backup", "master":
						st.state, st.statePos = ls, p
					default:
						d.add(p, Error, "ifconfig", "%s: state %q: want backup or master", a.Name, s)
					}
				}
			}
		case "syncdev", "syncif":
			if pfsyncOnly() {
				s, p, ok := arg("an interface")
				if ok {
					if !validIfName(s) {
						d.add(p, Error, "ifconfig", "%s: bad interface name %q", a.Name, s)
						continue
					}
					st.syncdev, st.syncdevPos = s, p
				}
			}
		case "-syncdev", "-syncif", "-syncpeer":
			pfsyncOnly()
		case "syncpeer":
			if pfsyncOnly() {
				s, p, ok := arg("an address")
				if ok {
					ad, err := netip.ParseAddr(s)
					if err != nil || ad.Zone() != "" {
						d.add(p, Error, "ifconfig", "%s: bad syncpeer address %q", a.Name, s)
						continue
					}
					st.syncpeer = ad.Unmap()
				}
			}
		case "maxupd":
			if pfsyncOnly() {
				if n, p, ok := num("a count", 0, 255); ok {
					st.maxupd, st.maxupdPos = n, p
				}
			}
		case "defer":
			if pfsyncOnly() {
				st.deferSet, st.deferOn = true, true
			}
		case "-defer":
			if pfsyncOnly() {
				st.deferSet, st.deferOn = true, false
			}
		default:
			if takesArg, ok := ignoredIfOpts[lw]; ok {
				d.add(pos, Warning, "ifconfig-ignored", "%s: ifconfig option %q is ignored: pfcarp does not manage it on Linux", a.Name, w.s)
				if takesArg {
					arg("a value")
				}
				continue
			}
			p, ok := parseIfAddr(w.s)
			if !ok {
				d.add(pos, Error, "ifconfig", "%s: unknown or unsupported ifconfig option %q", a.Name, w.s)
				continue
			}
			if kind == kindPfsync || kind == kindPflog {
				d.add(pos, Error, "ifconfig", "%s: %s takes no address", a.Name, kindName(kind))
				continue
			}
			if st.addr.IsValid() {
				d.add(pos, Error, "ifconfig", "%s: a second address in one ifconfig line; put it in its own ifconfig_IF_aliasN", a.Name)
				continue
			}
			is6 := p.Addr().Is6()
			if family == 4 && is6 || family == 6 && !is6 {
				d.add(pos, Error, "ifconfig", "%s: address %s does not match the address family inet%s", a.Name, w.s, map[bool]string{true: "", false: "6"}[family == 4])
				continue
			}
			st.addr, st.addrPos, st.addrLen = p, pos, strings.Contains(w.s, "/")
		}
	}
	if st.up && st.down {
		d.add(a.Pos, Error, "ifconfig", "%s: both up and down", a.Name)
	}
	if st.addr.IsValid() {
		addr := st.addr.Addr()
		hasLen := st.addrLen
		switch {
		case netmask.IsValid() && addr.Is6():
			d.add(netmaskPos, Error, "ifconfig", "%s: netmask is for inet; use prefixlen with inet6", a.Name)
		case netmask.IsValid() && hasLen:
			d.add(netmaskPos, Error, "ifconfig", "%s: both a /length and a netmask", a.Name)
		case netmask.IsValid():
			bits, _ := netmaskBits(netmask)
			st.addr = netip.PrefixFrom(addr, bits)
		case prefixlen >= 0 && (addr.Is4() || hasLen):
			d.add(prefixlenPos, Error, "ifconfig", "%s: prefixlen is for inet6 addresses without a /length", a.Name)
		case prefixlen >= 0:
			st.addr = netip.PrefixFrom(addr, prefixlen)
		case !hasLen && addr.Is4():
			bits := classfulBits(addr)
			d.add(st.addrPos, Warning, "ifconfig-classful", "%s: %s has no netmask; like FreeBSD's ifconfig, pfcarp uses the classful /%d", a.Name, addr, bits)
			st.addr = netip.PrefixFrom(addr, bits)
		case !hasLen:
			st.addr = netip.PrefixFrom(addr, 64)
		}
	} else if netmask.IsValid() || prefixlen >= 0 {
		d.add(a.Pos, Error, "ifconfig", "%s: a netmask or prefixlen without an address", a.Name)
	}
	return st
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func kindName(k ifKind) string {
	switch k {
	case kindCarp:
		return "a carp interface"
	case kindPfsync:
		return "pfsync"
	case kindPflog:
		return "pflog"
	}
	return "an interface"
}

// carpMaxPass is the longest CARP password: CARP_KEY_LEN (20) less the NUL.
const carpMaxPass = 19

// parseIfAddr parses "A" or "A/len" (IPv4 or IPv6, no zone).
func parseIfAddr(s string) (netip.Prefix, bool) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil || p.Addr().Zone() != "" {
			return netip.Prefix{}, false
		}
		return p, true
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || a.Is4In6() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, a.BitLen()), true
}

// parseNetmask parses a dotted-quad or 0x-hex IPv4 netmask and checks it is
// contiguous.
func parseNetmask(s string) (netip.Addr, bool) {
	var m netip.Addr
	if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		if len(h) != 8 {
			return m, false
		}
		v, err := strconv.ParseUint(h, 16, 32)
		if err != nil {
			return m, false
		}
		m = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			return m, false
		}
		m = a
	}
	if _, ok := netmaskBits(m); !ok {
		return m, false
	}
	return m, true
}

func netmaskBits(m netip.Addr) (int, bool) {
	b := m.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n := 0
	for v&0x80000000 != 0 {
		n++
		v <<= 1
	}
	return n, v == 0
}

// classfulBits is the mask FreeBSD's ifconfig gives an IPv4 address with
// none: class A /8, B /16, C /24.
func classfulBits(a netip.Addr) int {
	b := a.As4()[0]
	switch {
	case b < 128:
		return 8
	case b < 192:
		return 16
	}
	return 24
}

// validIfName reports whether s can be a Linux interface name (IFNAMSIZ-1
// bytes, no '/', blank or ':').
func validIfName(s string) bool {
	if s == "" || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == '/' || c == ':' || c >= 0x7f {
			return false
		}
	}
	return true
}
