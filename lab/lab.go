// Package lab is pfcarp's test bed: it builds the seed's topology (a client
// segment, two balancers with external, internal and sync interfaces, a web
// server pool) out of Linux network namespaces, runs tiny web backends and the
// nodes' daemons in them, injects faults (pull a cable, kill -9 a daemon, cut
// the sync link, isolate a node) and tears it all down again, including what
// a crashed earlier run left behind.
//
// Every switch is a namespace holding a bridge; each node port is a veth pair
// created inside the switch namespace with its peer moved straight into the
// node, so no link ever exists in the host's namespace and no namespace is
// connected to it. Named namespaces are iproute2-compatible (/run/netns/NAME),
// and all other lab state (a state file, logs, pids, control sockets) lives in
// one directory, by default /run/pfcarp-lab.
//
// lab does not configure CARP, pf or pfsync: that is the daemon's job. Until a
// daemon runs, StaticBalancer stands in for it with plain routing. lab never
// shells out to `ip` or `nft`; it talks netlink (vishvananda/netlink,
// google/nftables).
package lab

import (
	"errors"
	"fmt"
	"regexp"
)

// Defaults.
const (
	DefaultDir      = "/run/pfcarp-lab"
	DefaultPrefix   = "pfl-"
	DefaultBackends = 2
	// SocketEnv is the environment variable through which pfcarp's CLI finds
	// a node's daemon control socket; Exec and daemons get it set.
	SocketEnv = "PFCARP_SOCKET"
	// ConfigEnv names the node's rc.conf to pfcarp's CLI (pfctl --node).
	ConfigEnv = "PFCARP_CONFIG"
)

// ErrNotUp is returned (wrapped) by Open when no lab is up in the directory.
var ErrNotUp = errors.New("no lab is up")

// Options configure Up. The zero value builds the default lab.
type Options struct {
	// Dir holds the lab's state, logs and sockets. Default DefaultDir.
	Dir string
	// Prefix starts every namespace name, so Down can find leftovers of a
	// crashed run. Default DefaultPrefix; letters, digits and '-' only.
	Prefix string
	// Seed selects the seed's exact addresses instead of the lab's
	// documentation ranges.
	Seed bool
	// Backends is the number of web servers s1..sN. Default 2.
	Backends int
	// Bin is the pfcarp binary that runs the backends (`Bin lab backend`).
	// Default: the running executable. Tests pass a binary they built.
	Bin string
	// Daemons maps a node name to the command line of its daemon. In each
	// argument "{bin}", "{dir}" and "{node}" are replaced by Bin, the node's
	// directory under Dir, and the node name. A node without an entry has no
	// daemon.
	Daemons map[string][]string
	// NodeFiles are files written into a node's directory before its
	// daemon starts, e.g. {"lb1": {"pfcarp.conf": ...}}. Names are plain
	// file names.
	NodeFiles map[string]map[string][]byte
	// StartDaemons starts the configured daemons during Up; otherwise they
	// are only recorded, for StartDaemon.
	StartDaemons bool
	// Logf, when set, receives one line per step of Up and Down.
	Logf func(format string, args ...any)
}

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,15}$`)

func (o *Options) setDefaults() error {
	if o.Dir == "" {
		o.Dir = DefaultDir
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if !prefixRE.MatchString(o.Prefix) {
		return fmt.Errorf("prefix %q: want 1 to 16 letters, digits or '-'", o.Prefix)
	}
	if o.Backends == 0 {
		o.Backends = DefaultBackends
	}
	return nil
}

// DefaultDaemon is the daemon command line the lab gives balancers when asked
// to run pfcarp's own daemon: `pfcarp run -c <node dir>/pfcarp.conf`.
func DefaultDaemon() []string { return []string{"{bin}", "run", "-c", "{dir}/pfcarp.conf"} }
