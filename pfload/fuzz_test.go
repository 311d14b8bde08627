package pfload

import (
	"errors"
	"testing"

	"github.com/pfcarp/pfcarp/pfconf"
)

// FuzzLoad: any main file and anchor file load or fail with errors that
// name a file, never panic.
func FuzzLoad(f *testing.F) {
	f.Add("anchor \"a\"\nload anchor \"a\" from \"a.conf\"\npass all\n", "pass in proto tcp to port 22\nload anchor \"b\" from \"a.conf\"\n")
	f.Add("load anchor \"a\" from \"none.conf\"\n", "set skip on lo\n")
	f.Add("pass in on\n", "")
	f.Fuzz(func(t *testing.T, main, anchor string) {
		m := &memFS{files: map[string]string{"a.conf": anchor}}
		rs, err := Load(Input{Name: "pf.conf", Src: []byte(main), ReadFile: m.read, Host: host})
		if rs == nil {
			t.Fatalf("no ruleset for given source: %v", err)
		}
		var el *pfconf.ErrorList
		if errors.As(err, &el) {
			for _, e := range el.List {
				if e.Pos.Filename == "" {
					t.Fatalf("error without a file: %v", e)
				}
			}
		}
		if len(rs.Anchors) > MaxLoadAnchors {
			t.Fatalf("%d anchors", len(rs.Anchors))
		}
	})
}
