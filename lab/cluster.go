package lab

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/pfcarp/pfcarp/examples/seed"
)

// The seed cluster: lb1 and lb2 run pfcarp's daemon on the seed's files
// (examples/seed, embedded in the binary). In each balancer's directory the
// lab writes
//
//	pfcarp.conf   rc.conf.lb1 or rc.conf.lb2
//	pf.conf       pf.conf
//	sysctl.conf   sysctl.conf (read by the daemon beside pfcarp.conf)
//
// and runs DefaultDaemon (`pfcarp run -c <dir>/pfcarp.conf`). With the
// seed's addresses (Options.Seed) the files are used as they are; with the
// lab's own ranges, every IPv4 address in one of the seed's networks is moved
// to the same host number in the lab's network (192.168.1.x -> external,
// 192.168.10.x -> internal, 10.10.10.x -> sync). In both cases
// pflog_logfile is pointed at the node's directory, never at the host's
// /var/log.

// clusterNodes maps each balancer of the seed cluster to its rc.conf in
// examples/seed.
var clusterNodes = []struct{ node, rcconf string }{
	{"lb1", "rc.conf.lb1"},
	{"lb2", "rc.conf.lb2"},
}

// LabNice is the daemons' pfcarp_nice in the lab, the Nice= of
// packaging/pfcarp.service.
const LabNice = -10

// ClusterFiles returns the files of the seed cluster's balancers, by node
// and file name, adapted to a lab in dir (DefaultDir when empty) with or
// without the seed's addresses. dir should be absolute: it is written into
// the configs.
func ClusterFiles(dir string, seedAddrs bool) (map[string]map[string][]byte, error) {
	if dir == "" {
		dir = DefaultDir
	}
	pf, err := seed.ReadFile("pf.conf")
	if err != nil {
		return nil, err
	}
	sysctl, err := seed.ReadFile("sysctl.conf")
	if err != nil {
		return nil, err
	}
	from, to := AddressingFor(true), AddressingFor(seedAddrs)
	out := map[string]map[string][]byte{}
	for _, cn := range clusterNodes {
		rc, err := seed.ReadFile(cn.rcconf)
		if err != nil {
			return nil, err
		}
		rc = TranslateAddrs(rc, from, to)
		rc, err = setPflogFile(rc, filepath.Join(dir, cn.node, "pflog"))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cn.rcconf, err)
		}
		// The priority packaging/pfcarp.service gives the daemon (Nice=):
		// the lab's clients and servers share the balancers' cores.
		rc = append(rc, fmt.Sprintf("# lab: as packaging/pfcarp.service's Nice=\npfcarp_nice=\"%d\"\n", LabNice)...)
		out[cn.node] = map[string][]byte{
			"pfcarp.conf": rc,
			"pf.conf":     TranslateAddrs(pf, from, to),
			"sysctl.conf": sysctl,
		}
	}
	return out, nil
}

// WithCluster returns o set up to run the seed cluster: lb1 and lb2 get
// DefaultDaemon with ClusterFiles, started during Up. A node that already
// has a daemon in o.Daemons keeps it (and its files win over the
// cluster's), so a caller can replace one balancer's daemon. o.Dir is made
// absolute, since the daemons run in their node's directory.
func WithCluster(o Options) (Options, error) {
	if o.Dir == "" {
		o.Dir = DefaultDir
	}
	abs, err := filepath.Abs(o.Dir)
	if err != nil {
		return o, fmt.Errorf("lab dir: %w", err)
	}
	o.Dir = abs
	files, err := ClusterFiles(o.Dir, o.Seed)
	if err != nil {
		return o, fmt.Errorf("seed cluster: %w", err)
	}
	daemons := map[string][]string{}
	for n, argv := range o.Daemons {
		daemons[n] = argv
	}
	nodeFiles := map[string]map[string][]byte{}
	for n, fs := range o.NodeFiles {
		nodeFiles[n] = map[string][]byte{}
		for f, b := range fs {
			nodeFiles[n][f] = b
		}
	}
	for _, cn := range clusterNodes {
		if _, ok := daemons[cn.node]; !ok {
			daemons[cn.node] = DefaultDaemon()
		}
		if nodeFiles[cn.node] == nil {
			nodeFiles[cn.node] = map[string][]byte{}
		}
		for f, b := range files[cn.node] {
			if _, ok := nodeFiles[cn.node][f]; !ok {
				nodeFiles[cn.node][f] = b
			}
		}
	}
	o.Daemons, o.NodeFiles, o.StartDaemons = daemons, nodeFiles, true
	return o, nil
}

// ipRun matches a run of digits and dots: a candidate IPv4 address.
var ipRun = regexp.MustCompile(`[0-9][0-9.]*[0-9]`)

// TranslateAddrs moves every IPv4 address in src that lies in one of from's
// networks to the same host part in the matching network of to (External to
// External, Internal to Internal, Sync to Sync). Only whole addresses are
// touched: a run of digits and dots that is not exactly one IPv4 address
// (a version number, 1.2.3.4.5) is left alone, as is everything else.
func TranslateAddrs(src []byte, from, to Addressing) []byte {
	pairs := [][2]netip.Prefix{{from.External, to.External}, {from.Internal, to.Internal}, {from.Sync, to.Sync}}
	return ipRun.ReplaceAllFunc(src, func(m []byte) []byte {
		a, err := netip.ParseAddr(string(m))
		if err != nil || !a.Is4() {
			return m
		}
		for _, p := range pairs {
			if p[0].Contains(a) && p[0].Bits() == p[1].Bits() {
				return []byte(moveHost(a, p[0], p[1]).String())
			}
		}
		return m
	})
}

// moveHost keeps a's host bits (outside from's mask) under to's network.
func moveHost(a netip.Addr, from, to netip.Prefix) netip.Addr {
	ab, fb, tb := a.As4(), from.Masked().Addr().As4(), to.Masked().Addr().As4()
	var out [4]byte
	for i := range out {
		out[i] = tb[i] | (ab[i] &^ fb[i])
	}
	return netip.AddrFrom4(out)
}

var pflogLine = regexp.MustCompile(`(?m)^[ \t]*pflog_logfile=.*$`)

// setPflogFile points the rc.conf's pflog_logfile at path (replacing the
// assignment, or appending one).
func setPflogFile(rc []byte, path string) ([]byte, error) {
	if strings.ContainsAny(path, "\"$`\\\n") {
		return nil, fmt.Errorf("pflog_logfile: lab path %q contains a character rc.conf quoting would change", path)
	}
	line := []byte(`pflog_logfile="` + path + `"`)
	if pflogLine.Match(rc) {
		return pflogLine.ReplaceAllLiteral(rc, line), nil
	}
	if len(rc) > 0 && rc[len(rc)-1] != '\n' {
		rc = append(rc, '\n')
	}
	return append(append(rc, line...), '\n'), nil
}
