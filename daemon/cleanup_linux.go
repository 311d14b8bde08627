package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/pfcarp/pfcarp/vip"
)

// Cleanup undoes what a daemon that died left on the machine: the virtual
// addresses of the node config at cfgPath and the daemon's tables. The
// guard already keeps the addresses from answering; Cleanup takes them off
// so nothing else on the host uses them. It refuses while a daemon answers
// on the control socket (systemd's ExecStopPost runs it after every stop).
// pf's ruleset stays loaded, as pf's does.
func Cleanup(cfgPath, socket string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg, err := loadConfig(cfgPath, log)
	if err != nil {
		return err
	}
	if socket == "" {
		socket = cfg.ControlSocket
	}
	if socket == "" {
		socket = SocketPath()
	}
	if c, err := net.DialTimeout("unix", socket, 200*time.Millisecond); err == nil {
		_ = c.Close() // only the connect was the question
		return fmt.Errorf("a pfcarp daemon answers on %s: not cleaning up under it", socket)
	}
	var errs []error
	for parent, ps := range vipsByParent(cfg) {
		if err := vip.NewOwner(parent, log).Remove(ps); err != nil {
			errs = append(errs, err)
		} else {
			log.Info("virtual addresses removed", "if", parent, "vips", prefixList(ps))
		}
	}
	errs = append(errs, removeHA())
	return errors.Join(errs...)
}
