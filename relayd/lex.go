package relayd

import (
	"fmt"
	"strconv"
)

// The lexer follows relayd's parse.y yylex/lgetc: '#' comments, backslash
// newline joins lines, "$name" expands a macro by pushing its text back into
// the input, quoted strings ('...' or "..."), numbers that end at space,
// ')', ',', '/', '}' or '=', and unquoted words made of alphanumerics and
// punctuation other than (){}<>!=#,/.

type tokKind int

const (
	tEOF tokKind = iota
	tString
	tNumber
	tPunct // one of { } < > = , and newline
)

type token struct {
	kind   tokKind
	s      string // text; for tPunct the character
	n      int64
	quoted bool
	pos    Pos
}

func (t token) String() string {
	switch t.kind {
	case tEOF:
		return "end of file"
	case tPunct:
		if t.s == "\n" {
			return "newline"
		}
	}
	return strconv.Quote(t.s)
}

const (
	startExpand = -2
	doneExpand  = -3
)

type rch struct {
	c   int
	pos Pos
}

type srcFile struct {
	name    string
	data    []byte
	off     int
	line    int
	col     int
	unget   []rch
	eofSeen bool
}

type lexer struct {
	files     []*srcFile
	macros    map[string]string
	expanding bool
	errf      func(Pos, string)
}

func (l *lexer) cur() *srcFile { return l.files[len(l.files)-1] }

// igetc returns the next character of the current file and its position;
// -1 at the end of the file.
func (l *lexer) igetc() rch {
	f := l.cur()
	for {
		var r rch
		if n := len(f.unget); n > 0 {
			r = f.unget[n-1]
			f.unget = f.unget[:n-1]
		} else if f.off >= len(f.data) {
			return rch{-1, Pos{f.name, f.line, f.col}}
		} else {
			r = rch{int(f.data[f.off]), Pos{f.name, f.line, f.col}}
			f.off++
			if r.c == '\n' {
				f.line++
				f.col = 1
			} else {
				f.col++
			}
		}
		switch r.c {
		case startExpand:
			l.expanding = true
		case doneExpand:
			l.expanding = false
		default:
			return r
		}
	}
}

func (l *lexer) lungetc(r rch) {
	if r.c == -1 {
		return
	}
	f := l.cur()
	f.unget = append(f.unget, r)
}

// lgetc is relayd's lgetc: inside quotes raw characters; outside, joins
// backslash-newline and at the end of an included file goes back to the
// including one, after one faked newline.
func (l *lexer) lgetc(quoted bool) rch {
	if quoted {
		return l.igetc()
	}
	r := l.igetc()
	for r.c == '\\' {
		next := l.igetc()
		if next.c != '\n' {
			r = next // relayd keeps the escaped character, drops the backslash
			break
		}
		r = l.igetc()
	}
	if r.c == -1 {
		f := l.cur()
		if !f.eofSeen {
			f.eofSeen = true
			return rch{'\n', r.pos}
		}
		for r.c == -1 && len(l.files) > 1 {
			l.files = l.files[:len(l.files)-1]
			r = l.igetc()
		}
	}
	return r
}

func isSpace(c int) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}
func isDigit(c int) bool { return c >= '0' && c <= '9' }
func isAlnum(c int) bool {
	return isDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}
func isPunct(c int) bool { return c > 32 && c < 127 && !isAlnum(c) }

func allowedToEndNumber(c int) bool {
	return isSpace(c) || c == ')' || c == ',' || c == '/' || c == '}' || c == '='
}

func allowedInString(c int) bool {
	return isAlnum(c) || (isPunct(c) && c != '(' && c != ')' && c != '{' && c != '}' &&
		c != '<' && c != '>' && c != '!' && c != '=' && c != '#' && c != ',' && c != '/')
}

const maxToken = 8096

// next returns the next token.
func (l *lexer) next() token {
top:
	r := l.lgetc(false)
	for r.c == ' ' || r.c == '\t' || r.c == '\r' {
		r = l.lgetc(false)
	}
	pos := r.pos
	if r.c == '#' {
		for r.c != '\n' && r.c != -1 {
			r = l.lgetc(false)
		}
	}
	if r.c == '$' && !l.expanding {
		var name []byte
		for {
			c := l.lgetc(false)
			if c.c == -1 {
				return token{kind: tEOF, pos: c.pos}
			}
			if isAlnum(c.c) || c.c == '_' {
				name = append(name, byte(c.c))
				continue
			}
			l.lungetc(c)
			break
		}
		val, ok := l.macros[string(name)]
		if !ok {
			l.errf(pos, fmt.Sprintf("macro '%s' not defined", name))
			return l.findEOL()
		}
		// Push back the value; every character takes the macro's position.
		l.lungetc(rch{doneExpand, pos})
		for i := len(val) - 1; i >= 0; i-- {
			l.lungetc(rch{int(val[i]), pos})
		}
		l.lungetc(rch{startExpand, pos})
		goto top
	}
	switch r.c {
	case '\'', '"':
		q := r.c
		var buf []byte
		for {
			c := l.lgetc(true)
			if c.c == -1 {
				l.errf(pos, "reached end of file while parsing quoted string")
				return token{kind: tEOF, pos: c.pos}
			}
			if c.c == '\\' {
				next := l.lgetc(true)
				if next.c == -1 {
					l.errf(pos, "reached end of file while parsing quoted string")
					return token{kind: tEOF, pos: next.pos}
				}
				if next.c == q || next.c == ' ' || next.c == '\t' {
					c = next
				} else if next.c == '\n' {
					continue
				} else {
					l.lungetc(next)
				}
			} else if c.c == q {
				break
			} else if c.c == 0 {
				l.errf(c.pos, "syntax error")
				return l.findEOL()
			}
			if len(buf) >= maxToken {
				l.errf(pos, "string too long")
				return l.findEOL()
			}
			buf = append(buf, byte(c.c))
		}
		return token{kind: tString, s: string(buf), quoted: true, pos: pos}
	}
	if r.c == '-' || isDigit(r.c) {
		buf := []rch{r}
		c := l.lgetc(false)
		for c.c != -1 && isDigit(c.c) && len(buf) < maxToken {
			buf = append(buf, c)
			c = l.lgetc(false)
		}
		l.lungetc(c)
		if !(len(buf) == 1 && buf[0].c == '-') && (c.c == -1 || allowedToEndNumber(c.c)) {
			s := runesString(buf)
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				l.errf(pos, fmt.Sprintf("\"%s\" invalid number: %s", s, numErr(err)))
				return l.findEOL()
			}
			return token{kind: tNumber, s: s, n: n, pos: pos}
		}
		for i := len(buf) - 1; i > 0; i-- {
			l.lungetc(buf[i])
		}
		if r.c == '-' {
			return token{kind: tPunct, s: "-", pos: pos}
		}
	}
	if isAlnum(r.c) || r.c == ':' || r.c == '_' {
		buf := []byte{byte(r.c)}
		c := l.lgetc(false)
		for c.c != -1 && allowedInString(c.c) {
			if len(buf) >= maxToken {
				l.errf(pos, "string too long")
				return l.findEOL()
			}
			buf = append(buf, byte(c.c))
			c = l.lgetc(false)
		}
		l.lungetc(c)
		return token{kind: tString, s: string(buf), pos: pos}
	}
	if r.c == -1 {
		return token{kind: tEOF, pos: pos}
	}
	return token{kind: tPunct, s: string(rune(r.c)), pos: pos}
}

func runesString(rs []rch) string {
	b := make([]byte, len(rs))
	for i, r := range rs {
		b[i] = byte(r.c)
	}
	return string(b)
}

func numErr(err error) string {
	if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
		return "too large"
	}
	return "invalid"
}

// findEOL skips to the end of the line; the newline is returned as the
// token so the parser's recovery ends there.
func (l *lexer) findEOL() token {
	for {
		r := l.lgetc(false)
		if r.c == '\n' {
			return token{kind: tPunct, s: "\n", pos: r.pos}
		}
		if r.c == -1 {
			return token{kind: tEOF, pos: r.pos}
		}
	}
}
