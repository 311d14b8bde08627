//go:build linux

package cli

import (
	"context"
	"flag"
	"fmt"
	"log"

	"github.com/pfcarp/pfcarp/lab"
)

// runLabBackend is `pfcarp lab backend`: the lab's web server, run by `lab
// up` inside each server node until SIGTERM/SIGINT or a kill.
func runLabBackend(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("lab backend", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	index := fs.Int("index", 0, "server number `N` (answers \"hi, this is No.N server\")")
	var listen multiFlag
	fs.Var(&listen, "listen", "`address` to listen on (repeatable; default :80)")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: pfcarp lab backend --index N [--listen ADDR]...")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *index < 1 {
		fs.Usage()
		return &ExitError{Code: 2, Err: fmt.Errorf("lab backend: --index %d: want 1 or more", *index)}
	}
	if len(listen) == 0 {
		listen = multiFlag{":80"}
	}
	logger := log.New(env.Stderr, fmt.Sprintf("backend No.%d: ", *index), log.LstdFlags)
	return lab.ServeBackend(ctx, *index, listen, logger, nil)
}
