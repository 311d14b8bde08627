package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"

	"github.com/pfcarp/pfcarp/daemon"
)

// newCleanupCmd is `pfcarp cleanup`: what systemd's ExecStopPost runs.
func newCleanupCmd() *command {
	return &command{
		name:  "cleanup",
		short: "remove the VIPs and tables a dead daemon left (-c rc.conf)",
		run: func(ctx context.Context, env *Env, args []string) error {
			fs := flag.NewFlagSet("cleanup", flag.ContinueOnError)
			fs.SetOutput(env.Stderr)
			cfg := fs.String("c", "/etc/pfcarp/rc.conf", "node config `file` (rc.conf style)")
			sock := fs.String("socket", "", "control socket `path` of the daemon (default as for run)")
			if err := fs.Parse(args); err != nil {
				if errors.Is(err, flag.ErrHelp) {
					return nil
				}
				return &ExitError{Code: 2}
			}
			if fs.NArg() > 0 {
				return &ExitError{Code: 2, Err: fmt.Errorf("cleanup: unexpected argument %q", fs.Arg(0))}
			}
			return daemon.Cleanup(*cfg, *sock, slog.New(slog.NewTextHandler(env.Stderr, nil)))
		},
	}
}
