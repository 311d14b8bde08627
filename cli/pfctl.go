package cli

import (
	"context"
	"errors"
)

// newPfctlCmd is pfcarp's pfctl. Placeholder until the pf.conf language lands.
func newPfctlCmd() *command {
	return &command{
		name:  "pfctl",
		short: "control pf: load, check and show rulesets (pfctl's flags)",
		run: func(ctx context.Context, env *Env, args []string) error {
			return &ExitError{Code: 1, Err: errors.New("pfctl: not implemented yet")}
		},
	}
}
