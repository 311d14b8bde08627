package compile

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pfcarp/pfcarp/pfload"
)

func loadFiles(t *testing.T, anchor string, files map[string]string) *pfload.Ruleset {
	t.Helper()
	read := func(p string) ([]byte, error) {
		if s, ok := files[p]; ok {
			return []byte(s), nil
		}
		return nil, fmt.Errorf("no file %s", p)
	}
	rs, err := pfload.Load(pfload.Input{Name: "pf.conf", ReadFile: read, Host: testHost, Anchor: anchor})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return rs
}

// CompileLoad puts the loaded anchors in Program.Anchors, marked as the
// main ruleset's when the file is the main ruleset, with pfctl's rule
// texts; an anchor's refusals name the anchor file's lines.
func TestCompileLoad(t *testing.T) {
	files := map[string]string{
		"pf.conf":  "anchor \"web\"\nload anchor \"web\" from \"web.conf\"\npass all\n",
		"web.conf": "anchor \"api\"\nload anchor \"api\" from \"api.conf\"\npass in proto tcp to port 80\n",
		"api.conf": "pass in proto tcp to port 8080\n",
	}
	for _, anchor := range []string{"", "relayd"} {
		rs := loadFiles(t, anchor, files)
		prog, err := CompileLoad(rs, Options{})
		if err != nil {
			t.Fatalf("-a %q: %v", anchor, err)
		}
		if prog.Anchor != anchor || len(prog.Anchors) != 2 {
			t.Fatalf("-a %q: program anchor %q, %d anchors", anchor, prog.Anchor, len(prog.Anchors))
		}
		prefix := ""
		if anchor != "" {
			prefix = anchor + "/"
		}
		for i, want := range []string{prefix + "web", prefix + "web/api"} {
			if a := prog.Anchors[i]; a.Anchor != want || a.FromMain != (anchor == "") {
				t.Errorf("-a %q: anchor %d is %q (from main %v), want %q", anchor, i, a.Anchor, a.FromMain, want)
			}
		}
		if s := prog.Anchors[0].String(); !strings.Contains(s, "pass in proto tcp from any to any port = http flags S/SA keep state") {
			t.Errorf("anchor program lacks pfctl's rule text:\n%s", s)
		}
	}
	files["api.conf"] = "pass all\npass in proto tcp all probability 50%\n"
	rs := loadFiles(t, "", files)
	if _, err := CompileLoad(rs, Options{}); err == nil || !strings.HasPrefix(err.Error(), "api.conf:2:") {
		t.Errorf("refused anchor rule: %v", err)
	}
}
