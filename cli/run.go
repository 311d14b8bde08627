package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/pfcarp/pfcarp/daemon"
)

// newRunCmd is `pfcarp run`: the daemon.
func newRunCmd() *command {
	return &command{
		name:  "run",
		short: "run the daemon for one node (-c rc.conf)",
		run:   runDaemon,
	}
}

func runDaemon(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	cfg := fs.String("c", "/etc/pfcarp/rc.conf", "node config `file` (rc.conf style)")
	sock := fs.String("socket", "", "control socket `path` (default: config's pfcarp_control_socket, $PFCARP_SOCKET, "+daemon.DefaultSocket+")")
	level := fs.String("log-level", "info", "log `level`: debug, info, warn, error")
	format := fs.String("log-format", "text", "log `format`: text or json")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &ExitError{Code: 2}
	}
	if fs.NArg() > 0 {
		return &ExitError{Code: 2, Err: fmt.Errorf("run: unexpected argument %q", fs.Arg(0))}
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return &ExitError{Code: 2, Err: fmt.Errorf("run: -log-level: %v", err)}
	}
	hopts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	switch *format {
	case "text":
		h = slog.NewTextHandler(env.Stderr, hopts)
	case "json":
		h = slog.NewJSONHandler(env.Stderr, hopts)
	default:
		return &ExitError{Code: 2, Err: fmt.Errorf("run: -log-format must be text or json, not %q", *format)}
	}
	// SIGHUP reloads, as `service pf reload` does; SIGTERM and SIGINT
	// end ctx (Main).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
			case <-ctx.Done():
				return
			}
			select {
			case reload <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return daemon.Run(ctx, daemon.Options{ConfigPath: *cfg, Socket: *sock, Logger: slog.New(h)}, reload)
}
