package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/pfcarp/pfcarp/compile"
	"github.com/pfcarp/pfcarp/pfconf"
	"github.com/pfcarp/pfcarp/pfload"
	"github.com/pfcarp/pfcarp/tc"
)

// loadRuleset compiles rs with the anchors of its "load anchor" statements
// (-a: into that anchor) and loads them into the kernel in one transaction
// (pfctl -f FILE), then runs the other kernel operations asked for (-e,
// -s ...). A refusal names the rule, its line and the reason, and nothing
// is changed.
func loadRuleset(env *Env, rs *pfload.Ruleset, k *kernelFlags, verbose int) error {
	prog, err := compile.CompileLoad(rs, compile.Options{Queues: tc.Kernel})
	if err != nil {
		var el *pfconf.ErrorList
		if errors.As(err, &el) {
			io.WriteString(env.Stderr, el.PfctlString())
		} else {
			fmt.Fprintf(env.Stderr, "pfctl: %v\n", err)
		}
		io.WriteString(env.Stderr, "pfctl: the kernel cannot enforce this ruleset: pf rules not loaded\n")
		return &ExitError{Code: 1}
	}
	for _, w := range prog.Warnings {
		fmt.Fprintf(env.Stderr, "pfctl: warning: %s\n", w)
	}
	if verbose >= 3 {
		io.WriteString(env.Stdout, prog.String())
	}
	if err := install(prog); err != nil {
		fmt.Fprintf(env.Stderr, "pfctl: %v\n", err)
		io.WriteString(env.Stderr, "pfctl: pf rules not loaded\n")
		return &ExitError{Code: 1}
	}
	if k.any() {
		return runKernelOps(env, k, nil, verbose)
	}
	return nil
}
