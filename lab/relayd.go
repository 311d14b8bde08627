package lab

import (
	"bytes"
	"fmt"
)

// The seed cluster with relayd: the balancers' web pool is health-checked
// by relayd's redirection in the daemon (relayd_enable) instead of the
// seed's unchecked rdr rule. Each balancer gets RelaydConf as relayd.conf,
// its pf.conf calls rdr-anchor and anchor "relayd/*" where the rdr rule
// was (as relayd on FreeBSD asks of pf.conf), and its rc.conf turns relayd
// on.

// RelaydConf is the lab's relayd.conf in the form of OpenBSD's
// /etc/examples/relayd.conf (macros, global options, a table, a
// redirection), at the seed's addresses: the external VIP's port 80 to the
// web servers s1 and s2, checked with an HTTP GET of / every second, with
// sticky-address, and demoting CARP when no server answers.
const RelaydConf = `# relayd.conf(5): the seed's web pool, health-checked
ext_addr="192.168.1.51"
webhost1="192.168.10.20"
webhost2="192.168.10.21"

interval 1
timeout 500
log state changes

table <webhosts> { $webhost1 $webhost2 }

redirect www {
	listen on $ext_addr port http
	forward to <webhosts> check http "/" code 200 demote carp
	sticky-address
}
`

// RelaydInterval and RelaydTimeout are RelaydConf's interval and timeout.
const (
	RelaydInterval = 1000 // ms
	RelaydTimeout  = 500  // ms
)

// seedRdr is the seed pf.conf's redirection that relayd replaces.
const seedRdr = "rdr on $ext_if proto tcp from any to $ext_carp port $web_ports -> $web_servers round-robin sticky-address\n"

// WithRelayd is WithCluster with relayd on both balancers, at the lab's
// addresses (o.Seed).
func WithRelayd(o Options) (Options, error) {
	o, err := WithCluster(o)
	if err != nil {
		return o, err
	}
	conf := TranslateAddrs([]byte(RelaydConf), AddressingFor(true), AddressingFor(o.Seed))
	for _, cn := range clusterNodes {
		fs := o.NodeFiles[cn.node]
		pf := fs["pf.conf"]
		if !bytes.Contains(pf, []byte(seedRdr)) {
			return o, fmt.Errorf("%s: pf.conf has no rdr rule for relayd to replace", cn.node)
		}
		fs["pf.conf"] = bytes.Replace(pf, []byte(seedRdr), []byte("rdr-anchor \"relayd/*\"\nanchor \"relayd/*\"\n"), 1)
		fs["pfcarp.conf"] = append(append([]byte(nil), fs["pfcarp.conf"]...),
			[]byte("relayd_enable=\"YES\"\nrelayd_flags=\"-f relayd.conf\"\n")...)
		fs["relayd.conf"] = conf
	}
	return o, nil
}
