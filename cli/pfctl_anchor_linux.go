package cli

import (
	"fmt"
	"sort"
	"strings"

	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/tc"
)

// install loads prog: the main ruleset (keeping anchors it does not
// define) with its queues, or one anchor.
func install(prog *nft.Program) error {
	if prog.Anchor != "" {
		return nft.Open().LoadAnchor(prog)
	}
	if err := nft.Open().Load(prog); err != nil {
		return err
	}
	return tc.Apply(prog.Queues) // the queues' qdiscs
}

// showAnchors prints the anchors under parent (the main ruleset when ""),
// as pfctl -s Anchors does: the children, and with -v all descendants,
// one "  PATH" line each. Parents of loaded anchors count as anchors, as
// pf creates them.
func showAnchors(env *Env, parent string, verbose int) error {
	paths, err := nft.Open().Anchors()
	if err != nil {
		return err
	}
	all := map[string]bool{}
	for _, p := range paths {
		for q := p; q != ""; {
			all[q] = true
			i := strings.LastIndexByte(q, '/')
			if i < 0 {
				break
			}
			q = q[:i]
		}
	}
	if parent != "" && !all[parent] {
		return fmt.Errorf("anchor %q does not exist", parent)
	}
	var out []string
	prefix := ""
	if parent != "" {
		prefix = parent + "/"
	}
	for p := range all {
		rest, ok := strings.CutPrefix(p, prefix)
		if !ok || rest == "" || (verbose == 0 && strings.Contains(rest, "/")) {
			continue
		}
		if verbose == 0 && strings.HasPrefix(rest, "_") {
			continue
		}
		out = append(out, p)
	}
	sort.Strings(out)
	for _, p := range out {
		fmt.Fprintf(env.Stdout, "  %s\n", p)
	}
	return nil
}
