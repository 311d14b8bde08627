package config

import (
	"fmt"
	"sort"
	"unicode/utf8"
)

// An Assign is one NAME=value assignment of an rc.conf file, after quote
// removal and variable expansion.
type Assign struct {
	Name  string
	Value string
	Pos   Pos // of the name
	// Prev is the position of an earlier assignment to the same name that
	// this one overrides; invalid if none.
	Prev Pos

	src    *source
	valOff []int32 // source byte offset of each byte of Value
	endOff int     // source offset just past the value
}

// PosAt returns the source position of Value[i]; i == len(Value) gives the
// position just past the value. Bytes that came from a ${var} expansion map
// to the '$'.
func (a *Assign) PosAt(i int) Pos {
	if a.src == nil {
		return a.Pos
	}
	if i >= 0 && i < len(a.valOff) {
		return a.src.pos(int(a.valOff[i]))
	}
	return a.src.pos(a.endOff)
}

// RCFile is an rc.conf file parsed into assignments. Later assignments to a
// name override earlier ones, as when sh sources the file.
type RCFile struct {
	Name    string
	Assigns []*Assign // in file order, overridden ones included
	last    map[string]*Assign
}

// Lookup returns the assignment in effect for name, or nil.
func (f *RCFile) Lookup(name string) *Assign { return f.last[name] }

// Effective returns the assignments in effect (one per name), in the order
// their final assignment appears in the file.
func (f *RCFile) Effective() []*Assign {
	var out []*Assign
	for _, a := range f.Assigns {
		if f.last[a.Name] == a {
			out = append(out, a)
		}
	}
	return out
}

// source maps byte offsets to positions.
type source struct {
	name  string
	lines []int // offset of the first byte of each line
}

func newSource(name string, src []byte) *source {
	s := &source{name: name, lines: []int{0}}
	for i, c := range src {
		if c == '\n' {
			s.lines = append(s.lines, i+1)
		}
	}
	return s
}

func (s *source) pos(off int) Pos {
	i := sort.Search(len(s.lines), func(i int) bool { return s.lines[i] > off }) - 1
	if i < 0 {
		i = 0
	}
	return Pos{File: s.name, Line: i + 1, Col: off - s.lines[i] + 1}
}

// ParseRC parses src, the text of an rc.conf file named name, in the subset
// of sh that rc.conf files use: NAME=value assignments (several on a line
// are allowed, as in sh), values unquoted, "double quoted" (with \ escapes,
// $NAME and ${NAME} expansion of earlier assignments) or 'single quoted'
// (literal), # comments, and backslash-newline continuations. Anything else
// sh would run (commands, $(...), `...`, redirections) is an error: pfcarp
// reads the file, it does not execute it. Errors and warnings are collected;
// the returned file holds every assignment that parsed.
func ParseRC(name string, src []byte) (*RCFile, Diags) {
	p := &rcParser{src: src, s: newSource(name, src), f: &RCFile{Name: name, last: map[string]*Assign{}}}
	p.parse()
	return p.f, p.diags.list
}

type rcParser struct {
	src   []byte
	i     int
	s     *source
	f     *RCFile
	diags diagList
}

func (p *rcParser) errorf(off int, format string, args ...any) {
	p.diags.add(p.s.pos(off), Error, "syntax", format, args...)
}

func isNameStart(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func isNameByte(c byte) bool { return isNameStart(c) || '0' <= c && c <= '9' }

func (p *rcParser) skipLine() {
	for p.i < len(p.src) && p.src[p.i] != '\n' {
		p.i++
	}
}

func (p *rcParser) parse() {
	for p.i < len(p.src) && !p.diags.full() {
		c := p.src[p.i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ';':
			p.i++
			continue
		case c == '\\' && p.i+1 < len(p.src) && p.src[p.i+1] == '\n':
			p.i += 2
			continue
		case c == '#':
			p.skipLine()
			continue
		}
		start := p.i
		if !isNameStart(c) {
			p.errorf(start, "unexpected %s: expected NAME=value", quoteByte(p.src, start))
			p.skipLine()
			continue
		}
		for p.i < len(p.src) && isNameByte(p.src[p.i]) {
			p.i++
		}
		name := string(p.src[start:p.i])
		if p.i >= len(p.src) || p.src[p.i] != '=' {
			if p.i < len(p.src) && (p.src[p.i] == ' ' || p.src[p.i] == '\t') && p.i+1 < len(p.src) && p.src[p.i+1] == '=' {
				p.errorf(p.i, "space before '=' in %s: sh would run %q as a command", name, name)
			} else {
				p.errorf(start, "%q is not an assignment: pfcarp reads rc.conf, it does not run shell commands", name)
			}
			p.skipLine()
			continue
		}
		p.i++ // '='
		a := &Assign{Name: name, Pos: p.s.pos(start), src: p.s}
		if !p.word(a) {
			p.skipLine()
			continue
		}
		a.endOff = p.i
		if prev := p.f.last[name]; prev != nil {
			a.Prev = prev.Pos
			p.diags.addRel(a.Pos, Warning, "duplicate-key", []Pos{prev.Pos}, "%s is set again; this later value overrides the earlier one", name)
		}
		p.f.Assigns = append(p.f.Assigns, a)
		p.f.last[name] = a
		// After a value: blanks, then end of line, ';', a comment or another
		// assignment.
		if p.i < len(p.src) && p.src[p.i] != ' ' && p.src[p.i] != '\t' && p.src[p.i] != '\n' && p.src[p.i] != '\r' && p.src[p.i] != ';' {
			p.errorf(p.i, "unexpected %s after the value of %s", quoteByte(p.src, p.i), name)
			p.skipLine()
		}
	}
}

// maxValue caps a value after expansion.
const maxValue = 64 << 10

// word reads one sh word into a.Value, stopping at an unquoted blank,
// newline or ';'. It reports false after an error.
func (p *rcParser) word(a *Assign) bool {
	var val []byte
	var offs []int32
	emit := func(b []byte, off int) {
		for range b {
			offs = append(offs, int32(off))
		}
		val = append(val, b...)
	}
	emitRun := func(from, to int) { // source bytes copied verbatim
		for k := from; k < to; k++ {
			offs = append(offs, int32(k))
		}
		val = append(val, p.src[from:to]...)
	}
	defer func() { a.Value, a.valOff = string(val), offs }()
	for p.i < len(p.src) {
		c := p.src[p.i]
		switch c {
		case ' ', '\t', '\n', '\r', ';':
			return true
		case '\'':
			open := p.i
			p.i++
			s := p.i
			for p.i < len(p.src) && p.src[p.i] != '\'' {
				p.i++
			}
			if p.i >= len(p.src) {
				p.errorf(open, "unterminated single-quoted value of %s", a.Name)
				return false
			}
			emitRun(s, p.i)
			p.i++
		case '"':
			open := p.i
			p.i++
			for {
				if p.i >= len(p.src) {
					p.errorf(open, "unterminated double-quoted value of %s", a.Name)
					return false
				}
				c := p.src[p.i]
				if c == '"' {
					p.i++
					break
				}
				switch c {
				case '\\':
					if p.i+1 < len(p.src) {
						switch n := p.src[p.i+1]; n {
						case '\n':
							p.i += 2
							continue
						case '$', '`', '"', '\\':
							emitRun(p.i+1, p.i+2)
							p.i += 2
							continue
						}
					}
					emitRun(p.i, p.i+1)
					p.i++
				case '$':
					if !p.expand(a, func(*Assign) int { return len(val) }, emit, emitRun) {
						return false
					}
				case '`':
					p.errorf(p.i, "command substitution in the value of %s is not supported", a.Name)
					return false
				default:
					emitRun(p.i, p.i+1)
					p.i++
				}
			}
		case '\\':
			if p.i+1 >= len(p.src) {
				p.i++
				continue
			}
			if p.src[p.i+1] == '\n' {
				p.i += 2
				continue
			}
			emitRun(p.i+1, p.i+2)
			p.i += 2
		case '$':
			if !p.expand(a, func(*Assign) int { return len(val) }, emit, emitRun) {
				return false
			}
		case '`', '|', '&', '<', '>', '(', ')':
			p.errorf(p.i, "unexpected %s in the value of %s: quote the value; shell syntax is not supported", quoteByte(p.src, p.i), a.Name)
			return false
		default:
			emitRun(p.i, p.i+1)
			p.i++
		}
	}
	return true
}

// expand handles a '$' at p.i: $NAME or ${NAME} expand to the value of an
// earlier assignment (empty, with a warning, if there is none, as in sh);
// a '$' not followed by a name is literal; other forms are errors.
func (p *rcParser) expand(a *Assign, cur func(*Assign) int, emit func([]byte, int), emitRun func(int, int)) bool {
	dollar := p.i
	j := p.i + 1
	var name string
	switch {
	case j < len(p.src) && p.src[j] == '{':
		k := j + 1
		for k < len(p.src) && isNameByte(p.src[k]) {
			k++
		}
		if k >= len(p.src) || p.src[k] != '}' || k == j+1 || !isNameStart(p.src[j+1]) {
			p.errorf(dollar, "unsupported expansion in the value of %s: only ${NAME} is supported", a.Name)
			return false
		}
		name = string(p.src[j+1 : k])
		p.i = k + 1
	case j < len(p.src) && isNameStart(p.src[j]):
		k := j
		for k < len(p.src) && isNameByte(p.src[k]) {
			k++
		}
		name = string(p.src[j:k])
		p.i = k
	case j < len(p.src) && (p.src[j] == '(' || p.src[j] >= '0' && p.src[j] <= '9' || p.src[j] == '?' || p.src[j] == '$' || p.src[j] == '!' || p.src[j] == '#' || p.src[j] == '@' || p.src[j] == '*' || p.src[j] == '-'):
		p.errorf(dollar, "unsupported expansion %q in the value of %s", string(p.src[dollar:j+1]), a.Name)
		return false
	default:
		emitRun(dollar, dollar+1)
		p.i = j
		return true
	}
	if prev := p.f.last[name]; prev != nil {
		// Each expansion can double a value (a=$a$a), so cap the
		// result: an rc.conf value is a line of ifconfig arguments.
		if len(prev.Value) > maxValue-cur(a) {
			p.errorf(dollar, "the value of %s grows past %d bytes through $%s expansion", a.Name, maxValue, name)
			return false
		}
		emit([]byte(prev.Value), dollar)
	} else {
		p.diags.add(p.s.pos(dollar), Warning, "undefined-variable", "$%s is not set earlier in this file; it expands to nothing", name)
	}
	return true
}

// quoteByte describes the character at src[i] for an error message.
func quoteByte(src []byte, i int) string {
	r, _ := utf8.DecodeRune(src[i:])
	if r == utf8.RuneError || r < ' ' || r == 0x7f {
		return fmt.Sprintf("byte 0x%02x", src[i])
	}
	return fmt.Sprintf("%q", r)
}
