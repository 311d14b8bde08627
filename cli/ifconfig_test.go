package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pfcarp/pfcarp/daemon"
	"github.com/pfcarp/pfcarp/pfsync"
)

// fakeDaemon serves st as GET /v1/status on a unix socket in a temporary
// directory and returns the socket's path.
func fakeDaemon(t *testing.T, st daemon.Status) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "pfcarp.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(st)
	})}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return sock
}

func ifconfigRun(t *testing.T, sock string, args ...string) (string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := runIfconfig(context.Background(), &Env{Stdout: &out, Stderr: &errb}, append([]string{"--socket", sock}, args...))
	if err != nil {
		var ee *ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("ifconfig %v: %v", args, err)
		}
		return out.String() + errb.String() + ee.Error(), ee.Code
	}
	return out.String(), 0
}

func TestIfconfigPfsync0(t *testing.T) {
	ps := &pfsync.Status{SyncDev: "eth2", SyncPeer: pfsync.Group4, MaxUpd: 128, Auth: true, States: 201,
		Sent: 40, Received: 12, StatesSent: 300, StickySent: 3, Bulk: "idle", BulkServed: 1, StickyBindings: 3,
		Dropped: map[string]uint64{"auth": 2}}
	st := daemon.Status{PID: 7, CARP: []daemon.CARPStatus{{Name: "carp0", Parent: "eth0", VHID: 1, State: "MASTER",
		AdvBase: 1, AdvSkew: 10, Skew: 10, VIPs: []netip.Prefix{netip.MustParsePrefix("192.168.1.51/24")}}}, Pfsync: ps}
	sock := fakeDaemon(t, st)

	all, code := ifconfigRun(t, sock)
	if code != 0 {
		t.Fatalf("ifconfig: %d %s", code, all)
	}
	carpAt := strings.Index(all, "carp: MASTER vhid 1 advbase 1 advskew 10")
	syncAt := strings.Index(all, "pfsync: syncdev: eth2 syncpeer: 224.0.0.240 maxupd: 128")
	if carpAt < 0 || syncAt < carpAt {
		t.Errorf("ifconfig without an argument: want the carp groups, then pfsync0:\n%s", all)
	}
	one, _ := ifconfigRun(t, sock, "pfsync0")
	for _, want := range []string{"pfsync0: flags=UP,RUNNING", "\tpfsync: syncdev: eth2 syncpeer: 224.0.0.240 maxupd: 128\n",
		"states: 201 sticky bindings: 3", "sent: 40 messages, 300 states", "dropped: 2 (auth 2)"} {
		if !strings.Contains(one, want) {
			t.Errorf("ifconfig pfsync0 lacks %q:\n%s", want, one)
		}
	}
	if strings.Contains(one, "carp:") {
		t.Errorf("ifconfig pfsync0 printed carp groups:\n%s", one)
	}
	if carp0, _ := ifconfigRun(t, sock, "carp0"); strings.Contains(carp0, "pfsync") {
		t.Errorf("ifconfig carp0 printed pfsync0:\n%s", carp0)
	}
	js, _ := ifconfigRun(t, sock, "--json", "pfsync0")
	var back pfsync.Status
	if err := json.Unmarshal([]byte(js), &back); err != nil || back.SyncDev != "eth2" || back.States != 201 || back.MaxUpd != 128 {
		t.Errorf("ifconfig --json pfsync0: %v %+v\n%s", err, back, js)
	}

	// No pfsync on the daemon: pfsync0 does not exist.
	st.Pfsync = nil
	if out, code := ifconfigRun(t, fakeDaemon(t, st), "pfsync0"); code != 1 || !strings.Contains(out, "pfsync0 does not exist") {
		t.Errorf("pfsync off: exit %d %q", code, out)
	}
}

func TestPfctlInfoPfsync(t *testing.T) {
	sock := fakeDaemon(t, daemon.Status{Pfsync: &pfsync.Status{SyncDev: "eth2", SyncPeer: pfsync.Group4, StatesSent: 300,
		BulkDone: 1, Dropped: map[string]uint64{"auth": 2, "replay": 1}}})
	ps := daemonPfsync(context.Background(), sock)
	if ps == nil {
		t.Fatal("no pfsync status from the fake daemon")
	}
	var b strings.Builder
	printPfsyncInfo(&b, ps)
	for _, want := range []string{"Pfsync (syncdev eth2, syncpeer 224.0.0.240)", "  states sent                          300\n",
		"  messages dropped                       3\n", "  bulk updates done                      1\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("pfctl -s info lacks %q:\n%s", want, b.String())
		}
	}
	if daemonPfsync(context.Background(), filepath.Join(t.TempDir(), "none.sock")) != nil {
		t.Error("a status from a socket nobody listens on")
	}
}
