package config

import (
	"fmt"
	"sort"
	"strings"
)

// Pos is a position in a file. Line and Col count from 1; Col counts bytes.
// The zero Pos means "no position" and prints as "-".
type Pos struct {
	File string
	Line int
	Col  int
}

// IsValid reports whether p names a line.
func (p Pos) IsValid() bool { return p.Line > 0 }

func (p Pos) String() string {
	switch {
	case !p.IsValid() && p.File == "":
		return "-"
	case !p.IsValid():
		return p.File
	case p.Col > 0:
		return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// Severity ranks a Diag.
type Severity int

const (
	Note    Severity = iota // worth knowing; nothing is wrong
	Warning                 // pfcarp runs it, but it is probably not what you want
	Error                   // pfcarp refuses to run it
)

func (s Severity) String() string {
	switch s {
	case Note:
		return "note"
	case Warning:
		return "warning"
	case Error:
		return "error"
	}
	return fmt.Sprintf("severity(%d)", int(s))
}

// MarshalText makes a Severity print as its name in JSON.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// A Diag is one finding about a config: a syntax error, an unknown key, a
// bad value, or a lint. ID is stable across releases (tests and scripts may
// match on it); Msg is for people and may change.
type Diag struct {
	Pos      Pos
	Severity Severity
	ID       string
	Msg      string
	// Related are other places the finding is about (the peer node's line,
	// an earlier assignment); may be nil.
	Related []Pos
}

// String prints d as "file:line:col: severity: msg [id]", the form compilers
// use, so editors can jump to it.
func (d Diag) String() string {
	var b strings.Builder
	b.WriteString(d.Pos.String())
	b.WriteString(": ")
	b.WriteString(d.Severity.String())
	b.WriteString(": ")
	b.WriteString(d.Msg)
	if len(d.Related) > 0 {
		b.WriteString(" (see ")
		for i, r := range d.Related {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(r.String())
		}
		b.WriteString(")")
	}
	if d.ID != "" {
		b.WriteString(" [")
		b.WriteString(d.ID)
		b.WriteString("]")
	}
	return b.String()
}

// Diags is a list of findings. It implements error so a caller that only
// cares whether loading failed can return it; use Err for that.
type Diags []Diag

func (l Diags) Error() string {
	var errs Diags
	for _, d := range l {
		if d.Severity == Error {
			errs = append(errs, d)
		}
	}
	switch len(errs) {
	case 0:
		return "no errors"
	case 1:
		return errs[0].String()
	}
	return fmt.Sprintf("%s (and %d more errors)", errs[0], len(errs)-1)
}

// HasErrors reports whether any finding has severity Error.
func (l Diags) HasErrors() bool {
	for _, d := range l {
		if d.Severity == Error {
			return true
		}
	}
	return false
}

// Err returns l as an error if it holds an Error, else nil.
func (l Diags) Err() error {
	if l.HasErrors() {
		return l
	}
	return nil
}

// Count returns how many findings have severity s.
func (l Diags) Count(s Severity) int {
	n := 0
	for _, d := range l {
		if d.Severity == s {
			n++
		}
	}
	return n
}

// Sort orders l by file, line, column, then ID, keeping the relative order
// of equal entries.
func (l Diags) Sort() {
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i].Pos, l[j].Pos
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Col != b.Col {
			return a.Col < b.Col
		}
		return l[i].ID < l[j].ID
	})
}

// diagList collects findings with a cap on errors, so a binary file fed
// in by mistake yields a short report.
type diagList struct {
	list   Diags
	errors int
}

const maxErrors = 50

func (l *diagList) add(pos Pos, sev Severity, id, format string, args ...any) {
	if sev == Error {
		l.errors++
		if l.errors == maxErrors+1 {
			l.list = append(l.list, Diag{Pos: pos, Severity: Error, ID: "too-many-errors", Msg: "too many errors; giving up on the rest"})
			return
		}
		if l.errors > maxErrors {
			return
		}
	}
	l.list = append(l.list, Diag{Pos: pos, Severity: sev, ID: id, Msg: fmt.Sprintf(format, args...)})
}

func (l *diagList) addRel(pos Pos, sev Severity, id string, related []Pos, format string, args ...any) {
	n := len(l.list)
	l.add(pos, sev, id, format, args...)
	if len(l.list) > n && l.list[n].ID == id {
		l.list[n].Related = related
	}
}

func (l *diagList) full() bool { return l.errors > maxErrors }
