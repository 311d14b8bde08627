package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/pfcarp/pfcarp/daemon"
	"github.com/pfcarp/pfcarp/pfsync"
)

// daemonPfsync asks the daemon on sock (daemon.SocketPath: $PFCARP_SOCKET,
// else the default) for its pfsync status; nil when no daemon answers
// within a moment or pfsync is off there.
func daemonPfsync(ctx context.Context, sock string) *pfsync.Status {
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	var st daemon.Status
	if err := daemon.NewClient(sock).Get(ctx, "/v1/status", &st); err != nil {
		return nil
	}
	return st.Pfsync
}

// printPfsyncInfo is the pfsync part of `pfctl -s info`, in pfctl's
// counter layout: pfsync's counters live in the daemon, not the kernel.
func printPfsyncInfo(w io.Writer, st *pfsync.Status) {
	fmt.Fprintf(w, "Pfsync (syncdev %s, syncpeer %s)   Total\n", orNone(st.SyncDev), st.SyncPeer)
	var dropped uint64
	for _, n := range st.Dropped {
		dropped += n
	}
	for _, c := range []struct {
		name string
		n    uint64
	}{
		{"states", uint64(st.States)},
		{"messages sent", st.Sent},
		{"messages received", st.Received},
		{"states sent", st.StatesSent},
		{"states received", st.StatesReceived},
		{"deletes sent", st.DeletesSent},
		{"deletes received", st.DeletesRecv},
		{"sticky sent", st.StickySent},
		{"sticky received", st.StickyRecv},
		{"messages dropped", dropped},
		{"send errors", st.SendErrors},
		{"inject errors", st.InjectErrors},
		{"bulk updates done", st.BulkDone},
		{"bulk updates failed", st.BulkFailed},
		{"bulk requests served", st.BulkServed},
	} {
		fmt.Fprintf(w, "  %-25s %14d\n", c.name, c.n)
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
