package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/pfcarp/pfcarp/config"
	"github.com/pfcarp/pfcarp/config/pflint"
)

// newCheckCmd is `pfcarp check`: load one node's config, or a pair's, and
// lint it.
func newCheckCmd() *command {
	return &command{
		name:  "check",
		short: "validate and lint a node's config, or a pair's (-c FILE [-c FILE2])",
		run:   runCheck,
	}
}

// pfRulesLinters returns the pf.conf lints check runs on each node's
// pf_rules; read reads the files a pf.conf includes.
func pfRulesLinters(read func(string) ([]byte, error)) []config.RulesLinter {
	return []config.RulesLinter{&pflint.Linter{ReadFile: read}}
}

type fileList []string

func (f *fileList) String() string     { return strings.Join(*f, ",") }
func (f *fileList) Set(s string) error { *f = append(*f, s); return nil }

func runCheck(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	var files fileList
	var asJSON bool
	fs.Var(&files, "c", "node config `file` (rc.conf); give two for a pair")
	fs.BoolVar(&asJSON, "json", false, "print findings as JSON")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: pfcarp check -c FILE [-c FILE2] [--json]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &ExitError{Code: 2}
	}
	if fs.NArg() > 0 || len(files) == 0 {
		fs.Usage()
		return &ExitError{Code: 2}
	}
	read := func(name string) ([]byte, error) {
		if env.Dir != "" && !filepath.IsAbs(name) {
			name = filepath.Join(env.Dir, name)
		}
		return os.ReadFile(name)
	}
	var all config.Diags
	var nodes []*config.Node
	ok := true
	for _, f := range files {
		n, d := config.LoadFile(f, &config.Options{ReadFile: read})
		all = append(all, d...)
		if n == nil || d.HasErrors() {
			ok = false
			continue
		}
		nodes = append(nodes, n)
	}
	if ok {
		all = append(all, config.Check(nodes, config.CheckOptions{Rules: pfRulesLinters(read), ReadFile: read})...)
	} else {
		// Lint only what loaded: a partial node would produce noise.
		all = append(all, config.Check(nodes[:0:0], config.CheckOptions{})...)
		for _, n := range nodes {
			all = append(all, config.Check([]*config.Node{n}, config.CheckOptions{Rules: pfRulesLinters(read), ReadFile: read})...)
		}
	}
	all = uniqueDiags(all)
	all.Sort()
	if asJSON {
		if err := writeCheckJSON(env.Stdout, files, all); err != nil {
			return err
		}
	} else {
		writeCheckText(env.Stdout, all)
	}
	if all.HasErrors() {
		return &ExitError{Code: 1}
	}
	return nil
}

func uniqueDiags(l config.Diags) config.Diags {
	var out config.Diags
	seen := map[string]bool{}
	for _, d := range l {
		if k := d.String(); !seen[k] {
			seen[k] = true
			out = append(out, d)
		}
	}
	return out
}

func writeCheckText(w io.Writer, l config.Diags) {
	var b strings.Builder
	for _, d := range l {
		b.WriteString(d.String())
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "%d errors, %d warnings, %d notes\n", l.Count(config.Error), l.Count(config.Warning), l.Count(config.Note))
	io.WriteString(w, b.String())
}

type jsonPos struct {
	File string `json:"file"`
	Line int    `json:"line,omitempty"`
	Col  int    `json:"col,omitempty"`
}

type jsonFinding struct {
	jsonPos
	Severity config.Severity `json:"severity"`
	ID       string          `json:"id"`
	Message  string          `json:"message"`
	Related  []jsonPos       `json:"related,omitempty"`
}

type jsonCheck struct {
	Files    []string      `json:"files"`
	Findings []jsonFinding `json:"findings"`
	Errors   int           `json:"errors"`
	Warnings int           `json:"warnings"`
	Notes    int           `json:"notes"`
}

func writeCheckJSON(w io.Writer, files []string, l config.Diags) error {
	out := jsonCheck{Files: files, Findings: []jsonFinding{}, Errors: l.Count(config.Error), Warnings: l.Count(config.Warning), Notes: l.Count(config.Note)}
	for _, d := range l {
		f := jsonFinding{jsonPos: jsonPos{d.Pos.File, d.Pos.Line, d.Pos.Col}, Severity: d.Severity, ID: d.ID, Message: d.Msg}
		for _, r := range d.Related {
			f.Related = append(f.Related, jsonPos{r.File, r.Line, r.Col})
		}
		out.Findings = append(out.Findings, f)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
