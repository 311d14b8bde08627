package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/pfcarp/pfcarp/pfconf"
	"github.com/pfcarp/pfcarp/pfload"
)

// writeLoadAnchors writes what pfctl_load_anchors writes for the anchors
// pfload.Load read (also under -n): with -v, "Loading anchor PATH from
// FILE" on stderr and the anchor's ruleset on stdout, each in turn; then the
// error that ended the load, if any. It returns false on an error.
func writeLoadAnchors(env *Env, l *pfload.Ruleset, err error, read func(string) ([]byte, error), verbose int) bool {
	loading := func(a *pfload.Anchor) {
		if verbose > 0 {
			fmt.Fprintf(env.Stderr, "\nLoading anchor %s from %s\n", a.Path, a.File)
		}
	}
	for _, a := range l.Anchors {
		loading(a)
		if verbose > 0 {
			if err := a.Rules.Print(env.Stdout, verbose); err != nil {
				fmt.Fprintf(env.Stderr, "pfctl: %v\n", err)
				return false
			}
		}
	}
	var ae *pfload.AnchorError
	var el *pfconf.ErrorList
	switch {
	case err == nil:
		return true
	case errors.Is(err, pfload.ErrTooManyAnchors):
		fmt.Fprintf(env.Stderr, "pfctl: %v\n", pfload.ErrTooManyAnchors)
	case errors.As(err, &ae) && errors.As(ae.Err, &el):
		loading(ae.Anchor)
		writeErrors(env.Stderr, el, ae.Anchor.File, ae.Anchor.Src, read)
	case errors.As(err, &ae):
		loading(ae.Anchor)
		fmt.Fprintf(env.Stderr, "%v\n", ae)
	default:
		fmt.Fprintf(env.Stderr, "pfctl: %v\n", err)
	}
	return false
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
