// Package pfload is the first half of loading a pf ruleset, the part that
// needs no kernel: it parses and expands a pf.conf, then reads, checks and
// expands the files of its "load anchor" statements (and theirs), as pfctl
// -f does before it opens /dev/pf (pfctl.c: pfctl_rules, then
// pfctl_load_anchors). Every user of pf.conf goes through Load: pfctl -f
// and -n, the daemon at start and on reload, the lints and the bench.
//
// The second half, turning a Ruleset into one nftables program with its
// anchors, is compile.CompileLoad; installing it is nft.Conn.Load.
package pfload

import (
	"errors"
	"fmt"
	"os"

	"github.com/pfcarp/pfcarp/netdb"
	"github.com/pfcarp/pfcarp/pfconf"
)

// MaxLoadAnchors bounds the "load anchor" statements one load follows
// (anchor files may load files that load files).
const MaxLoadAnchors = 256

// ErrTooManyAnchors is returned (wrapped) when a load follows more than
// MaxLoadAnchors "load anchor" statements.
var ErrTooManyAnchors = fmt.Errorf("more than %d load anchor statements", MaxLoadAnchors)

// Input is what Load reads.
type Input struct {
	// Name is the file's name as errors give it ("stdin" for standard
	// input).
	Name string
	// Src is the file's contents; nil means ReadFile(Name).
	Src []byte
	// ReadFile reads the files the ruleset names (include, table files,
	// fingerprints, load anchor), with paths as written; nil means
	// os.ReadFile.
	ReadFile func(name string) ([]byte, error)
	// Host resolves interface, host, user and group names.
	Host netdb.Host
	// Defines are -D macro=value definitions, for every file read.
	Defines []string
	// Anchor is the anchor the file is loaded into (pfctl -a), "" for
	// the main ruleset. In an anchor "set" options are ignored (with a
	// warning, when compiled), as pfctl ignores them, and "load anchor"
	// names are relative to it.
	Anchor string
}

// Ruleset is a pf.conf as read and expanded, with the anchors its "load
// anchor" statements load.
type Ruleset struct {
	Name   string // Input.Name
	Src    []byte // the file's contents
	Anchor string // Input.Anchor
	Host   netdb.Host
	Rules  *pfconf.Ruleset
	// Anchors are the loaded anchors in pfctl's order: the file's
	// statements in order, then those of the files they load (breadth
	// first).
	Anchors []*Anchor
}

// Anchor is one "load anchor NAME from FILE", read.
type Anchor struct {
	Path  string          // anchor path: NAME under the anchor of the statement
	File  string          // FILE as written
	At    pfconf.Position // where the statement is
	Src   []byte          // FILE's contents (nil until read)
	Rules *pfconf.Ruleset // FILE expanded (nil until read)
}

// AnchorError is a "load anchor" whose file cannot be read, or does not
// parse or expand (Err is then a *pfconf.ErrorList whose positions are in
// the file).
type AnchorError struct {
	Anchor *Anchor
	Err    error
}

func (e *AnchorError) Error() string {
	var el *pfconf.ErrorList
	if errors.As(e.Err, &el) {
		return el.Error()
	}
	err := e.Err
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Sprintf("%s: cannot load anchor %s from %s: %v", e.Anchor.At, e.Anchor.Path, e.Anchor.File, err)
}

func (e *AnchorError) Unwrap() error { return e.Err }

// Load reads in.Name (or in.Src), parses and expands it, then follows its
// "load anchor" statements. The error is the read error of the file, a
// *pfconf.ErrorList for a file that does not parse or expand (every error
// with its file:line:col), an *AnchorError for an anchor file, or wraps
// ErrTooManyAnchors. On error the Ruleset holds what was read before the
// failure (the main file and the anchors before the failing one); it is nil
// when the file could not be read.
func Load(in Input) (*Ruleset, error) {
	read := in.ReadFile
	if read == nil {
		read = os.ReadFile
	}
	src := in.Src
	if src == nil {
		var err error
		if src, err = read(in.Name); err != nil {
			return nil, err
		}
	}
	out := &Ruleset{Name: in.Name, Src: src, Anchor: in.Anchor, Host: in.Host}
	rs, err := expand(in.Name, src, read, in.Host, in.Defines)
	out.Rules = rs
	if err != nil {
		return out, err
	}
	return out, out.loadAnchors(read, in.Defines)
}

// loadAnchors reads the anchors of the "load anchor" statements, as
// pfctl_load_anchors does after the ruleset.
func (r *Ruleset) loadAnchors(read func(string) ([]byte, error), defines []string) error {
	type todo struct {
		base string
		from *pfconf.Ruleset
		l    pfconf.LoadAnchor
	}
	var queue []todo
	for _, l := range r.Rules.Loads {
		queue = append(queue, todo{r.Anchor, r.Rules, l})
	}
	for len(queue) > 0 {
		q := queue[0]
		queue = queue[1:]
		at := q.from.Sources.Position(q.l.Pos)
		if len(r.Anchors) >= MaxLoadAnchors {
			return fmt.Errorf("%s: %w", at, ErrTooManyAnchors)
		}
		a := &Anchor{Path: q.l.Name, File: q.l.File, At: at}
		if q.base != "" {
			a.Path = q.base + "/" + a.Path
		}
		src, err := read(a.File)
		if err != nil {
			return &AnchorError{Anchor: a, Err: err}
		}
		a.Src = src
		rs, err := expand(a.File, src, read, r.Host, defines)
		if err != nil {
			return &AnchorError{Anchor: a, Err: err}
		}
		a.Rules = rs
		r.Anchors = append(r.Anchors, a)
		for _, l := range rs.Loads {
			queue = append(queue, todo{a.Path, rs, l})
		}
	}
	return nil
}

// expand parses and expands one file. In an anchor, set options parse as
// anywhere (pfctl parses them, and loads options for the main ruleset
// only: compile.CompileAnchor ignores them with a warning). The error is
// a *pfconf.ErrorList.
func expand(name string, src []byte, read func(string) ([]byte, error), host netdb.Host, defines []string) (*pfconf.Ruleset, error) {
	f, perr := pfconf.Parse(name, src, pfconf.ParseOptions{ReadFile: read, Defines: defines})
	var rs *pfconf.Ruleset
	var eerr error
	if f != nil {
		rs, eerr = pfconf.Expand(f, host)
	}
	var errs pfconf.ErrorList
	for _, e := range []error{perr, eerr} {
		var el *pfconf.ErrorList
		if errors.As(e, &el) {
			errs.List = append(errs.List, el.List...)
			errs.Dropped += el.Dropped
		} else if e != nil {
			errs.Add(pfconf.Position{Filename: name}, e.Error())
		}
	}
	if rs == nil && errs.Len() == 0 {
		errs.Add(pfconf.Position{Filename: name}, "cannot be parsed")
	}
	return rs, errs.Err()
}
