package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"
)

// kernelFlags are pfctl's flags that act on the loaded ruleset: -s, -F,
// -e, -d, -t/-T (and -f without -n, handled by loadRuleset). The parsing
// of everything else stays in pfctl.go.
type kernelFlags struct {
	show    *string
	flush   *string
	enable  *bool
	disable *bool
	table   *string
	tcmd    *string
	kill    *[]string // pfctl_states_linux.go
	anchor  *string   // -a: pfctl_anchor.go
}

func addKernelFlags(fs *pflag.FlagSet) *kernelFlags {
	return &kernelFlags{
		show:    fs.StringP("show", "s", "", "show rules|nat|info|tables|labels|all of the loaded ruleset"),
		flush:   fs.StringP("flush", "F", "", "flush rules|nat|states|Tables|all"),
		enable:  fs.BoolP("enable", "e", false, "enable pf"),
		disable: fs.BoolP("disable", "d", false, "disable pf"),
		table:   fs.StringP("table", "t", "", "table for -T"),
		tcmd:    fs.StringP("tcommand", "T", "", "table command: add|delete|show|flush|replace|test"),
		kill:    fs.StringArrayP("kill", "k", nil, "kill states from host (-k host -k host: from, to)"),
		anchor:  fs.StringP("anchor", "a", "", "load, show or flush anchor NAME instead of the main ruleset"),
	}
}

// any reports whether a kernel operation other than loading was asked for.
func (k *kernelFlags) any() bool {
	return *k.show != "" || *k.flush != "" || *k.enable || *k.disable || *k.table != "" || *k.tcmd != "" || len(*k.kill) > 0
}

// check validates the combination of flags and abbreviations as pfctl
// accepts them (-s r, -F a, -T sh ...).
func (k *kernelFlags) check() error {
	if *k.enable && *k.disable {
		return fmt.Errorf("-e and -d contradict each other")
	}
	if (*k.table == "") != (*k.tcmd == "") {
		return fmt.Errorf("-t and -T go together: pfctl -t TABLE -T add|delete|show|flush|replace|test [address ...]")
	}
	if err := checkAnchorName(*k.anchor, false); err != nil {
		return err
	}
	var err error
	if *k.show != "" {
		if *k.show, err = expandWord(*k.show, "show", []string{"rules", "nat", "info", "tables", "Tables", "labels", "all", "states", "Anchors"}); err != nil {
			return err
		}
		if *k.show == "Tables" {
			*k.show = "tables"
		}
	}
	if *k.flush != "" {
		if *k.flush, err = expandWord(*k.flush, "flush", []string{"rules", "nat", "states", "Tables", "all"}); err != nil {
			return err
		}
	}
	if *k.tcmd != "" {
		if *k.tcmd, err = expandWord(*k.tcmd, "table command", []string{"add", "delete", "show", "flush", "replace", "test"}); err != nil {
			return err
		}
	}
	return nil
}

// expandWord resolves an unambiguous prefix of one of words (pfctl
// accepts -s r, -s n, -F a, -T sh).
func expandWord(w, what string, words []string) (string, error) {
	var hits []string
	for _, x := range words {
		if x == w {
			return x, nil
		}
		if strings.HasPrefix(x, w) {
			hits = append(hits, x)
		}
	}
	if len(hits) == 1 {
		return hits[0], nil
	}
	return "", fmt.Errorf("unknown or ambiguous %s modifier %q (%s)", what, w, strings.Join(words, ", "))
}
