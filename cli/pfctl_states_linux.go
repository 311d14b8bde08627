package cli

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/pfcarp/pfcarp/pfsync"
)

// showStates is pfctl -s states: it reads the kernel's conntrack table
// directly, so it works without a running daemon.
func showStates(env *Env, verbose int) error {
	ct, err := pfsync.DialConntrack()
	if err != nil {
		return err
	}
	defer ct.Close()
	states, err := ct.Dump(nil)
	if err != nil {
		return err
	}
	starts := make([]time.Time, len(states))
	for i := range states {
		starts[i] = states[i].Start
	}
	printStates(env.Stdout, states, starts, time.Now(), verbose)
	return nil
}

// killStates is pfctl -k host [-k host]: it deletes the matching conntrack
// entries and reports, as pfctl does, on stderr.
func killStates(env *Env, hosts []string) error {
	if len(hosts) > 2 {
		return fmt.Errorf("-k: at most two hosts (source, destination)")
	}
	lookup := func(h string) ([]netip.Addr, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return net.DefaultResolver.LookupNetIP(ctx, "ip", h)
	}
	src, err := parseKillHost(hosts[0], lookup)
	if err != nil {
		return err
	}
	var dst []netip.Prefix
	if len(hosts) == 2 {
		if dst, err = parseKillHost(hosts[1], lookup); err != nil {
			return err
		}
	}
	ct, err := pfsync.DialConntrack()
	if err != nil {
		return err
	}
	defer ct.Close()
	states, err := ct.Dump(nil)
	if err != nil {
		return err
	}
	killed := 0
	for i := range states {
		if killMatch(&states[i], src, dst) {
			if err := ct.Delete(&states[i]); err == nil {
				killed++
			}
		}
	}
	fmt.Fprintf(env.Stderr, "killed %d states from %d sources and %d destinations\n", killed, len(src), len(dst))
	return nil
}
