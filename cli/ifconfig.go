package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/pfcarp/pfcarp/daemon"
	"github.com/pfcarp/pfcarp/pfsync"
)

// newIfconfigCmd is `pfcarp ifconfig [carpN|IF|pfsync0]`: CARP status
// lines as FreeBSD's ifconfig prints them, then pfsync0's (syncdev,
// syncpeer, maxupd and pfcarp's counters), read from the running daemon.
func newIfconfigCmd() *command {
	return &command{
		name:  "ifconfig",
		short: "show CARP and pfsync status as ifconfig does: [carpN|IF|pfsync0] [--json]",
		run:   runIfconfig,
	}
}

func runIfconfig(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("ifconfig", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	asJSON := fs.Bool("json", false, "print the daemon's status as JSON")
	sock := fs.String("socket", daemon.SocketPath(), "daemon control socket `path`")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &ExitError{Code: 2}
	}
	if fs.NArg() > 1 {
		return &ExitError{Code: 2, Err: errors.New("usage: pfcarp ifconfig [carpN|IF|pfsync0] [--json]")}
	}
	var st daemon.Status
	if err := daemon.NewClient(*sock).Get(ctx, "/v1/status", &st); err != nil {
		return err
	}
	want := fs.Arg(0)
	if want == "pfsync0" {
		if st.Pfsync == nil {
			return &ExitError{Code: 1, Err: errors.New("ifconfig: interface pfsync0 does not exist (ifconfig_pfsync0 is not up)")}
		}
		if *asJSON {
			enc := json.NewEncoder(env.Stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(st.Pfsync)
		}
		return pfsync.FormatIfconfig(env.Stdout, st.Pfsync)
	}
	if want != "" {
		var keep []daemon.CARPStatus
		for _, g := range st.CARP {
			if g.Name == want || (g.Name == "" && g.Parent == want) {
				keep = append(keep, g)
			}
		}
		if len(keep) == 0 {
			return &ExitError{Code: 1, Err: fmt.Errorf("ifconfig: interface %s does not exist", want)}
		}
		st.CARP = keep
		st.Pfsync = nil // one interface asked for
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	printIfconfig(env.Stdout, &st)
	if st.Pfsync != nil {
		return pfsync.FormatIfconfig(env.Stdout, st.Pfsync)
	}
	return nil
}

// printIfconfig prints each group as FreeBSD's ifconfig does: a carpN
// interface (FreeBSD 7) or the parent with a vhid (FreeBSD 10+), its
// addresses and the line `carp: MASTER vhid 1 advbase 1 advskew 10`.
func printIfconfig(w io.Writer, st *daemon.Status) {
	var b strings.Builder
	for _, g := range st.CARP {
		name := g.Name
		if name == "" {
			name = g.Parent
		}
		fmt.Fprintf(&b, "%s: carpdev %s\n", name, g.Parent)
		for _, p := range g.VIPs {
			if p.Addr().Is4() {
				fmt.Fprintf(&b, "\tinet %s netmask %s vhid %d\n", p.Addr(), hexMask(p), g.VHID)
			} else {
				fmt.Fprintf(&b, "\tinet6 %s prefixlen %d vhid %d\n", p.Addr(), p.Bits(), g.VHID)
			}
		}
		fmt.Fprintf(&b, "\tcarp: %s vhid %d advbase %d advskew %d\n", g.State, g.VHID, g.AdvBase, g.Skew)
		if g.Peer.IsValid() {
			fmt.Fprintf(&b, "\t      peer %s\n", g.Peer)
		}
		if st.Demotion > 0 {
			fmt.Fprintf(&b, "\t      demoted: %d (advskew configured %d)\n", st.Demotion, g.AdvSkew)
		}
		if g.Last != nil {
			fmt.Fprintf(&b, "\t      last transition %s: %s -> %s (%s)\n",
				g.Last.At.Format("2006-01-02 15:04:05"), g.Last.From, g.Last.To, g.Last.Reason)
		}
	}
	io.WriteString(w, b.String())
}

// hexMask prints an IPv4 mask as FreeBSD's ifconfig does: 0xffffff00.
func hexMask(p netip.Prefix) string {
	m := uint32(0)
	if p.Bits() > 0 {
		m = ^uint32(0) << (32 - p.Bits())
	}
	return fmt.Sprintf("0x%08x", m)
}
