package relayd

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/pfcarp/pfcarp/pfconf"
)

// AnchorRoot is the anchor under which relayd puts one anchor per
// redirection (relayd.h RELAYD_ANCHOR).
const AnchorRoot = "relayd"

// AnchorPath is the anchor of redirection name: "relayd/NAME".
func AnchorPath(name string) string { return AnchorRoot + "/" + name }

// UpHosts is the set of host IDs whose state is Up in sts (Checker.Hosts).
func UpHosts(sts []Status) map[int]bool {
	up := map[int]bool{}
	for _, s := range sts {
		if s.State == Up {
			up[s.HostID] = true
		}
	}
	return up
}

// tableUp counts t's hosts in up (relayd's table->up).
func tableUp(t *Table, up map[int]bool) int {
	if t == nil {
		return 0
	}
	n := 0
	for _, h := range t.Hosts {
		if up[h.ID] {
			n++
		}
	}
	return n
}

// ActiveTable is the table whose up hosts rd's rules send to, as pfe.c's
// pfe_sync picks it: nil when rd is disabled or neither its table nor its
// backup table has a host up (the redirection is down and its anchor
// empty), the backup table when the main table has none up, else the main
// table.
func ActiveTable(rd *Redirect, up map[int]bool) *Table {
	if rd.Disabled || rd.Forward == nil {
		return nil
	}
	main := rd.Forward.Instance
	var backup *Table
	if rd.Backup != nil {
		backup = rd.Backup.Instance
	}
	switch {
	case tableUp(main, up) > 0:
		return main
	case tableUp(backup, up) > 0:
		return backup
	}
	return nil
}

// RuleOptions adapts AnchorRules to what the compiler enforces.
type RuleOptions struct {
	// NoStateTimeout leaves the session timeout (tcp.established) out of
	// the rules: package compile refuses per-rule state timeouts, so the
	// states then keep the global tcp.established timeout. See
	// StateTimeoutWarning.
	NoStateTimeout bool
}

// StateTimeoutWarning says what rd loses with RuleOptions.NoStateTimeout,
// "" when nothing (no tcp listen address or no session timeout).
func StateTimeoutWarning(rd *Redirect) string {
	if rd.SessionTimeout <= 0 {
		return ""
	}
	for _, l := range rd.Listens {
		if l.Proto == "tcp" && !rd.MatchTag {
			return fmt.Sprintf("%s: redirection %s: session timeout %d is not enforced: per-rule state timeouts are not supported yet; its states use the global tcp.established timeout",
				rd.Pos, rd.Name, int64(rd.SessionTimeout.Seconds()))
		}
	}
	return ""
}

// AnchorRules is the pf.conf text of anchor relayd/NAME for redirection rd
// with the hosts in up, what relayd installs there (pfe_filter.c:
// sync_table fills table <NAME> with the active table's hosts that are up,
// sync_ruleset adds one rule per listen address):
//
//	table <NAME> persist { up hosts }
//	pass in [log] quick [on IF] proto P from any to ADDR [port PORT] \
//	    [flags S/SA] keep state [(tcp.established TIMEOUT)] [tag TAG] \
//	    rdr-to <NAME> [port FPORT] MODE [sticky-address]
//
// "match tag" makes the rules "match" rules without quick; flags S/SA and
// the session timeout (as tcp.established) apply to tcp only; the rdr-to
// port is the table's when the listen port is one port or the forward line
// gives a port; log is relayd's F_PFLOG, set by any listen line's pflog.
// When the redirection is down (ActiveTable is nil) the anchor holds the
// empty table and no rule, as pfe_sync flushes the table and commits an
// empty ruleset.
func AnchorRules(rd *Redirect, up map[int]bool, opts RuleOptions) (string, error) {
	if !pfconf.ValidName(rd.Name) {
		return "", fmt.Errorf("%s: redirection %q cannot be a pf table name (one word, not a keyword)", rd.Pos, rd.Name)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# relayd redirection %s\n", rd.Name)
	active := ActiveTable(rd, up)
	if active == nil {
		fmt.Fprintf(&b, "table <%s> persist\n", rd.Name)
		return b.String(), nil
	}
	fmt.Fprintf(&b, "table <%s> persist {", rd.Name)
	for _, h := range active.Hosts {
		if !up[h.ID] {
			continue
		}
		if !h.Addr.IsValid() {
			return "", fmt.Errorf("%s: redirection %s: host %s of table %s has no numeric address", h.Pos, rd.Name, h.Name, active.Name)
		}
		fmt.Fprintf(&b, " %s", h.Addr)
	}
	b.WriteString(" }\n")
	pool, err := poolOption(rd)
	if err != nil {
		return "", err
	}
	log := false
	for _, l := range rd.Listens {
		log = log || l.PFLog
	}
	for _, l := range rd.Listens {
		r, err := listenRule(rd, l, log, pool, opts)
		if err != nil {
			return "", err
		}
		b.WriteString(r)
		b.WriteByte('\n')
	}
	return b.String(), nil
}

// poolOption is the pf pool option of rd's mode (sync_ruleset's switch on
// rdr->conf.mode) with sticky-address.
func poolOption(rd *Redirect) (string, error) {
	var s string
	switch rd.Forward.Mode {
	case ModeRoundRobin:
		s = "round-robin"
	case ModeRandom:
		s = "random"
	case ModeSourceHash:
		// relayd's hashkey rule is pfctl's: the same key text gives
		// the same key (parse.y hashkey).
		s = "source-hash"
		switch k := rd.Forward.Key; {
		case k == "":
		case strings.HasPrefix(k, "0x"):
			s += " " + k
		case strings.ContainsAny(k, "\"\\\n"):
			return "", fmt.Errorf("%s: redirection %s: the source-hash key cannot be written in pf.conf (quote, backslash or newline)", rd.Forward.Pos, rd.Name)
		default:
			s += fmt.Sprintf(" %q", k)
		}
	default:
		return "", fmt.Errorf("%s: redirection %s: mode %s is not supported: pf here has no %s pool", rd.Forward.Pos, rd.Name, rd.Forward.Mode, rd.Forward.Mode)
	}
	if rd.Sticky {
		s += " sticky-address"
	}
	return s, nil
}

// listenRule is the rule sync_ruleset adds for one listen address.
func listenRule(rd *Redirect, l Listen, log bool, pool string, opts RuleOptions) (string, error) {
	var b strings.Builder
	if rd.MatchTag {
		b.WriteString("match in")
	} else {
		b.WriteString("pass in")
	}
	if log {
		b.WriteString(" log")
	}
	if !rd.MatchTag {
		b.WriteString(" quick")
	}
	if l.Interface != "" {
		if !pfconf.ValidName(l.Interface) {
			return "", fmt.Errorf("%s: redirection %s: interface %q cannot be a pf interface name", l.Pos, rd.Name, l.Interface)
		}
		fmt.Fprintf(&b, " on %s", l.Interface)
	}
	// Listen.Addr is an address or a host or interface name (checked by
	// the parser); pf's expansion resolves it into one rule per address
	// as relayd's host() makes one virtual address each.
	if _, err := netip.ParseAddr(l.Addr); err != nil && !pfconf.ValidName(l.Addr) {
		return "", fmt.Errorf("%s: redirection %s: virtual ip %q cannot be a pf host name", l.Pos, rd.Name, l.Addr)
	}
	fmt.Fprintf(&b, " proto %s from any to %s", l.Proto, l.Addr)
	switch {
	case l.Port.Hi != 0:
		fmt.Fprintf(&b, " port %d:%d", l.Port.Lo, l.Port.Hi)
	case l.Port.Lo != 0:
		fmt.Fprintf(&b, " port %d", l.Port.Lo)
	}
	tcp := l.Proto == "tcp"
	if tcp {
		b.WriteString(" flags S/SA")
	}
	if !rd.MatchTag {
		b.WriteString(" keep state")
		if tcp && rd.SessionTimeout > 0 && !opts.NoStateTimeout {
			fmt.Fprintf(&b, " (tcp.established %d)", int64(rd.SessionTimeout.Seconds()))
		}
	}
	if rd.Tag != "" {
		if !pfconf.ValidName(rd.Tag) {
			return "", fmt.Errorf("%s: redirection %s: tag %q cannot be a pf tag name (one word, not a keyword)", rd.Pos, rd.Name, rd.Tag)
		}
		fmt.Fprintf(&b, " tag %q", rd.Tag)
	}
	fmt.Fprintf(&b, " rdr-to <%s>", rd.Name)
	if (l.Port.Lo != 0 && l.Port.Hi == 0) || rd.Forward.PortSet {
		fmt.Fprintf(&b, " port %d", rd.Forward.Port)
	}
	b.WriteString(" " + pool)
	return b.String(), nil
}
