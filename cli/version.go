package cli

import (
	"context"
	"fmt"
	"runtime/debug"
)

func newVersionCmd() *command {
	return &command{
		name:  "version",
		short: "print the version",
		run: func(ctx context.Context, env *Env, args []string) error {
			v := "(devel)"
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						v = s.Value
					}
				}
			}
			fmt.Fprintf(env.Stdout, "pfcarp %s\n", v)
			return nil
		},
	}
}
