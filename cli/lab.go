package cli

import (
	"context"
	"errors"
)

// newLabCmd is the network-namespace test bed. Placeholder until the lab lands.
func newLabCmd() *command {
	return &command{
		name:  "lab",
		short: "build and drive the test bed of network namespaces",
		run: func(ctx context.Context, env *Env, args []string) error {
			return &ExitError{Code: 1, Err: errors.New("lab: not implemented yet")}
		},
	}
}
