package cli

import (
	"context"
	"fmt"

	"github.com/pfcarp/pfcarp/internal/version"
)

func newVersionCmd() *command {
	return &command{
		name:  "version",
		short: "print the version",
		run: func(ctx context.Context, env *Env, args []string) error {
			fmt.Fprintf(env.Stdout, "pfcarp %s\n", version.String())
			return nil
		},
	}
}
