package daemon

import (
	"errors"
	"fmt"
	"os"

	"github.com/pfcarp/pfcarp/compile"
	"github.com/pfcarp/pfcarp/netdb"
	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/pfconf"
	"github.com/pfcarp/pfcarp/pflog"
)

// defaultPflogFile is FreeBSD's pflogd default.
const defaultPflogFile = "/var/log/pflog"

// loadPF loads pf_rules into the kernel in one transaction, as rc.d/pf does
// at boot with pf_enable="YES". Interface names resolve as the node sees
// them (carpN to its virtual addresses). A ruleset that fails to parse, or
// that the kernel cannot enforce, changes nothing and is an error that names
// the rules and their lines. The rules stay in the kernel when the daemon
// exits, as pf's do: the kernel is the data plane.
func (d *daemon) loadPF() error {
	path := d.cfg.PF.RulesPath
	src, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("pf_rules: %w", err)
	}
	f, perr := pfconf.Parse(path, src, pfconf.ParseOptions{ReadFile: os.ReadFile})
	host := d.cfg.Host(netdb.System())
	rs, eerr := pfconf.Expand(f, host)
	if err := errors.Join(perr, eerr); err != nil {
		return fmt.Errorf("pf_rules: %w", err)
	}
	prog, err := compile.Compile(rs, compile.Options{RuleText: compile.RuleTexts(rs)})
	if err != nil {
		return fmt.Errorf("pf_rules: the kernel cannot enforce this ruleset, nothing loaded: %w", err)
	}
	for _, w := range prog.Warnings {
		d.log.Warn("pf rule loaded with a difference from pf", "pf_rules", path, "warning", w)
	}
	// (if) sets are filled with the interfaces' addresses as the node sees
	// them (carpN: its virtual addresses).
	if err := nft.Open(nft.WithHost(host)).Load(prog); err != nil {
		return fmt.Errorf("pf_rules: %w", err)
	}
	d.log.Info("pf rules loaded", "pf_rules", path)
	return nil
}

// startPflog writes packets of `log` rules to pflog_logfile.
func (d *daemon) startPflog() (*pflog.Logger, error) {
	path := d.cfg.Pflog.Logfile
	if path == "" {
		path = defaultPflogFile
	}
	l, err := pflog.Open(path, compile.DefaultLogGroup, pflog.Config{
		Logf: func(format string, args ...any) { d.log.Warn("pflog: " + fmt.Sprintf(format, args...)) },
	})
	if err != nil {
		return nil, fmt.Errorf("pflog_logfile: %w", err)
	}
	d.log.Info("pflog running", "file", path, "nflog_group", compile.DefaultLogGroup)
	return l, nil
}
