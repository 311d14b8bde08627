package relayd

import (
	"fmt"
	"sort"

	"github.com/pfcarp/pfcarp/compile"
	"github.com/pfcarp/pfcarp/netdb"
	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/pfconf"
)

// AnchorLoader installs one anchor's program atomically, leaving the rest
// of pf alone: *nft.Conn (LoadAnchor).
type AnchorLoader interface {
	LoadAnchor(p *nft.Program) error
}

// CompileRules parses, expands and compiles the text of AnchorRules as
// anchor path, through the path every pf.conf takes (pfconf.Parse,
// pfconf.Expand with host, compile.CompileAnchor). Errors name the anchor
// and the line of the generated text.
func CompileRules(path, text string, host netdb.Host) (*nft.Program, error) {
	f, err := pfconf.Parse(path, []byte(text), pfconf.ParseOptions{})
	if err != nil {
		return nil, fmt.Errorf("anchor %s: %w", path, err)
	}
	rs, err := pfconf.Expand(f, host)
	if err != nil {
		return nil, fmt.Errorf("anchor %s: %w", path, err)
	}
	prog, err := compile.CompileAnchor(path, rs, compile.Options{RuleText: compile.RuleTexts(rs)})
	if err != nil {
		return nil, fmt.Errorf("anchor %s: %w", path, err)
	}
	return prog, nil
}

// Installer keeps the anchors relayd/NAME of a configuration's
// redirections in the kernel. Sync rewrites an anchor only when its text
// changes (a host state or the configuration changed), each anchor in one
// transaction of its own, as relayd commits one ruleset transaction per
// redirection. Not safe for concurrent use.
type Installer struct {
	Loader AnchorLoader
	Host   netdb.Host
	// Warnings are the differences from relayd of the anchors as the
	// last Sync left them (StateTimeoutWarning), one per active
	// redirection; the caller logs them.
	Warnings []string
	// installed is the text in each anchor this Installer wrote.
	installed map[string]string
}

// Forget drops what the Installer believes is in the kernel, so the next
// Sync rewrites every anchor: after something else replaced or flushed
// them (pfctl -a relayd/NAME -F all, a flush of the whole ruleset). The
// anchors it wrote stay known, so that the next Sync still empties those
// whose redirection is gone.
func (in *Installer) Forget() {
	for p := range in.installed {
		in.installed[p] = forgotten
	}
}

// forgotten marks an anchor whose contents are unknown: no AnchorRules
// text is empty or starts with a NUL.
const forgotten = "\x00forgotten"

// Sync brings every redirection's anchor in line with cfg and the hosts
// in up (UpHosts), and empties the anchors of redirections that were
// installed before but are no longer in cfg (a reload). It returns the
// paths it rewrote. On error the anchors before the failing one are
// installed and the failing one keeps its old rules; a later Sync retries
// it.
func (in *Installer) Sync(cfg *Config, up map[int]bool) ([]string, error) {
	if in.installed == nil {
		in.installed = map[string]string{}
	}
	want := map[string]string{}
	var order []string
	var warns []string
	for _, rd := range cfg.Redirects {
		text, err := AnchorRules(rd, up, RuleOptions{NoStateTimeout: true})
		if err != nil {
			return nil, err
		}
		if w := StateTimeoutWarning(rd); w != "" && ActiveTable(rd, up) != nil {
			warns = append(warns, w)
		}
		p := AnchorPath(rd.Name)
		want[p] = text
		order = append(order, p)
	}
	var gone []string
	for p := range in.installed {
		if _, ok := want[p]; !ok {
			want[p] = ""
			gone = append(gone, p)
		}
	}
	sort.Strings(gone)
	order = append(order, gone...)
	var done []string
	for _, p := range order {
		text := want[p]
		if old, ok := in.installed[p]; ok && old == text {
			continue
		}
		prog, err := CompileRules(p, text, in.Host)
		if err != nil {
			return done, err
		}
		if err := in.Loader.LoadAnchor(prog); err != nil {
			return done, fmt.Errorf("anchor %s: %w", p, err)
		}
		done = append(done, p)
		if text == "" {
			delete(in.installed, p)
		} else {
			in.installed[p] = text
		}
	}
	in.Warnings = warns
	return done, nil
}
