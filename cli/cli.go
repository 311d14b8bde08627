// Package cli implements pfcarp's command line: the root command tree and one
// file per subcommand. It parses flags and prints results; the work itself is
// done by the packages it calls (pfconf, lab, ...). It holds no global state:
// every command receives an *Env with its input and output streams.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// Env is what a command runs with. Tests build one with buffers.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Dir is the working directory relative paths are resolved against;
	// empty means the process's.
	Dir string
}

// command is one subcommand of pfcarp.
type command struct {
	name  string
	short string // one line for the usage listing
	run   func(ctx context.Context, env *Env, args []string) error
}

// ExitError makes Run return a specific exit status. A nil Err means the
// command already reported the problem itself (as pfctl does on stderr).
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// newRootCmds builds the command tree. Each subcommand lives in its own file.
func newRootCmds() []*command {
	cmds := []*command{
		newPfctlCmd(),
		newCheckCmd(),
		newLabCmd(),
		newRunCmd(),
		newCleanupCmd(),
		newIfconfigCmd(),
		newRelayctlCmd(),
		newVersionCmd(),
	}
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].name < cmds[j].name })
	return cmds
}

// Main runs pfcarp with args (without the program name) on the process's
// standard streams and returns the exit status.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out := &stickyWriter{w: os.Stdout}
	env := &Env{Stdin: os.Stdin, Stdout: out, Stderr: os.Stderr}
	err := Run(ctx, env, args)
	if err == nil && out.err != nil {
		// Commands print with fmt.Fprintf and friends without checking
		// each write; the first failed one is reported here, so output
		// lost to a full disk or a closed pipe does not exit 0.
		err = fmt.Errorf("writing to standard output: %w", out.err)
	}
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintf(env.Stderr, "pfcarp: %v\n", ee.Err)
		}
		return ee.Code
	}
	fmt.Fprintf(env.Stderr, "pfcarp: %v\n", err)
	return 1
}

// stickyWriter keeps the first error of its writes and drops the writes
// after it (Main reports it).
type stickyWriter struct {
	w   io.Writer
	err error
}

func (s *stickyWriter) Write(b []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.w.Write(b)
	s.err = err
	return n, err
}

// Run dispatches args to a subcommand.
func Run(ctx context.Context, env *Env, args []string) error {
	cmds := newRootCmds()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env.Stdout, cmds)
		if len(args) == 0 {
			return &ExitError{Code: 2}
		}
		return nil
	}
	for _, c := range cmds {
		if c.name == args[0] {
			return c.run(ctx, env, args[1:])
		}
	}
	usage(env.Stderr, cmds)
	return &ExitError{Code: 2, Err: fmt.Errorf("unknown command %q", args[0])}
}

func usage(w io.Writer, cmds []*command) {
	var b strings.Builder
	b.WriteString("usage: pfcarp COMMAND [ARGS]\n\ncommands:\n")
	for _, c := range cmds {
		fmt.Fprintf(&b, "  %-10s %s\n", c.name, c.short)
	}
	io.WriteString(w, b.String())
}
