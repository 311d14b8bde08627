package daemon

import (
	"fmt"

	"github.com/pfcarp/pfcarp/config"
	"github.com/pfcarp/pfcarp/netdb"
	"github.com/pfcarp/pfcarp/pfload"
)

// loadPF reads cfg's pf_rules as pfctl -f does (pfload.Load: the ruleset
// and the files of its load anchor statements, parsed, checked and
// expanded, interface names resolved as the node sees them, carpN to its
// virtual addresses) and has the system load them with their anchors in
// one transaction. A file that does not read or parse changes nothing and
// is an error naming the file and line.
func (d *Daemon) loadPF(cfg *config.Node) error {
	rs, err := pfload.Load(pfload.Input{Name: cfg.PF.RulesPath, Host: cfg.Host(netdb.System())})
	if err != nil {
		return fmt.Errorf("pf_rules: %w", err)
	}
	if cfg.Relayd.Enable && !hasRelaydAnchor(rs) {
		// relayd.8: the ruleset must call relayd's anchors for its
		// redirections to be evaluated at all.
		return fmt.Errorf("pf_rules: %s: relayd_enable is set but the ruleset has no anchor \"relayd/*\" or rdr-anchor \"relayd/*\": relayd's redirections would never be evaluated", cfg.PF.RulesPath)
	}
	if err := d.sys.LoadPF(cfg, rs); err != nil {
		return err
	}
	d.log.Info("pf rules loaded", "pf_rules", cfg.PF.RulesPath, "load_anchors", len(rs.Anchors))
	return nil
}
