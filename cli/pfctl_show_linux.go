package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"

	"github.com/ti-mo/conntrack"

	"github.com/pfcarp/pfcarp/compile"
	"github.com/pfcarp/pfcarp/daemon"
	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/tc"
)

// runKernelOps carries out -e/-d, -F, -t/-T and -s against the loaded
// ruleset, in pfctl's order (flush, enable/disable, table, show).
func runKernelOps(env *Env, k *kernelFlags, args []string, verbose int) error {
	c := nft.Open(nft.WithAnchor(*k.anchor)) // -a: that anchor's rules and tables
	fail := func(err error) error {
		if nft.IsNotLoaded(err) {
			fmt.Fprintf(env.Stderr, "pfctl: %v\n", err)
			return &ExitError{Code: 1}
		}
		fmt.Fprintf(env.Stderr, "pfctl: %v\n", err)
		return &ExitError{Code: 1}
	}
	if *k.tcmd == "" && len(args) > 0 {
		fmt.Fprintf(env.Stderr, "pfctl: unexpected argument %q\n", args[0])
		return &ExitError{Code: 1}
	}
	switch *k.flush {
	case "":
	case "rules", "nat", "Tables", "states", "all":
		what := *k.flush
		if what == "all" && *k.anchor != "" {
			what = "anchor" // pfctl -a NAME -F all: the anchor's rules, nat and tables only
		}
		if err := flush(env, c, what); err != nil {
			return fail(err)
		}
	}
	if len(*k.kill) > 0 {
		if err := killStates(env, *k.kill); err != nil {
			return fail(err)
		}
	}
	if *k.enable || *k.disable {
		if err := c.SetEnabled(*k.enable); err != nil {
			return fail(err)
		}
		if *k.enable {
			io.WriteString(env.Stderr, "pf enabled\n")
		} else {
			io.WriteString(env.Stderr, "pf disabled\n")
		}
	}
	if *k.tcmd != "" {
		if err := tableCmd(env, c, *k.table, *k.tcmd, args, verbose); err != nil {
			return err
		}
	}
	if *k.show == "Anchors" {
		if err := showAnchors(env, *k.anchor, verbose); err != nil { // pfctl_anchor_linux.go
			return fail(err)
		}
	} else if *k.show != "" {
		if err := show(env, c, *k.show, verbose); err != nil {
			return fail(err)
		}
	}
	return nil
}

func flush(env *Env, c *nft.Conn, what string) error {
	all := what == "all" || what == "anchor"
	if what == "rules" || all {
		if _, err := c.FlushKinds(nft.KindScrub, nft.KindFilter); err != nil {
			return err
		}
		io.WriteString(env.Stderr, "rules cleared\n")
	}
	if what == "nat" || all {
		if _, err := c.FlushKinds(nft.KindNAT, nft.KindRDR, nft.KindBINAT); err != nil {
			return err
		}
		io.WriteString(env.Stderr, "nat cleared\n")
	}
	if what == "all" {
		if err := tc.Remove(); err != nil {
			return err
		}
		io.WriteString(env.Stderr, "altq cleared\n")
	}
	if what == "Tables" || all {
		names, err := c.Tables()
		if err != nil {
			return err
		}
		for _, n := range names {
			if _, err := c.ChangeTable(n, nft.TableFlush, nil); err != nil {
				return err
			}
		}
		fmt.Fprintf(env.Stderr, "%d tables flushed.\n", len(names))
	}
	if what == "states" || what == "all" {
		ct, err := conntrack.Dial(nil)
		if err != nil {
			return fmt.Errorf("conntrack: %w", err)
		}
		defer ct.Close()
		flows, _ := ct.Dump(nil)
		if err := ct.Flush(); err != nil {
			return fmt.Errorf("conntrack flush: %w", err)
		}
		fmt.Fprintf(env.Stderr, "%d states cleared\n", len(flows))
	}
	return nil
}

// tableCmd is pfctl -t T -T cmd [address ...].
func tableCmd(env *Env, c *nft.Conn, table, cmd string, args []string, verbose int) error {
	var ps []netip.Prefix
	for _, a := range args {
		p, err := parseTableAddr(a)
		if err != nil {
			fmt.Fprintf(env.Stderr, "pfctl: %v\n", err)
			return &ExitError{Code: 1}
		}
		ps = append(ps, p)
	}
	report := func(err error) error {
		fmt.Fprintf(env.Stderr, "pfctl: %v\n", err)
		return &ExitError{Code: 1}
	}
	switch cmd {
	case "show":
		entries, err := c.TableEntries(table)
		if err != nil {
			return report(err)
		}
		w := bufio.NewWriterSize(env.Stdout, 64<<10)
		for _, p := range entries {
			if p.IsSingleIP() {
				fmt.Fprintf(w, "   %s\n", p.Addr())
			} else {
				fmt.Fprintf(w, "   %s\n", p)
			}
		}
		if err := w.Flush(); err != nil {
			return report(err)
		}
	case "test":
		addrs := make([]netip.Addr, len(ps))
		for i, p := range ps {
			addrs[i] = p.Addr()
		}
		in, err := c.TableTest(table, addrs)
		if err != nil {
			return report(err)
		}
		n := 0
		for i, a := range addrs {
			if in[i] {
				n++
				if verbose > 0 {
					fmt.Fprintf(env.Stdout, "%s\n", a)
				}
			}
		}
		fmt.Fprintf(env.Stderr, "%d/%d addresses match.\n", n, len(ps))
		if n != len(ps) {
			return &ExitError{Code: 2}
		}
	default:
		op := map[string]nft.TableOp{"add": nft.TableAdd, "delete": nft.TableDelete, "replace": nft.TableReplace, "flush": nft.TableFlush}[cmd]
		n, err := c.ChangeTable(table, op, ps)
		if err != nil {
			return report(err)
		}
		switch cmd {
		case "add":
			fmt.Fprintf(env.Stderr, "%d/%d addresses added.\n", n, len(ps))
		case "delete":
			fmt.Fprintf(env.Stderr, "%d/%d addresses deleted.\n", n, len(ps))
		case "replace":
			fmt.Fprintf(env.Stderr, "%d addresses set.\n", n)
		case "flush":
			if n == nft.Uncounted {
				// Counting a large table means reading all of it
				// (minutes for 1M addresses); the flush took seconds.
				fmt.Fprintf(env.Stderr, "all addresses deleted (too many to count quickly).\n")
			} else {
				fmt.Fprintf(env.Stderr, "%d addresses deleted.\n", n)
			}
		}
	}
	return nil
}

// parseTableAddr parses an address or network as pfctl -T takes them.
func parseTableAddr(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid network %q", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("invalid address %q (host names are not resolved here)", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// stateCounts counts conntrack entries per filter rule number, from the
// connection mark compile sets (compile.CtMarkRuleMask). ok is false when
// conntrack cannot be read.
func stateCounts() (map[int]uint64, int, bool) {
	ct, err := conntrack.Dial(nil)
	if err != nil {
		return nil, 0, false
	}
	defer ct.Close()
	flows, err := ct.Dump(nil)
	if err != nil {
		return nil, 0, false
	}
	m := map[int]uint64{}
	for _, f := range flows {
		if f.Mark&compile.CtMarkState != 0 && f.Mark&compile.CtMarkRuleMask != 0 {
			m[int(f.Mark&compile.CtMarkRuleMask)-1]++
		}
	}
	return m, len(flows), true
}

func show(env *Env, c *nft.Conn, what string, verbose int) error {
	if what == "states" {
		return showStates(env, verbose) // pfctl_states_linux.go
	}
	rs, err := c.Read()
	if err != nil {
		return err
	}
	states, total, _ := stateCounts()
	w := env.Stdout
	printRules := func(kinds ...nft.Kind) {
		for _, k := range kinds {
			for _, r := range rs.Records {
				if r.Kind != k {
					continue
				}
				if verbose >= 2 {
					fmt.Fprintf(w, "@%d ", r.Nr)
				}
				fmt.Fprintln(w, r.Text)
				if verbose >= 1 {
					st := rs.Stats[nft.Ref{Kind: r.Kind, Nr: r.Nr}]
					if st == nil {
						st = &nft.Stats{}
					}
					var n uint64
					if k == nft.KindFilter {
						n = states[r.Nr]
					}
					fmt.Fprintf(w, "  [ Evaluations: %-8d  Packets: %-8d  Bytes: %-10d  States: %-6d]\n", st.Evaluations, st.Matched.Packets, st.Matched.Bytes, n)
				}
			}
		}
	}
	section := func(title string) {
		if what == "all" {
			fmt.Fprintf(w, "%s:\n", title)
		}
	}
	if what == "rules" || what == "all" {
		section("FILTER RULES")
		printRules(nft.KindScrub, nft.KindFilter)
	}
	if what == "nat" || what == "all" {
		if what == "all" {
			fmt.Fprintln(w)
		}
		section("TRANSLATION RULES")
		printRules(nft.KindNAT, nft.KindRDR, nft.KindBINAT)
	}
	if what == "tables" || what == "all" {
		if what == "all" {
			fmt.Fprintln(w)
		}
		section("TABLES")
		names, err := c.Tables()
		if err != nil {
			return err
		}
		for _, n := range names {
			fmt.Fprintln(w, n)
		}
	}
	if what == "labels" || what == "all" {
		if what == "all" {
			fmt.Fprintln(w)
		}
		section("LABEL COUNTERS")
		for _, r := range rs.Records {
			st := rs.Stats[nft.Ref{Kind: r.Kind, Nr: r.Nr}]
			if st == nil {
				st = &nft.Stats{}
			}
			in, out := st.ByChain[compile.ChainFilterIn], st.ByChain[compile.ChainFilterOut]
			var n uint64
			if r.Kind == nft.KindFilter {
				n = states[r.Nr]
			}
			for _, l := range r.Labels {
				fmt.Fprintf(w, "%s %d %d %d %d %d %d %d %d\n", l, st.Evaluations, st.Matched.Packets, st.Matched.Bytes,
					in.Packets, in.Bytes, out.Packets, out.Bytes, n)
			}
		}
	}
	if what == "info" || what == "all" {
		if what == "all" {
			fmt.Fprintln(w)
		}
		section("INFO")
		status := "Enabled"
		if !rs.Enabled {
			status = "Disabled"
		}
		host, _ := os.Hostname()
		fmt.Fprintf(w, "Status: %-40s Host: %s\n\n", status, host)
		fmt.Fprintf(w, "State Table                          Total\n")
		fmt.Fprintf(w, "  %-25s %14d\n", "current entries", total)
		fmt.Fprintf(w, "Rules                                Total\n")
		var nf, nn int
		for _, r := range rs.Records {
			if r.Kind.IsTranslation() {
				nn++
			} else {
				nf++
			}
		}
		fmt.Fprintf(w, "  %-25s %14d\n  %-25s %14d\n", "filter", nf, "translation", nn)
		if ps := daemonPfsync(context.Background(), daemon.SocketPath()); ps != nil {
			printPfsyncInfo(w, ps) // pfctl_pfsync.go
		}
	}
	return nil
}
