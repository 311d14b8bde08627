package daemon

import (
	"log/slog"

	sd "github.com/coreos/go-systemd/v22/daemon"
)

// systemd notifications (sd_notify(3)); without $NOTIFY_SOCKET they are
// not sent.
const (
	sdReady     = sd.SdNotifyReady
	sdReloading = sd.SdNotifyReloading
	sdStopping  = sd.SdNotifyStopping
	sdWatchdog  = sd.SdNotifyWatchdog
)

func notify(log *slog.Logger, state string) {
	if _, err := sd.SdNotify(false, state); err != nil {
		log.Warn("sd_notify", "state", state, "err", err)
	}
}
