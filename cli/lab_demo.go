//go:build linux

package cli

import (
	"context"
	"fmt"

	"github.com/pfcarp/pfcarp/lab"
)

// runLabDemo is `pfcarp lab demo`: the README's demonstration of the seed
// cluster; it always tears the lab down, also on failure or interrupt.
func runLabDemo(ctx context.Context, env *Env, args []string) error {
	fs, dir := labFlags(env, "demo")
	backends := fs.Int("backends", lab.DefaultBackends, fmt.Sprintf("number of web servers (1..%d)", lab.MaxBackends))
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *backends < 1 || *backends > lab.MaxBackends {
		return &ExitError{Code: 2, Err: fmt.Errorf("lab demo: --backends %d: want 1..%d", *backends, lab.MaxBackends)}
	}
	d := &lab.Demo{Opts: lab.Options{Dir: *dir, Backends: *backends}, Out: env.Stdout}
	return d.Run(ctx)
}
