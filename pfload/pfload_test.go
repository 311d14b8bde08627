package pfload

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/pfcarp/pfcarp/netdb"
	"github.com/pfcarp/pfcarp/pfconf"
)

var host = &netdb.Fixed{}

// memFS reads files from a map and counts the reads.
type memFS struct {
	files map[string]string
	reads []string
}

func (m *memFS) read(name string) ([]byte, error) {
	m.reads = append(m.reads, name)
	if s, ok := m.files[name]; ok {
		return []byte(s), nil
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

func TestLoadAnchors(t *testing.T) {
	m := &memFS{files: map[string]string{
		"pf.conf": "anchor \"a\"\nanchor \"b\"\nload anchor \"a\" from \"a.conf\"\nload anchor \"b\" from \"b.conf\"\npass all\n",
		"a.conf":  "anchor \"c\"\nload anchor \"c\" from \"c.conf\"\npass in proto tcp to port $p\n",
		"b.conf":  "block in all\n",
		"c.conf":  "pass out all\n",
	}}
	rs, err := Load(Input{Name: "pf.conf", ReadFile: m.read, Host: host, Defines: []string{"p=22"}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range rs.Anchors {
		got = append(got, a.Path+" "+a.File+" "+a.At.String())
	}
	// Breadth first, as pfctl_load_anchors queues them.
	want := []string{"a a.conf pf.conf:3:1", "b b.conf pf.conf:4:1", "a/c c.conf a.conf:2:1"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("anchors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if r := rs.Anchors[0].Rules.Main.Filter[1]; r.Dst.Port[0] != 22 {
		t.Errorf("-D did not reach the anchor file: port %d", r.Dst.Port[0])
	}
	if rs.Name != "pf.conf" || string(rs.Src) != m.files["pf.conf"] || len(rs.Rules.Main.Filter) != 3 || rs.Host != host {
		t.Errorf("ruleset %+v", rs)
	}
}

// -a: options are refused in the file itself, and anchor names are
// relative to the anchor.
func TestLoadIntoAnchor(t *testing.T) {
	m := &memFS{files: map[string]string{"x.conf": "pass all\n"}}
	rs, err := Load(Input{Name: "in.conf", Src: []byte("anchor \"x\"\nload anchor \"x\" from \"x.conf\"\n"), ReadFile: m.read, Host: host, Anchor: "relayd"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Anchors) != 1 || rs.Anchors[0].Path != "relayd/x" || rs.Anchor != "relayd" {
		t.Errorf("anchors %+v", rs.Anchors)
	}
	// Options parse in an anchor, as pfctl parses them (it loads them for
	// the main ruleset only; compile ignores them with a warning).
	if _, err := Load(Input{Name: "in.conf", Src: []byte("set skip on lo\npass all\n"), ReadFile: m.read, Host: host, Anchor: "relayd"}); err != nil {
		t.Errorf("options in -a: %v", err)
	}
	if _, err := Load(Input{Name: "in.conf", Src: []byte("set skip on lo\npass all\n"), ReadFile: m.read, Host: host}); err != nil {
		t.Errorf("options in the main ruleset: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	// The file itself cannot be read.
	m := &memFS{}
	if rs, err := Load(Input{Name: "pf.conf", ReadFile: m.read, Host: host}); rs != nil || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, %v", rs, err)
	}
	// A file that does not parse: its anchors are not read.
	m = &memFS{files: map[string]string{"a.conf": "pass all\n"}}
	rs, err := Load(Input{Name: "pf.conf", Src: []byte("load anchor \"a\" from \"a.conf\"\npass in on\n"), ReadFile: m.read, Host: host})
	var el *pfconf.ErrorList
	if !errors.As(err, &el) || el.List[0].Pos.Line != 2 || rs == nil || rs.Rules == nil || len(m.reads) != 0 {
		t.Errorf("bad main file: %v (reads %v)", err, m.reads)
	}
	// An anchor file that does not parse: an AnchorError with the file's
	// positions; the anchors before it are kept.
	m = &memFS{files: map[string]string{"a.conf": "pass all\n", "b.conf": "pass all\npass in proto\n"}}
	src := []byte("load anchor \"a\" from \"a.conf\"\nload anchor \"b\" from \"b.conf\"\n")
	rs, err = Load(Input{Name: "pf.conf", Src: src, ReadFile: m.read, Host: host})
	var ae *AnchorError
	if !errors.As(err, &ae) || ae.Anchor.Path != "b" || string(ae.Anchor.Src) != m.files["b.conf"] || !errors.As(err, &el) ||
		!strings.HasPrefix(err.Error(), "b.conf:2:") || len(rs.Anchors) != 1 || rs.Anchors[0].Path != "a" {
		t.Errorf("bad anchor file: %v (%d anchors)", err, len(rs.Anchors))
	}
	// A missing anchor file names the statement, in pfctl's words.
	delete(m.files, "b.conf")
	_, err = Load(Input{Name: "pf.conf", Src: src, ReadFile: m.read, Host: host})
	if !errors.As(err, &ae) || !errors.Is(err, fs.ErrNotExist) || err.Error() != "pf.conf:2:1: cannot load anchor b from b.conf: file does not exist" {
		t.Errorf("missing anchor file: %v", err)
	}
	// A file loading itself stops at MaxLoadAnchors.
	m = &memFS{files: map[string]string{"a.conf": "load anchor \"a\" from \"a.conf\"\n"}}
	rs, err = Load(Input{Name: "a.conf", ReadFile: m.read, Host: host})
	if !errors.Is(err, ErrTooManyAnchors) || !strings.HasPrefix(err.Error(), "a.conf:1:1: more than 256") || len(rs.Anchors) != MaxLoadAnchors {
		t.Errorf("recursive load: %v (%d anchors)", err, len(rs.Anchors))
	}
}
