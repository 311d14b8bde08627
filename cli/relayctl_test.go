package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/pfcarp/pfcarp/daemon"
)

var relaydTestStatus = daemon.RelaydStatus{
	Redirects: []daemon.RelaydRedirect{{ID: 1, Name: "www", Status: "active", Tables: []int{1, 2}}},
	Tables: []daemon.RelaydTable{
		{ID: 1, Name: "webhosts", Port: 80, Status: "active (1 hosts)", Up: 1, Hosts: []int{1, 2}},
		{ID: 2, Name: "fallback", Port: 80, Status: "empty", Hosts: []int{3}},
	},
	Hosts: []daemon.RelaydHost{
		{ID: 1, Name: "10.0.0.1", TableID: 1, Status: "up", State: "up", Checks: 4, UpChecks: 3, Availability: 75},
		{ID: 2, Name: "10.0.0.2", TableID: 1, Status: "disabled", State: "down", Checks: 4, UpChecks: 0, Retries: 2},
		{ID: 3, Name: "127.0.0.1", TableID: 2, Status: "unknown", State: "unknown", Parent: 1},
	},
}

// The summary, hosts and redirects listings have relayctl's columns and
// order (show_summary_msg).
func TestRelayctlShow(t *testing.T) {
	for _, tc := range []struct{ what, want string }{
		{"summary", "Id  \tType    \tName                    \tAvlblty\tStatus\n" +
			"1   \tredirect\twww                     \t       \tactive\n" +
			"1   \ttable   \twebhosts:80             \t       \tactive (1 hosts)\n" +
			"1   \thost    \t10.0.0.1                \t75.00% \tup\n" +
			"2   \thost    \t10.0.0.2                \t0.00%  \tdisabled\n" +
			"2   \ttable   \tfallback:80             \t       \tempty\n" +
			"3   \thost    \t127.0.0.1 parent 1      \t       \tunknown\n"},
		{"redirects", "Id  \tType    \tName                    \tAvlblty\tStatus\n" +
			"1   \tredirect\twww                     \t       \tactive\n"},
		{"hosts", "Id  \tType    \tName                    \tAvlblty\tStatus\n" +
			"1   \ttable   \twebhosts:80             \t       \tactive (1 hosts)\n" +
			"1   \thost    \t10.0.0.1                \t75.00% \tup\n" +
			"\t        \ttotal: 3/4 checks\n" +
			"2   \thost    \t10.0.0.2                \t0.00%  \tdisabled\n" +
			"\t        \ttotal: 0/4 checks, 2 retries\n" +
			"2   \ttable   \tfallback:80             \t       \tempty\n" +
			"3   \thost    \t127.0.0.1 parent 1      \t       \tunknown\n"},
	} {
		var b bytes.Buffer
		printRelaydSummary(&b, &relaydTestStatus, tc.what)
		if b.String() != tc.want {
			t.Errorf("show %s:\n%s\nwant:\n%s", tc.what, b.String(), tc.want)
		}
	}
}

// fakeRelayd answers relayctl: the status, and commands that fail for
// host 9.
func fakeRelayd(t *testing.T) (string, *[]string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "pfcarp.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var posts []string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/relayd", func(w http.ResponseWriter, _ *http.Request) { json.NewEncoder(w).Encode(relaydTestStatus) })
	mux.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		posts = append(posts, r.URL.Path)
		if r.URL.Path == "/v1/relayd/host/9/disable" {
			w.WriteHeader(http.StatusUnprocessableEntity)
			json.NewEncoder(w).Encode(daemon.CommandResult{Error: "host 9: no such ID or name"})
			return
		}
		json.NewEncoder(w).Encode(daemon.CommandResult{OK: true})
	})
	srv := &http.Server{Handler: mux}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return sock, &posts
}

func relayctlRun(t *testing.T, sock string, args ...string) (out, errOut string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	err := runRelayctl(context.Background(), &Env{Stdout: &o, Stderr: &e}, append([]string{"-s", sock}, args...))
	if err != nil {
		var ee *ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("relayctl %v: %v", args, err)
		}
		return o.String(), e.String(), ee.Code
	}
	return o.String(), e.String(), 0
}

func TestRelayctlCommands(t *testing.T) {
	sock, posts := fakeRelayd(t)
	if out, _, code := relayctlRun(t, sock, "host", "disable", "10.0.0.1"); code != 0 || out != "command succeeded\n" {
		t.Errorf("host disable: %q %d", out, code)
	}
	if out, e, code := relayctlRun(t, sock, "host", "disable", "9"); code != 1 || out != "command failed\n" || e != "relayctl: host 9: no such ID or name\n" {
		t.Errorf("failing host disable: %q %q %d", out, e, code)
	}
	relayctlRun(t, sock, "redirect", "enable", "www")
	relayctlRun(t, sock, "reload")
	want := []string{"/v1/relayd/host/10.0.0.1/disable", "/v1/relayd/host/9/disable", "/v1/relayd/redirect/www/enable", "/v1/relayd/reload"}
	if len(*posts) != len(want) {
		t.Fatalf("posts %v, want %v", *posts, want)
	}
	for i := range want {
		if (*posts)[i] != want[i] {
			t.Errorf("post %d: %s, want %s", i, (*posts)[i], want[i])
		}
	}
	out, _, code := relayctlRun(t, sock, "show", "hosts", "--json")
	var st daemon.RelaydStatus
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st.Hosts) != 3 {
		t.Errorf("show hosts --json: %q %d", out, code)
	}
	for _, bad := range [][]string{{}, {"show"}, {"show", "relays"}, {"host", "kill", "1"}, {"reload", "now"}} {
		if _, _, code := relayctlRun(t, sock, bad...); code != 2 {
			t.Errorf("relayctl %v: exit %d, want 2", bad, code)
		}
	}
}
