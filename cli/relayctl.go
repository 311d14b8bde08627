package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"

	"github.com/pfcarp/pfcarp/daemon"
)

// relayctlUsage is relayctl(8)'s commands as pfcarp has them.
const relayctlUsage = `usage: pfcarp relayctl [-s socket] command [argument ...] [--json]
commands:
  show summary|hosts|redirects [--json]
  host disable|enable ID|NAME
  redirect disable|enable ID|NAME
  reload`

// newRelayctlCmd is `pfcarp relayctl`, OpenBSD's relayctl(8) for the
// relayd that runs in the daemon (relayd_enable): it reads and changes it
// over the daemon's control socket. A link named relayctl runs it.
func newRelayctlCmd() *command {
	return &command{
		name:  "relayctl",
		short: "control relayd's redirections as relayctl(8): show summary|hosts|redirects, host|redirect disable|enable, reload",
		run:   runRelayctl,
	}
}

func runRelayctl(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("relayctl", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, relayctlUsage)
		fs.PrintDefaults()
	}
	asJSON := fs.Bool("json", false, "show: print the state as JSON")
	sock := fs.String("s", daemon.SocketPath(), "daemon control socket `path`")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &ExitError{Code: 2}
	}
	// relayctl's commands are words; --json may follow them.
	var words []string
	for _, a := range fs.Args() {
		if a == "--json" || a == "-json" {
			*asJSON = true
			continue
		}
		words = append(words, a)
	}
	usage := &ExitError{Code: 2, Err: errors.New(relayctlUsage)}
	c := daemon.NewClient(*sock)
	switch {
	case len(words) == 2 && words[0] == "show":
		what := words[1]
		if what != "summary" && what != "hosts" && what != "redirects" {
			return usage
		}
		var st daemon.RelaydStatus
		if err := c.Get(ctx, "/v1/relayd", &st); err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(env.Stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(st)
		}
		printRelaydSummary(env.Stdout, &st, what)
		return nil
	case len(words) == 3 && (words[0] == "host" || words[0] == "redirect") && (words[1] == "disable" || words[1] == "enable"):
		return relayctlCommand(ctx, env, c, "/v1/relayd/"+words[0]+"/"+url.PathEscape(words[2])+"/"+words[1])
	case len(words) == 1 && words[0] == "reload":
		return relayctlCommand(ctx, env, c, "/v1/relayd/reload")
	}
	return usage
}

// relayctlCommand sends a command and prints its result as relayctl's
// show_command_output does ("command succeeded", "command failed", exit
// status 1), with the daemon's reason on stderr.
func relayctlCommand(ctx context.Context, env *Env, c *daemon.Client, path string) error {
	var res daemon.CommandResult
	if err := c.Post(ctx, path, &res); err != nil {
		return err
	}
	if !res.OK {
		fmt.Fprintln(env.Stdout, "command failed")
		fmt.Fprintf(env.Stderr, "relayctl: %s\n", res.Error)
		return &ExitError{Code: 1}
	}
	fmt.Fprintln(env.Stdout, "command succeeded")
	return nil
}

// printRelaydSummary prints what as relayctl's show_summary_msg does:
// the header, then each redirection (summary, redirects) followed by its
// tables and their hosts (summary, hosts), one tab-separated line each;
// "show hosts" adds the checks line under each checked host.
func printRelaydSummary(w io.Writer, st *daemon.RelaydStatus, what string) {
	line := func(id int, typ, name, avail, status string) {
		fmt.Fprintf(w, "%-4d\t%-8s\t%-24s\t%-7s\t%s\n", id, typ, name, avail, status)
	}
	fmt.Fprintf(w, "%-4s\t%-8s\t%-24s\t%-7s\tStatus\n", "Id", "Type", "Name", "Avlblty")
	tables := map[int]daemon.RelaydTable{}
	for _, t := range st.Tables {
		tables[t.ID] = t
	}
	hosts := map[int]daemon.RelaydHost{}
	for _, h := range st.Hosts {
		hosts[h.ID] = h
	}
	shown := map[int]bool{}
	for _, rd := range st.Redirects {
		if what != "hosts" {
			line(rd.ID, "redirect", rd.Name, "", rd.Status)
		}
		if what == "redirects" {
			continue
		}
		for _, tid := range rd.Tables {
			t, ok := tables[tid]
			if !ok || shown[tid] {
				continue
			}
			shown[tid] = true
			line(t.ID, "table", fmt.Sprintf("%s:%d", t.Name, t.Port), "", t.Status)
			for _, hid := range t.Hosts {
				h, ok := hosts[hid]
				if !ok {
					continue
				}
				name := h.Name
				if h.Parent != 0 {
					name = fmt.Sprintf("%s parent %d", h.Name, h.Parent)
				}
				line(h.ID, "host", name, availability(h), h.Status)
				if what == "hosts" && h.Checks > 0 {
					fmt.Fprintf(w, "\t%8s\ttotal: %d/%d checks", "", h.UpChecks, h.Checks)
					if h.Retries > 0 {
						fmt.Fprintf(w, ", %d retries", h.Retries)
					}
					fmt.Fprintln(w)
				}
			}
		}
	}
}

// availability is relayctl's print_availability: empty before the first
// check, else the up checks in percent with two decimals.
func availability(h daemon.RelaydHost) string {
	if h.Checks == 0 {
		return ""
	}
	return fmt.Sprintf("%.2f%%", h.Availability)
}
