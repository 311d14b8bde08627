// Command pfcarp is the pfcarp firewall and load balancer: CARP, pf and
// pfsync for Linux in one binary. See the README for the subcommands.
package main

import (
	"os"
	"path/filepath"

	"github.com/pfcarp/pfcarp/cli"
)

func main() {
	args := os.Args[1:]
	// Invoked through a link named pfctl, ifconfig or relayctl, behave as that
	// subcommand.
	switch filepath.Base(os.Args[0]) {
	case "pfctl", "ifconfig", "relayctl":
		args = append([]string{filepath.Base(os.Args[0])}, args...)
	}
	os.Exit(cli.Main(args))
}
