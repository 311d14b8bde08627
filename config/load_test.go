package config

import (
	"errors"
	"io/fs"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// memFS serves files from a map; anything else does not exist.
func memFS(files map[string]string) func(string) ([]byte, error) {
	return func(name string) ([]byte, error) {
		if s, ok := files[name]; ok {
			return []byte(s), nil
		}
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
}

func load(t *testing.T, src string, files map[string]string) (*Node, Diags) {
	t.Helper()
	return Load("rc.conf", []byte(src), &Options{ReadFile: memFS(files)})
}

// ids returns "line:col id" for each finding (file names dropped when they
// are rc.conf, kept otherwise).
func ids(d Diags) []string {
	var out []string
	for _, x := range d {
		p := x.Pos.String()
		p = strings.TrimPrefix(p, "rc.conf:")
		out = append(out, p+" "+x.ID)
	}
	return out
}

const seedMaster = `gateway_enable="YES"
defaultrouter="192.168.1.1"
hostname="master.cluster.org"
cloned_interfaces="carp0 carp1"
ifconfig_eth0="inet 192.168.1.52 netmask 255.255.255.0"
ifconfig_carp0="vhid 1 pass 11111 192.168.1.51/24 advskew 10"
ifconfig_eth1="inet 192.168.10.10 netmask 255.255.255.0"
ifconfig_carp1="vhid 1 pass 22222 192.168.10.100/24 advskew 10"
ifconfig_eth2="10.10.10.250 netmask 255.255.255.0"
ifconfig_pfsync0="up syncif eth2"
pf_enable="YES"
pf_rules="/etc/pf.conf"
pf_flags=""
pflog_enable="YES"
pflog_logfile="/var/log/pflog"
pflog_flags=""
`

func TestLoadSeed(t *testing.T) {
	n, d := load(t, seedMaster, map[string]string{"sysctl.conf": "net.inet.carp.preempt=1\n"})
	if len(d) != 0 {
		t.Fatalf("findings: %v", d)
	}
	if n.Hostname != "master.cluster.org" || !n.GatewayEnable || n.DefaultRouter != netip.MustParseAddr("192.168.1.1") {
		t.Errorf("host settings: %q %v %v", n.Hostname, n.GatewayEnable, n.DefaultRouter)
	}
	if !slices.Equal(n.Cloned, []string{"carp0", "carp1"}) {
		t.Errorf("cloned %v", n.Cloned)
	}
	var ifs []string
	for _, i := range n.Interfaces {
		for _, a := range i.Addrs {
			ifs = append(ifs, i.Name+"="+a.Prefix.String())
		}
	}
	if want := []string{"eth0=192.168.1.52/24", "eth1=192.168.10.10/24", "eth2=10.10.10.250/24"}; !slices.Equal(ifs, want) {
		t.Errorf("interfaces %v, want %v", ifs, want)
	}
	var gs []string
	for _, g := range n.CARP {
		gs = append(gs, g.Label()+" "+g.Dev+" "+g.Pass+" "+strings.Join(vipSet(g), ",")+" "+itoaPos(g.AdvSkewPos)+" "+string(rune('0'+g.AdvBase)))
		if g.AdvSkew != 10 || g.VHID != 1 {
			t.Errorf("%s: advskew %d vhid %d", g.Label(), g.AdvSkew, g.VHID)
		}
	}
	if want := []string{"carp0 eth0 11111 192.168.1.51/24 6:59 1", "carp1 eth1 22222 192.168.10.100/24 8:61 1"}; !slices.Equal(gs, want) {
		t.Errorf("groups %q, want %q", gs, want)
	}
	if p := n.Pfsync; p == nil || !p.Up || p.SyncDev != "eth2" || p.SyncPeer.IsValid() || p.MaxUpd != 128 {
		t.Errorf("pfsync %+v", n.Pfsync)
	}
	if !n.PF.Enable || n.PF.RulesPath != "/etc/pf.conf" || !n.Pflog.Enable || n.Pflog.Logfile != "/var/log/pflog" {
		t.Errorf("pf %+v pflog %+v", n.PF, n.Pflog)
	}
	if !n.Preempt || n.PreemptPos.String() != "sysctl.conf:1:1" || n.SysctlFile != "sysctl.conf" {
		t.Errorf("preempt %v at %v from %q", n.Preempt, n.PreemptPos, n.SysctlFile)
	}
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		files map[string]string
		check func(t *testing.T, n *Node)
		want  []string // findings as "line:col id"
	}{
		{
			name: "FreeBSD 10 alias form",
			src: `ifconfig_eth0="inet 192.0.2.2/24"
ifconfig_eth0_alias0="inet vhid 1 pass secretsecret advskew 100 alias 192.0.2.1/32"
ifconfig_eth0_alias1="inet6 vhid 1 alias 2001:db8::1/64"`,
			check: func(t *testing.T, n *Node) {
				if len(n.CARP) != 1 {
					t.Fatalf("groups %d", len(n.CARP))
				}
				g := n.CARP[0]
				if g.Label() != "eth0 vhid 1" || g.Dev != "eth0" || g.AdvSkew != 100 || g.Pass != "secretsecret" || len(g.VIPs) != 2 {
					t.Errorf("group %+v", g)
				}
				if len(n.Interface("eth0").Addrs) != 1 {
					t.Errorf("VIP counted as a host address")
				}
			},
		},
		{
			name: "vhid on the main line",
			src:  `ifconfig_eth0="inet 192.0.2.5/24 vhid 3 advskew 5 pass abcdefghijklm"`,
			check: func(t *testing.T, n *Node) {
				if len(n.CARP) != 1 || n.CARP[0].VHID != 3 || n.CARP[0].VIPs[0].Prefix.String() != "192.0.2.5/24" {
					t.Errorf("%+v", n.CARP)
				}
			},
		},
		{
			name: "carpdev, carppeer, state, IPv6 VIP",
			src: `cloned_interfaces="carp0"
ifconfig_eth1="inet6 2001:db8:1::2 prefixlen 64"
ifconfig_carp0="vhid 7 advbase 2 carpdev eth1 carppeer 2001:db8:1::3 state backup"
ifconfig_carp0_ipv6="inet6 2001:db8:1::1 prefixlen 64"`,
			check: func(t *testing.T, n *Node) {
				g := n.CARP[0]
				if g.Dev != "eth1" || g.AdvBase != 2 || g.Peer.String() != "2001:db8:1::3" || g.State != "backup" || g.VIPs[0].Prefix.String() != "2001:db8:1::1/64" {
					t.Errorf("%+v", g)
				}
			},
		},
		{
			name: "parent resolution fails",
			src: `ifconfig_eth0="inet 192.0.2.2/24"
ifconfig_eth1="inet 192.0.2.3/25"
ifconfig_carp0="vhid 1 192.0.2.1/24"
ifconfig_carp1="vhid 2 198.51.100.1/24"
ifconfig_carp2="vhid 3"`,
			want: []string{"3:22 carp-not-cloned", "3:24 carp-parent-ambiguous", "4:22 carp-not-cloned", "4:24 carp-no-parent", "5:22 carp-no-parent", "5:22 carp-not-cloned"},
		},
		{
			name: "values",
			src: `ifconfig_carp0="vhid 256 advskew 255 advbase -1 pass 12345678901234567890x 10.0.0.1 netmask 255.0.255.0"
ifconfig_eth0="inet 10.0.0.2 prefixlen 8 mtu 9000000 bogus"
gateway_enable="maybe"
defaultrouter="2001:db8::1"
hostname="a b"`,
			want: []string{
				"1:1 carp-no-vhid", "1:1 carp-not-cloned", // vhid 256 was rejected
				"1:22 ifconfig", "1:34 ifconfig", "1:46 ifconfig", "1:54 carp-pass-truncated",
				"1:76 carp-no-parent", "1:76 ifconfig-classful", // the netmask was rejected
				"1:93 ifconfig",
				"2:30 ifconfig", "2:46 ifconfig", "2:54 ifconfig",
				"3:17 value", "4:16 value", "5:11 value",
			},
		},
		{
			name: "unknown keys",
			src:  "pf_enabel=YES\nsshd_enable=YES\nfoo=1\ncarp_premept=YES\nifconfig_eth0_name=lan\nmysvc_enable=YES",
			want: []string{"1:1 unknown-key", "2:1 ignored-key", "3:1 unknown-key", "4:1 unknown-key", "5:1 unknown-key", "6:1 ignored-key"},
			check: func(t *testing.T, n *Node) {
				if n.PF.Enable {
					t.Error("a misspelt key took effect")
				}
			},
		},
		{
			name: "classful netmask and hex netmask",
			src:  "ifconfig_eth0=\"10.1.2.3\"\nifconfig_eth1=\"inet 172.16.0.1 netmask 0xfffff000\"",
			want: []string{"1:16 ifconfig-classful"},
			check: func(t *testing.T, n *Node) {
				if n.Interface("eth0").Addrs[0].Prefix.Bits() != 8 || n.Interface("eth1").Addrs[0].Prefix.Bits() != 20 {
					t.Errorf("%v %v", n.Interface("eth0").Addrs, n.Interface("eth1").Addrs)
				}
			},
		},
		{
			name: "duplicate vhid and VIP, VIP is a host address",
			src: `ifconfig_eth0="inet 192.0.2.2/24"
ifconfig_carp0="vhid 1 192.0.2.1/24"
ifconfig_carp1="vhid 1 192.0.2.1/24"
ifconfig_carp2="vhid 2 192.0.2.2/24"
cloned_interfaces="carp0 carp1 carp2 carp3 vlan0"`,
			want: []string{"3:22 carp-vhid-dup", "3:24 carp-vip-dup", "4:24 carp-vip-is-host", "5:1 carp-cloned-unused", "5:44 value"},
		},
		{
			name: "conflicting lines for one group",
			src: `ifconfig_eth0="inet 192.0.2.2/24"
ifconfig_carp0="vhid 1 pass aaaa 192.0.2.1/24"
ifconfig_carp0_alias0="vhid 2 pass bbbb 192.0.2.3/32"
ifconfig_carp0_alias2="192.0.2.4/32"
cloned_interfaces="carp0"`,
			want: []string{"3:29 carp-conflict", "3:36 carp-conflict", "4:1 alias-gap"},
		},
		{
			name: "pfsync_enable form",
			src:  "ifconfig_eth2=\"inet 10.0.0.1/30\"\npfsync_enable=\"YES\"\npfsync_syncdev=\"eth2\"\npfsync_syncpeer=\"10.0.0.2\"\npfsync_ifconfig=\"maxupd 64 defer\"",
			check: func(t *testing.T, n *Node) {
				p := n.Pfsync
				if p == nil || !p.Up || p.SyncDev != "eth2" || p.SyncPeer.String() != "10.0.0.2" || p.MaxUpd != 64 || !p.Defer {
					t.Errorf("%+v", p)
				}
			},
		},
		{
			name: "pfsync twice, options in the wrong place",
			src:  "ifconfig_pfsync0=\"up syncdev eth2 10.0.0.1 vhid 1\"\npfsync_enable=YES\nifconfig_eth0=\"syncpeer 10.0.0.2\"\nifconfig_pfsync1=up",
			want: []string{"1:35 ifconfig", "1:44 ifconfig", "2:1 pfsync-twice", "3:16 ifconfig", "4:1 unknown-key"},
		},
		{
			name:  "sysctl.conf",
			src:   "carp_preempt=NO\npfcarp_sysctl_conf=\"my.sysctl\"\ngateway_enable=YES",
			files: map[string]string{"my.sysctl": "# c\nnet.inet.carp.preempt = 1\nnet.inet.ip.forwarding=0\nkern.foo=3\nbad\nnet.inet.carp.allow=2\n"},
			want:  []string{"my.sysctl:2:1 preempt-conflict", "my.sysctl:3:1 value", "my.sysctl:4:1 sysctl-ignored", "my.sysctl:5:1 syntax", "my.sysctl:6:1 value"},
		},
		{
			name: "sysctl.conf named but missing",
			src:  `pfcarp_sysctl_conf="/nope"`,
			want: []string{"1:21 read"},
		},
		{
			name:  "pfsync key file",
			src:   `pfsync_key_file="k"`,
			files: map[string]string{"k": "s3cret\n"},
			check: func(t *testing.T, n *Node) {
				if string(n.PfsyncKey) != "s3cret" {
					t.Errorf("key %q", n.PfsyncKey)
				}
			},
		},
		{
			name: "pfcarp keys",
			src:  "carp_vmac=YES\ncarp_up_cmd=\"logger up\"\ncarp_down_cmd='logger down'\npfcarp_control_socket=/run/p.sock\npfsync_key=abc",
			check: func(t *testing.T, n *Node) {
				if !n.CARPVMAC || n.CARPUpCmd != "logger up" || n.CARPDownCmd != "logger down" || n.ControlSocket != "/run/p.sock" || string(n.PfsyncKey) != "abc" {
					t.Errorf("%+v", n)
				}
			},
		},
		{
			name: "pfcarp_nice",
			src:  "pfcarp_nice=-10",
			check: func(t *testing.T, n *Node) {
				if !n.NiceSet || n.Nice != -10 {
					t.Errorf("nice %d set %v", n.Nice, n.NiceSet)
				}
			},
		},
		{
			name: "pfcarp_nice out of range",
			src:  "pfcarp_nice=-21",
			want: []string{"1:13 value"},
			check: func(t *testing.T, n *Node) {
				if n.NiceSet {
					t.Error("an out-of-range priority was taken")
				}
			},
		},
		{
			name: "DHCP and ignored options",
			src:  `ifconfig_eth0="DHCP media autoselect -rxcsum"`,
			want: []string{"1:21 ifconfig-ignored", "1:38 ifconfig-ignored"},
			check: func(t *testing.T, n *Node) {
				if !n.Interface("eth0").DHCP {
					t.Error("not DHCP")
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, d := load(t, tt.src, tt.files)
			if got := ids(d); !slices.Equal(got, tt.want) {
				t.Errorf("findings = %q\nwant       %q\n%v", got, tt.want, d)
			}
			if tt.check != nil {
				tt.check(t, n)
			}
		})
	}
}

func TestLoadFileMissing(t *testing.T) {
	n, d := LoadFile("/nonexistent/rc.conf", &Options{ReadFile: memFS(nil)})
	if n != nil || !d.HasErrors() || !errors.Is(fs.ErrNotExist, fs.ErrNotExist) || !strings.Contains(d.Error(), "/nonexistent/rc.conf") {
		t.Errorf("%v %v", n, d)
	}
}

// Every key the loader knows is documented in doc.go's table.
func TestKeysDocumented(t *testing.T) {
	doc := mustRead(t, "doc.go")
	for _, k := range rcKeys {
		if !strings.Contains(doc, "| "+k+" ") && !strings.Contains(doc, "//\t"+k+" ") {
			t.Errorf("key %s is not in doc.go's table", k)
		}
	}
	for _, l := range Lints {
		if !strings.Contains(doc, l.ID) {
			t.Errorf("lint %s is not in doc.go", l.ID)
		}
	}
}

// relayd_flags takes relayd's -f FILE (relative to the rc.conf's
// directory); without it the default file is read; other flags are
// refused with the line and column.
func TestLoadRelayd(t *testing.T) {
	for _, tc := range []struct {
		src, conf, err string
	}{
		{`relayd_enable="YES"`, DefaultRelaydConf, ""},
		{`relayd_enable="YES"` + "\n" + `relayd_flags="-f relayd.conf"`, "relayd.conf", ""},
		{`relayd_enable="YES"` + "\n" + `relayd_flags="-v -f/etc/r.conf"`, "/etc/r.conf", ""},
		{`relayd_flags="-f"`, "", "1:15: error: relayd_flags=\"-f\": -f needs a file"},
		{`relayd_flags="-n"`, "", "1:15: error: relayd_flags=\"-n\": -n is not supported"},
		{`relayd_enable="maybe"`, "", "1:16: error: relayd_enable=\"maybe\": want YES or NO"},
	} {
		n, d := Load("rc.conf", []byte(tc.src+"\n"), &Options{ReadFile: memFS(nil), Dir: "."})
		if tc.err != "" {
			if !d.HasErrors() || !strings.Contains(d.Error(), tc.err) {
				t.Errorf("%s: %v, want %q", tc.src, d, tc.err)
			}
			continue
		}
		if d.HasErrors() {
			t.Errorf("%s: %v", tc.src, d)
			continue
		}
		if !n.Relayd.Enable || n.Relayd.Conf != tc.conf {
			t.Errorf("%s: enable %v conf %q, want %q", tc.src, n.Relayd.Enable, n.Relayd.Conf, tc.conf)
		}
	}
}
