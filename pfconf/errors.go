package pfconf

import (
	"fmt"
	"sort"
	"strings"
)

// MaxErrors caps the number of errors an ErrorList keeps; parsing goes on
// after the cap but further errors are counted, not stored.
const MaxErrors = 100

// Position is a resolved source position: file name, 1-based line and
// 1-based column (in bytes).
type Position struct {
	Filename string
	Line     int
	Column   int
}

// IsValid reports whether the position names a line.
func (p Position) IsValid() bool { return p.Line > 0 }

// String returns "file:line:col", the form Go tools use.
func (p Position) String() string {
	if !p.IsValid() {
		if p.Filename == "" {
			return "-"
		}
		return p.Filename
	}
	return fmt.Sprintf("%s:%d:%d", p.Filename, p.Line, p.Column)
}

// Error is one problem found in a pf.conf file.
type Error struct {
	Pos Position
	Msg string
	// NoAddress is set on a "no IP address found" error of a name looked
	// up as an interface and then as a host: the name as written, without
	// its modifiers.
	NoAddress string
}

// Error returns "file:line:col: msg".
func (e *Error) Error() string {
	if !e.Pos.IsValid() {
		if e.Pos.Filename != "" {
			return e.Pos.Filename + ": " + e.Msg
		}
		return e.Msg
	}
	return e.Pos.String() + ": " + e.Msg
}

// PfctlString returns the error in pfctl's own form, "file:line: msg".
func (e *Error) PfctlString() string {
	if !e.Pos.IsValid() {
		if e.Pos.Filename != "" {
			return e.Pos.Filename + ": " + e.Msg
		}
		return e.Msg
	}
	return fmt.Sprintf("%s:%d: %s", e.Pos.Filename, e.Pos.Line, e.Msg)
}

// ErrorList is a list of errors in the order they were found. It keeps
// one entry per distinct problem: an error with the same position and
// message as one already in the list is not added again, so a rule that
// expands to many rules reports a problem they share once (pfctl repeats
// it for every expanded rule). It keeps at most MaxErrors entries; Dropped
// counts the rest. The zero value is an empty list ready to use.
type ErrorList struct {
	List    []*Error
	Dropped int
	seen    map[errorKey]bool
}

type errorKey struct {
	pos Position
	msg string
}

// Add appends an error unless an equal one is already listed or the cap
// is reached.
func (l *ErrorList) Add(pos Position, msg string) {
	l.addError(&Error{Pos: pos, Msg: msg})
}

// addError appends e unless an equal error is already listed or the cap
// is reached.
func (l *ErrorList) addError(e *Error) {
	k := errorKey{e.Pos, e.Msg}
	if l.seen[k] {
		return
	}
	if len(l.List) >= MaxErrors {
		l.Dropped++
		return
	}
	if l.seen == nil {
		l.seen = map[errorKey]bool{}
	}
	l.seen[k] = true
	l.List = append(l.List, e)
}

// Len reports the number of stored errors.
func (l *ErrorList) Len() int { return len(l.List) }

// Sort orders the errors by file, line and column (stable, so errors at the
// same place keep their order).
func (l *ErrorList) Sort() {
	sort.SliceStable(l.List, func(i, j int) bool {
		a, b := l.List[i].Pos, l.List[j].Pos
		if a.Filename != b.Filename {
			return a.Filename < b.Filename
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
}

// Err returns l as an error, or nil when it is empty.
func (l *ErrorList) Err() error {
	if l == nil || len(l.List) == 0 {
		return nil
	}
	return l
}

// Error implements error: the first error and a count of the others.
func (l *ErrorList) Error() string {
	switch len(l.List) {
	case 0:
		return "no errors"
	case 1:
		return l.List[0].Error()
	}
	return fmt.Sprintf("%s (and %d more errors)", l.List[0].Error(), len(l.List)-1+l.Dropped)
}

// PfctlString returns every error on its own line in pfctl's form.
func (l *ErrorList) PfctlString() string {
	var b strings.Builder
	for _, e := range l.List {
		b.WriteString(e.PfctlString())
		b.WriteByte('\n')
	}
	if l.Dropped > 0 {
		fmt.Fprintf(&b, "(%d more errors not shown)\n", l.Dropped)
	}
	return b.String()
}
