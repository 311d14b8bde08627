package pfconf

import (
	"fmt"
	"strings"
)

// Token is the kind of a lexical token of pf.conf.
type Token int

// The tokens. Words (unquoted strings) may be keywords; the parser decides.
const (
	EOF     Token = iota
	NEWLINE       // end of a line (statements end here)
	WORD          // unquoted string: identifiers, addresses, keywords
	STRING        // quoted string, quotes removed
	NUMBER        // decimal number, as pfctl's lexer recognises it
	MACRO         // $name, only when macros are not expanded (lit = name)
	LBRACE        // {
	RBRACE        // }
	LPAREN        // (
	RPAREN        // )
	COMMA         // ,
	SLASH         // /
	ASSIGN        // =
	LT            // <
	GT            // >
	NOT           // !
	MINUS         // -
	NE            // !=
	LE            // <=
	GE            // >=
	XRG           // <>
	IRG           // ><
	ARROW         // ->
	CHAR          // any other single byte; lit holds it
)

var tokenNames = [...]string{
	EOF: "end of file", NEWLINE: "newline", WORD: "word", STRING: "string",
	NUMBER: "number", MACRO: "macro", LBRACE: "{", RBRACE: "}", LPAREN: "(",
	RPAREN: ")", COMMA: ",", SLASH: "/", ASSIGN: "=", LT: "<", GT: ">",
	NOT: "!", MINUS: "-", NE: "!=", LE: "<=", GE: ">=", XRG: "<>", IRG: "><",
	ARROW: "->", CHAR: "character",
}

func (t Token) String() string {
	if t >= 0 && int(t) < len(tokenNames) {
		return tokenNames[t]
	}
	return fmt.Sprintf("token(%d)", int(t))
}

// Mode controls the scanner.
type Mode uint

const (
	// ExpandMacros makes the scanner replace $name by the macro's value
	// (looked up with Scanner.Macro) and scan the value in place, as
	// pfctl's lexer does: the value joins the characters that follow it
	// ("$if:network" becomes "em0:network").
	ExpandMacros Mode = 1 << iota
)

// Limits that keep hostile input bounded.
const (
	maxTokenLen     = 8192    // pfctl's buffer size
	maxMacroDepth   = 64      // nested expansions
	maxExpandedSize = 1 << 22 // total bytes of macro text scanned per file
)

// ErrorHandler receives scanner errors.
type ErrorHandler func(pos Pos, msg string)

type overlay struct {
	text string
	i    int
	pos  Pos // every byte of an expansion is reported at the $ reference
}

// Scanner turns pf.conf source into tokens following pfctl's lexer: words
// are runs of alphanumerics and most punctuation, numbers are digit runs
// ended by a space or one of ")/,}=", backslash-newline joins lines, '#'
// starts a comment, form feeds are blanks.
//
// A Scanner is not safe for concurrent use.
type Scanner struct {
	// Macro looks up a macro's value when the mode has ExpandMacros.
	Macro func(name string) (string, bool)

	file *source
	src  []byte
	off  int
	errh ErrorHandler
	mode Mode

	stack    []overlay
	expanded int
	buf      []byte
	width    int // bytes of src the character peek returned takes (2 for "\\x")
}

// Init prepares s to scan src, which belongs to file (as registered with
// Sources). errh, if not nil, receives lexical errors.
func (s *Scanner) Init(file *source, src []byte, errh ErrorHandler, mode Mode) {
	*s = Scanner{Macro: s.Macro, file: file, src: src, errh: errh, mode: mode, buf: s.buf[:0]}
}

func (s *Scanner) error(pos Pos, msg string) {
	if s.errh != nil {
		s.errh(pos, msg)
	}
}

// peek returns the next character and its position without consuming it,
// or -1 at the end. Unless raw is set (inside quotes), a backslash in the
// file escapes the next byte as pfctl's lgetc does: backslash-newline is
// skipped (the lines join) and backslash-x reads as x, so "\\ " is a blank
// and "\\#" starts a comment. A backslash at the end of the file reads as
// the end. Macro text is never unescaped (pfctl's parsebuf is not either).
func (s *Scanner) peek(raw bool) (int, Pos) {
	for len(s.stack) > 0 {
		top := &s.stack[len(s.stack)-1]
		if top.i < len(top.text) {
			return int(top.text[top.i]), top.pos
		}
		s.stack = s.stack[:len(s.stack)-1]
	}
	s.width = 1
	for !raw && s.off < len(s.src) && s.src[s.off] == '\\' {
		if s.off+1 >= len(s.src) {
			return -1, s.file.pos(len(s.src))
		}
		if s.src[s.off+1] != '\n' {
			s.width = 2
			return int(s.src[s.off+1]), s.file.pos(s.off)
		}
		s.off += 2
	}
	if s.off >= len(s.src) {
		return -1, s.file.pos(len(s.src))
	}
	return int(s.src[s.off]), s.file.pos(s.off)
}

// advance consumes the character peek returned.
func (s *Scanner) advance() {
	if len(s.stack) > 0 {
		s.stack[len(s.stack)-1].i++
		return
	}
	if s.off < len(s.src) {
		s.off += s.width
		s.width = 1
	}
}

func (s *Scanner) get(raw bool) (int, Pos) {
	c, p := s.peek(raw)
	if c >= 0 {
		s.advance()
	}
	return c, p
}

func isAlnum(c int) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isDigit(c int) bool { return c >= '0' && c <= '9' }

func isSpace(c int) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

func isPunct(c int) bool {
	return c > ' ' && c < 0x7f && !isAlnum(c)
}

// allowedInString mirrors pfctl's allowed_in_string.
func allowedInString(c int) bool {
	if isAlnum(c) {
		return true
	}
	if !isPunct(c) {
		return false
	}
	switch c {
	case '(', ')', '{', '}', '<', '>', '!', '=', '/', '#', ',':
		return false
	}
	return true
}

// allowedToEndNumber mirrors pfctl's allowed_to_end_number.
func allowedToEndNumber(c int) bool {
	return c < 0 || isSpace(c) || c == ')' || c == ',' || c == '/' || c == '}' || c == '='
}

// skipLine consumes everything up to (not including) the next newline.
func (s *Scanner) skipLine() {
	for {
		c, _ := s.peek(false)
		if c < 0 || c == '\n' {
			return
		}
		s.advance()
	}
}

// Scan returns the next token, its position and its text (the word, the
// string without quotes, the digits, the macro name or the character).
func (s *Scanner) Scan() (pos Pos, tok Token, lit string) {
top:
	c, pos := s.get(false)
	for c == ' ' || c == '\t' || c == '\f' {
		c, pos = s.get(false)
	}
	switch {
	case c < 0:
		return pos, EOF, ""
	case c == '#':
		s.skipLine()
		goto top
	case c == '\n':
		return pos, NEWLINE, "\n"
	case c == '$' && s.mode&ExpandMacros == 0:
		name := s.macroName()
		return pos, MACRO, name
	case c == '$':
		name := s.macroName()
		val, ok := "", false
		if s.Macro != nil {
			val, ok = s.Macro(name)
		}
		if !ok {
			s.error(pos, fmt.Sprintf("macro '%s' not defined", name))
			s.skipLine()
			goto top
		}
		if len(s.stack) >= maxMacroDepth || s.expanded+len(val) > maxExpandedSize {
			s.error(pos, fmt.Sprintf("macro '%s': expansion too deep or too large", name))
			s.skipLine()
			goto top
		}
		s.expanded += len(val)
		s.stack = append(s.stack, overlay{text: val, pos: pos})
		goto top
	case c == '\'' || c == '"':
		return s.quoted(c, pos)
	case c == '!':
		if n, _ := s.peek(false); n == '=' {
			s.advance()
			return pos, NE, "!="
		}
		return pos, NOT, "!"
	case c == '<':
		switch n, _ := s.peek(false); n {
		case '>':
			s.advance()
			return pos, XRG, "<>"
		case '=':
			s.advance()
			return pos, LE, "<="
		}
		return pos, LT, "<"
	case c == '>':
		switch n, _ := s.peek(false); n {
		case '<':
			s.advance()
			return pos, IRG, "><"
		case '=':
			s.advance()
			return pos, GE, ">="
		}
		return pos, GT, ">"
	case c == '-':
		if n, _ := s.peek(false); n == '>' {
			s.advance()
			return pos, ARROW, "->"
		}
	}

	s.buf = append(s.buf[:0], byte(c))
	if c == '-' || isDigit(c) {
		for {
			n, _ := s.peek(false)
			if !isDigit(n) {
				break
			}
			s.advance()
			s.buf = append(s.buf, byte(n))
			if len(s.buf) >= maxTokenLen {
				s.error(pos, "string too long")
				s.skipLine()
				goto top
			}
		}
		n, _ := s.peek(false)
		if !(len(s.buf) == 1 && c == '-') && allowedToEndNumber(n) {
			return pos, NUMBER, string(s.buf)
		}
		if c == '-' && len(s.buf) == 1 {
			return pos, MINUS, "-"
		}
		// Not a number: the digits start a word.
		if c == '-' {
			// "-12abc": pfctl returns '-' and rescans the rest.
			s.stack = append(s.stack, overlay{text: string(s.buf[1:]), pos: pos + 1})
			return pos, MINUS, "-"
		}
	}
	if isAlnum(c) || c == ':' || c == '_' {
		for {
			n, _ := s.peek(false)
			if n < 0 || !allowedInString(n) {
				break
			}
			s.advance()
			s.buf = append(s.buf, byte(n))
			if len(s.buf) >= maxTokenLen {
				s.error(pos, "string too long")
				s.skipLine()
				goto top
			}
		}
		if isDigit(c) && allDigits(s.buf) {
			// pfctl's lexer makes "80" a string when a character such
			// as '#' or '<' follows it directly; it would print back as
			// a number, so treat it as the number it is.
			return pos, NUMBER, string(s.buf)
		}
		if k, ok := keywordStrings[string(s.buf)]; ok {
			return pos, WORD, k // no allocation for keywords
		}
		return pos, WORD, string(s.buf)
	}
	switch c {
	case '{':
		return pos, LBRACE, "{"
	case '}':
		return pos, RBRACE, "}"
	case '(':
		return pos, LPAREN, "("
	case ')':
		return pos, RPAREN, ")"
	case ',':
		return pos, COMMA, ","
	case '/':
		return pos, SLASH, "/"
	case '=':
		return pos, ASSIGN, "="
	case '-':
		return pos, MINUS, "-"
	}
	return pos, CHAR, string(rune(c))
}

func (s *Scanner) macroName() string {
	s.buf = s.buf[:0]
	for {
		n, _ := s.peek(false)
		if !(isAlnum(n) || n == '_') || len(s.buf) >= maxTokenLen {
			break
		}
		s.advance()
		s.buf = append(s.buf, byte(n))
	}
	return string(s.buf)
}

// quoted scans a quoted string as pfctl does: newlines inside are dropped,
// a backslash escapes the quote character, backslash-newline is dropped.
func (s *Scanner) quoted(q int, pos Pos) (Pos, Token, string) {
	var b strings.Builder
	for {
		c, _ := s.get(true)
		switch {
		case c < 0:
			// parse.y lgetc: EOF inside quotes.
			s.error(pos, "reached end of file while parsing quoted string")
			return pos, EOF, ""
		case c == '\n':
			continue
		case c == '\\':
			n, _ := s.peek(true)
			if n == q {
				s.advance()
				c = n
			} else if n == '\n' {
				s.advance()
				continue
			}
		case c == q:
			return pos, STRING, b.String()
		case c == 0:
			s.error(pos, "syntax error")
			s.skipLine()
			return pos, NEWLINE, "\n"
		}
		if b.Len() >= maxTokenLen {
			s.error(pos, "string too long")
			s.skipLine()
			return pos, NEWLINE, "\n"
		}
		b.WriteByte(byte(c))
	}
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// keywordStrings interns the keywords' text.
var keywordStrings = func() map[string]string {
	m := make(map[string]string, len(keywords))
	for k := range keywords {
		m[k] = k
	}
	return m
}()
