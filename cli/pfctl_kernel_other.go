//go:build !linux

package cli

import (
	"errors"
	"runtime"

	"github.com/pfcarp/pfcarp/pfload"
)

var errNoKernel = errors.New("pfctl: loading and showing rulesets needs Linux nftables; this is " + runtime.GOOS)

func loadRuleset(env *Env, rs *pfload.Ruleset, k *kernelFlags, verbose int) error {
	return &ExitError{Code: 1, Err: errNoKernel}
}

func runKernelOps(env *Env, k *kernelFlags, args []string, verbose int) error {
	return &ExitError{Code: 1, Err: errNoKernel}
}
