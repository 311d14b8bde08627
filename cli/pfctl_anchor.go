package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/pfcarp/pfcarp/netdb"
	"github.com/pfcarp/pfcarp/pfconf"
)

// loadedAnchor is one "load anchor NAME from FILE" of the ruleset being
// loaded, parsed.
type loadedAnchor struct {
	path, file string
	rs         *pfconf.Ruleset
}

// maxLoadAnchors bounds the "load anchor" statements one load follows
// (they may load files that load files).
const maxLoadAnchors = 256

// readLoadAnchors parses the files of rs's "load anchor" statements as
// pfctl_load_anchors does after the ruleset (also under -n): with -v it
// writes "Loading anchor NAME from FILE" to stderr and prints each
// anchor's ruleset. base is the anchor rs is loaded into ("" for the main
// ruleset); names are relative to it. It reports the errors itself and
// returns false on any.
func readLoadAnchors(env *Env, rs *pfconf.Ruleset, base string, read func(string) ([]byte, error), host netdb.Host, defines []string, verbose int) ([]loadedAnchor, bool) {
	type todo struct {
		base string
		l    pfconf.LoadAnchor
	}
	var queue []todo
	for _, l := range rs.Loads {
		queue = append(queue, todo{base, l})
	}
	var out []loadedAnchor
	for len(queue) > 0 {
		q := queue[0]
		queue = queue[1:]
		if len(out) >= maxLoadAnchors {
			fmt.Fprintf(env.Stderr, "pfctl: more than %d load anchor statements\n", maxLoadAnchors)
			return nil, false
		}
		path := q.l.Name
		if q.base != "" {
			path = q.base + "/" + path
		}
		if verbose > 0 {
			fmt.Fprintf(env.Stderr, "\nLoading anchor %s from %s\n", path, q.l.File)
		}
		src, err := read(q.l.File)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			pos := rs.Sources.Position(q.l.Pos)
			fmt.Fprintf(env.Stderr, "%s: cannot load anchor %s from %s: %v\n", pos, path, q.l.File, err)
			return nil, false
		}
		ars, ok := parseAnchorFile(env, q.l.File, src, read, host, defines)
		if !ok {
			return nil, false
		}
		if verbose > 0 {
			if err := ars.Print(env.Stdout, verbose); err != nil {
				fmt.Fprintf(env.Stderr, "pfctl: %v\n", err)
				return nil, false
			}
		}
		out = append(out, loadedAnchor{path: path, file: q.l.File, rs: ars})
		for _, l := range ars.Loads {
			queue = append(queue, todo{path, l})
		}
	}
	return out, true
}

// parseAnchorFile parses and expands a ruleset loaded into an anchor,
// where set options are refused as pfctl refuses them.
func parseAnchorFile(env *Env, name string, src []byte, read func(string) ([]byte, error), host netdb.Host, defines []string) (*pfconf.Ruleset, bool) {
	f, perr := pfconf.Parse(name, src, pfconf.ParseOptions{ReadFile: read, Defines: defines})
	rs, eerr := pfconf.Expand(f, host)
	var errs pfconf.ErrorList
	for _, e := range []error{perr, eerr} {
		var el *pfconf.ErrorList
		if errors.As(e, &el) {
			errs.List = append(errs.List, el.List...)
			errs.Dropped += el.Dropped
		}
	}
	if rs != nil {
		anchorOptionErrors(rs, &errs)
	}
	if errs.Len() > 0 {
		writeErrors(env.Stderr, &errs, name, src, read)
		return nil, false
	}
	return rs, true
}

// anchorOptionErrors adds an error for each set option of a ruleset
// loaded into an anchor (parse.y: "set options are not allowed within
// anchors").
func anchorOptionErrors(rs *pfconf.Ruleset, errs *pfconf.ErrorList) {
	for _, d := range rs.Decls {
		if o, ok := d.(*pfconf.OptionDecl); ok {
			errs.Add(rs.Sources.Position(o.Pos), "set options are not allowed within anchors")
		}
	}
	errs.Sort()
}

// checkAnchorName validates pfctl's -a argument for loading and flushing.
func checkAnchorName(name string, wildcardOK bool) error {
	switch {
	case name == "":
		return nil
	case strings.HasPrefix(name, "_") || strings.Contains(name, "/_"):
		return fmt.Errorf("anchor names beginning with '_' are reserved for internal use")
	case !wildcardOK && strings.HasSuffix(name, "*"):
		return fmt.Errorf("wildcard anchor %q: give one anchor", name)
	case strings.Contains(name, ":") || strings.HasSuffix(name, "/") || strings.Contains(name, "//"):
		return fmt.Errorf("anchor name %q is not valid", name)
	}
	return nil
}
