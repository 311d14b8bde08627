//go:build !linux

package cli

import (
	"context"
	"errors"
	"runtime"
)

// newLabCmd: the lab is built from Linux network namespaces.
func newLabCmd() *command {
	return &command{
		name:  "lab",
		short: "build and drive the test bed of network namespaces (Linux only)",
		run: func(ctx context.Context, env *Env, args []string) error {
			return &ExitError{Code: 1, Err: errors.New("lab: needs Linux network namespaces; this is " + runtime.GOOS)}
		},
	}
}
