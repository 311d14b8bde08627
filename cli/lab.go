//go:build linux

package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/pfcarp/pfcarp/lab"
)

// newLabCmd is `pfcarp lab`: the network-namespace test bed (package lab).
func newLabCmd() *command {
	return &command{
		name:  "lab",
		short: "build and drive the test bed of network namespaces",
		run:   runLab,
	}
}

// labSub is one `pfcarp lab` subcommand.
type labSub struct {
	name, usage string
	run         func(ctx context.Context, env *Env, args []string) error
}

func labSubs() []labSub {
	return []labSub{
		{"up", "up [--backends N] [--seed] [--no-daemons] [--daemon-config NODE=FILE]... [--dir DIR]", runLabUp},
		{"down", "down [--dir DIR]", runLabDown},
		{"status", "status [--json] [--dir DIR]", runLabStatus},
		{"exec", "exec [--dir DIR] NODE -- CMD [ARG]...", runLabExec},
		{"fault", "fault NODE link-down|link-up IFACE | NODE kill|start | NODE isolate|heal | sync cut|heal", runLabFault},
		{"demo", "demo [--backends N] [--dir DIR]", runLabDemo},
		{"bench", "bench [--quick] [--runs N] [--only STEP]... [--markdown FILE] [--deps SCRIPT] [--timeout D] [--dir DIR] [--prefix P]", runLabBench},
		{"backend", "backend --index N [--listen ADDR]...  (run by the lab inside server nodes)", runLabBackend},
	}
}

func labUsage(w io.Writer) {
	var b strings.Builder
	b.WriteString("usage: pfcarp lab COMMAND [ARGS]\n\ncommands:\n")
	for _, s := range labSubs() {
		fmt.Fprintf(&b, "  %s\n", s.usage)
	}
	io.WriteString(w, b.String())
}

func runLab(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		labUsage(env.Stdout)
		if len(args) == 0 {
			return &ExitError{Code: 2}
		}
		return nil
	}
	for _, s := range labSubs() {
		if s.name == args[0] {
			return s.run(ctx, env, args[1:])
		}
	}
	labUsage(env.Stderr)
	return &ExitError{Code: 2, Err: fmt.Errorf("lab: unknown command %q", args[0])}
}

// labFlags is a flag set with the usage line of one lab subcommand.
func labFlags(env *Env, name string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("lab "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	dir := fs.String("dir", lab.DefaultDir, "lab `directory` (state, logs, sockets)")
	for _, s := range labSubs() {
		if s.name == name {
			u := s.usage
			fs.Usage = func() {
				fmt.Fprintf(env.Stderr, "usage: pfcarp lab %s\n", u)
				fs.PrintDefaults()
			}
		}
	}
	return fs, dir
}

// parseFlags parses args, turning flag errors into exit status 2.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &ExitError{Code: 0}
		}
		return &ExitError{Code: 2}
	}
	return nil
}

// noArgs rejects stray positional arguments.
func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		fs.Usage()
		return &ExitError{Code: 2, Err: fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	return nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func (e *Env) path(name string) string {
	if e.Dir != "" && !filepath.IsAbs(name) {
		return filepath.Join(e.Dir, name)
	}
	return name
}

func runLabUp(ctx context.Context, env *Env, args []string) error {
	fs, dir := labFlags(env, "up")
	backends := fs.Int("backends", lab.DefaultBackends, fmt.Sprintf("number of web servers s1..sN (1..%d)", lab.MaxBackends))
	seed := fs.Bool("seed", false, "use the seed's exact addresses (192.168.1.0/24, 192.168.10.0/24, 10.10.10.0/24)")
	var daemonConfigs multiFlag
	fs.Var(&daemonConfigs, "daemon-config", "run `NODE=FILE`: copy FILE to NODE's lab directory as pfcarp.conf and start `pfcarp run -c` on it there, instead of the seed's config for lb1/lb2 (repeatable)")
	noDaemons := fs.Bool("no-daemons", false, "do not start lb1's and lb2's daemons on the seed's configs (examples/seed, built in)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	opts := lab.Options{Dir: *dir, Seed: *seed, Backends: *backends, Logf: func(f string, a ...any) {
		fmt.Fprintf(env.Stderr, "lab up: "+f+"\n", a...)
	}}
	if *noDaemons && len(daemonConfigs) > 0 {
		return &ExitError{Code: 2, Err: errors.New("lab up: --no-daemons and --daemon-config contradict each other")}
	}
	for _, dc := range daemonConfigs {
		node, file, ok := strings.Cut(dc, "=")
		if !ok || node == "" || file == "" {
			return &ExitError{Code: 2, Err: fmt.Errorf("lab up: --daemon-config %q: want NODE=FILE", dc)}
		}
		b, err := os.ReadFile(env.path(file))
		if err != nil {
			return fmt.Errorf("lab up: --daemon-config: %w", err)
		}
		if opts.Daemons == nil {
			opts.Daemons, opts.NodeFiles = map[string][]string{}, map[string]map[string][]byte{}
		}
		opts.Daemons[node] = lab.DefaultDaemon()
		opts.NodeFiles[node] = map[string][]byte{"pfcarp.conf": b}
		opts.StartDaemons = true
	}
	if *backends < 1 || *backends > lab.MaxBackends {
		return &ExitError{Code: 2, Err: fmt.Errorf("lab up: --backends %d: want 1..%d", *backends, lab.MaxBackends)}
	}
	if !*noDaemons {
		// The seed cluster on lb1 and lb2; a --daemon-config node keeps
		// its own config (and its pfcarp.conf wins over the seed's).
		var err error
		if opts, err = lab.WithCluster(opts); err != nil {
			return fmt.Errorf("lab up: %w", err)
		}
	}
	l, err := lab.Up(ctx, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "lab is up in %s: %d nodes; `pfcarp lab status` shows them, `pfcarp lab down` removes them\n", l.Dir(), len(l.Plan().Nodes))
	return nil
}

func runLabDown(ctx context.Context, env *Env, args []string) error {
	fs, dir := labFlags(env, "down")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	t0 := time.Now()
	if err := lab.Cleanup(*dir, "", func(f string, a ...any) { fmt.Fprintf(env.Stderr, "lab down: "+f+"\n", a...) }); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "lab is down (%v)\n", time.Since(t0).Round(time.Millisecond))
	return nil
}

// openLab opens the running lab for a command that needs root.
func openLab(dir string) (*lab.Lab, error) {
	if err := lab.CheckRoot(); err != nil {
		return nil, err
	}
	return lab.Open(dir)
}

func runLabStatus(ctx context.Context, env *Env, args []string) error {
	fs, dir := labFlags(env, "status")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	l, err := openLab(*dir)
	if err != nil {
		return fmt.Errorf("lab status: %w", err)
	}
	st := l.Status()
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	return st.WriteText(env.Stdout)
}

func runLabExec(ctx context.Context, env *Env, args []string) error {
	fs, dir := labFlags(env, "exec")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) < 3 || rest[1] != "--" {
		fs.Usage()
		return &ExitError{Code: 2, Err: errors.New("lab exec: want NODE -- CMD [ARG...]")}
	}
	node, argv := rest[0], rest[2:]
	l, err := openLab(*dir)
	if err != nil {
		return fmt.Errorf("lab exec: %w", err)
	}
	// Not tied to ctx: an interrupt at the terminal reaches the command
	// itself, as with any foreground program.
	cmd, err := l.Command(context.Background(), node, argv...)
	if err != nil {
		return fmt.Errorf("lab exec: %w", err)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = env.Stdin, env.Stdout, env.Stderr
	cmd.Dir = env.Dir
	err = l.Run(node, cmd)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code := ee.ExitCode()
		if code < 0 {
			code = 128 + 9 // killed by a signal
		}
		return &ExitError{Code: code}
	}
	if err != nil {
		return fmt.Errorf("lab exec: %w", err)
	}
	return nil
}
