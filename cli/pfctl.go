package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/pflag"

	"github.com/pfcarp/pfcarp/config"
	"github.com/pfcarp/pfcarp/netdb"
	"github.com/pfcarp/pfcarp/pfconf"
	"github.com/pfcarp/pfcarp/pfload"
)

// newPfctlCmd is pfcarp's pfctl: for now it checks and prints rulesets
// ("pfctl -nvf pf.conf"); loading into the kernel comes with the compiler.
func newPfctlCmd() *command {
	return &command{
		name:  "pfctl",
		short: "control pf: check and print rulesets (pfctl -nvf FILE)",
		run: func(ctx context.Context, env *Env, args []string) error {
			return runPfctl(env, args, netdb.System())
		},
	}
}

// pfctlUsage is printed on flag errors, as pfctl's usage().
const pfctlUsage = `usage: pfctl [-nqv] [-D macro=value] [-f file] [-o level]
`

// runPfctl runs pfctl with args; host answers interface, host-name and
// user lookups (the running system in production, a fixture in tests).
func runPfctl(env *Env, args []string, host netdb.Host) error {
	fs := pflag.NewFlagSet("pfctl", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	noAction := fs.BoolP("noaction", "n", false, "parse and print, do not load")
	verbose := fs.CountP("verbose", "v", "print the ruleset (-vv: with rule numbers)")
	file := fs.StringP("file", "f", "", "ruleset file (- for standard input)")
	optimize := fs.StringP("optimize", "o", "", "ruleset optimizer level: none, basic or profile")
	quiet := fs.BoolP("quiet", "q", false, "print only errors")
	defines := fs.StringArrayP("define", "D", nil, "define macro=value")
	node := fs.String("node", os.Getenv("PFCARP_CONFIG"), "resolve interfaces as the node of this rc.conf sees them (carpN to its VIPs; interfaces this host lacks to the config's addresses); default $PFCARP_CONFIG")
	kf := addKernelFlags(fs) // -s -F -e -d -t -T: pfctl_kernel.go
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			io.WriteString(env.Stdout, pfctlUsage)
			fs.SetOutput(env.Stdout)
			fs.PrintDefaults()
			return nil
		}
		fmt.Fprintf(env.Stderr, "pfctl: %v\n", err)
		io.WriteString(env.Stderr, pfctlUsage)
		return &ExitError{Code: 1}
	}
	if fs.NArg() > 0 && *kf.tcmd == "" {
		fmt.Fprintf(env.Stderr, "pfctl: unexpected argument %q\n", fs.Arg(0))
		io.WriteString(env.Stderr, pfctlUsage)
		return &ExitError{Code: 1}
	}
	switch *optimize {
	case "", "none":
	case "basic", "profile":
		if !*quiet {
			fmt.Fprintf(env.Stderr, "pfctl: the ruleset optimizer (-o %s) is not implemented; rules are printed unoptimized\n", *optimize)
		}
	default:
		fmt.Fprintf(env.Stderr, "pfctl: unknown optimization level %q (none, basic or profile)\n", *optimize)
		return &ExitError{Code: 1}
	}
	if err := kf.check(); err != nil {
		fmt.Fprintf(env.Stderr, "pfctl: %v\n", err)
		return &ExitError{Code: 1}
	}
	if *file == "" && kf.any() {
		return runKernelOps(env, kf, fs.Args(), *verbose)
	}
	if *file == "" {
		io.WriteString(env.Stderr, "pfctl: no ruleset file given (-f FILE); only -nf is supported so far\n")
		io.WriteString(env.Stderr, pfctlUsage)
		return &ExitError{Code: 1}
	}

	read := func(p string) ([]byte, error) {
		if env.Dir != "" && !filepath.IsAbs(p) {
			p = filepath.Join(env.Dir, p)
		}
		return os.ReadFile(p)
	}
	name := *file
	var src []byte
	var err error
	if name == "-" {
		name = "stdin"
		src, err = io.ReadAll(env.Stdin)
	} else {
		src, err = read(name)
	}
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		fmt.Fprintf(env.Stderr, "pfctl: %s: %v\n", name, err)
		return &ExitError{Code: 1}
	}

	if *node != "" {
		n, diags := config.LoadFile(env.path(*node), nil)
		if err := diags.Err(); err != nil {
			fmt.Fprintf(env.Stderr, "pfctl: --node: %v\n", err)
			return &ExitError{Code: 1}
		}
		host = n.Host(host)
	}
	if src == nil {
		src = []byte{} // read: Load must not read the file again
	}
	loaded, err := pfload.Load(pfload.Input{Name: name, Src: src, ReadFile: read, Host: host, Defines: *defines, Anchor: *kf.anchor})
	var ae *pfload.AnchorError
	if err != nil && !errors.As(err, &ae) && !errors.Is(err, pfload.ErrTooManyAnchors) {
		var errs *pfconf.ErrorList
		if !errors.As(err, &errs) {
			errs = &pfconf.ErrorList{}
			errs.Add(pfconf.Position{Filename: name}, err.Error())
		}
		writeErrors(env.Stderr, errs, name, src, read)
		if *node == "" && missingInterface(errs) {
			io.WriteString(env.Stderr, "pfctl: an interface named in the ruleset has no address on this host; "+
				"on Linux carpN exists only in the node config: give it with --node rc.conf (or PFCARP_CONFIG)\n")
		}
		if !*noAction {
			io.WriteString(env.Stderr, "pfctl: Syntax error in config file: pf rules not loaded\n")
		}
		return &ExitError{Code: 1}
	}
	if *verbose > 0 {
		if err := loaded.Rules.Print(env.Stdout, *verbose); err != nil {
			return &ExitError{Code: 1, Err: err}
		}
	}
	if !writeLoadAnchors(env, loaded, err, read, *verbose) { // pfctl_anchor.go
		io.WriteString(env.Stderr, "pfctl: load anchors\n")
		return &ExitError{Code: 1}
	}
	if !*noAction {
		return loadRuleset(env, loaded, kf, *verbose) // pfctl_load_linux.go
	}
	return nil
}

// writeErrors prints each error in pfctl's form (FILE:LINE: message), then,
// where the error has a column, the source line with a caret under it: pfctl
// users keep the line they know, and see where on it the problem is.
func writeErrors(w io.Writer, errs *pfconf.ErrorList, name string, src []byte, read func(string) ([]byte, error)) {
	files := map[string][]byte{name: src}
	var b strings.Builder
	for _, e := range errs.List {
		b.WriteString(e.PfctlString())
		b.WriteByte('\n')
		p := e.Pos
		if p.Column <= 0 || p.Line <= 0 {
			continue
		}
		text, ok := files[p.Filename]
		if !ok {
			text, _ = read(p.Filename) // an unreadable file just gets no context
			files[p.Filename] = text
		}
		lines := strings.Split(string(text), "\n")
		if p.Line > len(lines) {
			continue
		}
		line := strings.TrimRight(lines[p.Line-1], "\r")
		if strings.TrimSpace(line) == "" || p.Column > len(line)+1 || len(line) > 200 {
			continue
		}
		// Keep tabs under tabs so the caret lines up.
		pad := []byte(line[:p.Column-1])
		for i, c := range pad {
			if c != '\t' {
				pad[i] = ' '
			}
		}
		fmt.Fprintf(&b, "\t%s\n\t%s^\n", line, pad)
	}
	if errs.Dropped > 0 {
		fmt.Fprintf(&b, "(%d more errors not shown)\n", errs.Dropped)
	}
	io.WriteString(w, b.String())
}

// ifaceName matches what pfctl takes for an interface name (not a host
// name): letters, digits and underscores, ending in a digit.
var ifaceName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*[0-9]$`)

// missingInterface reports whether errors include an interface lookup that
// failed, for which the --node hint helps.
func missingInterface(errs *pfconf.ErrorList) bool {
	for _, e := range errs.List {
		if ifaceName.MatchString(e.NoAddress) {
			return true
		}
	}
	return false
}
