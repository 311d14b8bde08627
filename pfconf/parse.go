package pfconf

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"strconv"
	"strings"
)

// ParseOptions configures Parse.
type ParseOptions struct {
	// ReadFile reads included files and table files ("include", "table
	// ... file", "load anchor"). Paths are passed as written. Nil means
	// os.ReadFile relative to the process's working directory.
	ReadFile func(path string) ([]byte, error)
	// Defines are macro definitions "name=value", as pfctl's -D. They
	// win over definitions of the same name in the file.
	Defines []string
	// MaxExpansion caps how many rules one rule may expand to; 0 means
	// MaxRuleExpansion.
	MaxExpansion int
}

// FSReader returns a ReadFile function that reads from fsys (relative
// paths only; "./" prefixes are stripped).
func FSReader(fsys fs.FS) func(string) ([]byte, error) {
	return func(p string) ([]byte, error) {
		return fs.ReadFile(fsys, strings.TrimPrefix(p, "./"))
	}
}

const maxIncludeDepth = 16

// keywords are the words pfctl's lexer turns into tokens; they cannot be
// used where pf.conf expects a plain string (an interface name, a macro
// name, ...).
var keywords = func() map[string]bool {
	m := map[string]bool{}
	for _, k := range strings.Fields(`af-to all allow-opts altq anchor antispoof any
	bandwidth binat binat-anchor binat-to bitmask block block-policy bridge-to
	buckets cbq code codelq crop debug divert-reply divert-to dnpipe dnqueue drop
	drop-ovl divert-packet dup-to endpoint-independent ether fail-policy fairq fastroute file
	fingerprints flags floating flush for fragment from global group hfsc hogs
	hostid icmp-type icmp6-type if-bound in include inet inet6 interval keep
	keepcounters l3 label limit linkshare load log loginterface map-e-portset
	match matches max max-mss max-pkt-rate max-pkt-size max-src-conn
	max-src-conn-rate max-src-nodes max-src-states min-ttl modulate nat
	nat-anchor nat-to no no-df no-route no-sync on once optimization os out
	overload pass pflow port prefer-ipv6-nexthop prio priority priq probability
	proto qlimit queue quick random random-id rdr rdr-anchor rdr-to realtime
	reassemble received-on reply-to require-order return return-icmp
	return-icmp6 return-rst ridentifier round-robin route route-to rtable rule
	ruleset-optimization scrub set set-tos skip sloppy source-hash source-track
	state state-defaults state-policy static-port sticky-address syncookies
	synproxy table tag tagged target tbrsize timeout to tos ttl upperlimit
	urpf-failed user`) {
		m[k] = true
	}
	return m
}()

// bailout is raised (with panic) to abandon the current statement after a
// reported error; the statement loop recovers it and skips to the next line.
type bailout struct{}

// parser holds the state of one Parse call.
type parser struct {
	srcs     *Sources
	errs     ErrorList
	readFile func(string) ([]byte, error)

	sc      *Scanner
	scFile  *source
	pos     Pos
	tok     Token
	lit     string
	pending []savedTok // pushed-back tokens

	macros   map[string]string
	persist  map[string]bool // -D macros
	includes []string        // include stack (cycle detection)

	limiters  map[string]*LimiterDecl
	altqRoots map[string]*altqRoot
	queues    map[string]*queueNode
	obQueues  map[string][]string // OpenBSD queue name -> its interfaces
	anyIf     bool                // ifItem accepts "any" (a rule's "on")
	// stateDefaults are "set state-defaults" options: the state options
	// of pass rules that keep state without saying so.
	stateDefaults []stateOpt

	anchorSeq          int // numbers unnamed inline anchors
	statePolicyIfBound bool
	blockReturn        bool
	requireOrder       bool
	// stateDefaultsSet: "set state-defaults" was given (parse.y:
	// keep_state_defaults != NULL).
	stateDefaultsSet bool
	// anchorNames are the anchors named by anchor rules so far at
	// this level, for "inline anchor '%s' already exists".
	anchorNames map[string]bool
	ruleState   int
	depth       int // inline anchor nesting
	stmtBad     bool
}

type savedTok struct {
	pos Pos
	tok Token
	lit string
}

// Parse parses a pf.conf file. It returns the statements it could parse
// and, if anything was wrong, an *ErrorList (every error, in order). No
// name is resolved: interfaces, hosts, users and table files are looked at
// by Expand.
func Parse(filename string, src []byte, opts ParseOptions) (*File, error) {
	p := &parser{
		srcs:     &Sources{},
		readFile: opts.ReadFile,
		macros:   map[string]string{},
		persist:  map[string]bool{},
		limiters: map[string]*LimiterDecl{},
	}
	if p.readFile == nil {
		p.readFile = os.ReadFile
	}
	for _, d := range opts.Defines {
		name, val, ok := strings.Cut(d, "=")
		if !ok || name == "" {
			p.errs.Add(Position{Filename: "-D"}, fmt.Sprintf("could not parse macro definition %s", d))
			continue
		}
		p.macros[name] = val
		p.persist[name] = true
	}
	f := &File{Name: filename, Sources: p.srcs, readFile: p.readFile, maxExpansion: opts.MaxExpansion}
	if f.maxExpansion <= 0 {
		f.maxExpansion = MaxRuleExpansion
	}
	f.Stmts = p.parseFile(filename, src)
	f.Macros = p.macros
	return f, p.errs.Err()
}

// parseFile scans and parses one source (the main file or an include) and
// returns its statements.
func (p *parser) parseFile(name string, src []byte) []Stmt {
	saved := struct {
		sc      *Scanner
		scFile  *source
		pos     Pos
		tok     Token
		lit     string
		pending []savedTok
	}{p.sc, p.scFile, p.pos, p.tok, p.lit, p.pending}
	defer func() {
		p.sc, p.scFile, p.pos, p.tok, p.lit, p.pending = saved.sc, saved.scFile, saved.pos, saved.tok, saved.lit, saved.pending
	}()
	p.includes = append(p.includes, name)
	defer func() { p.includes = p.includes[:len(p.includes)-1] }()

	file := p.srcs.add(name, src)
	p.sc = &Scanner{Macro: p.lookupMacro}
	p.sc.Init(file, src, p.scanError, ExpandMacros)
	p.scFile = file
	p.pending = nil
	p.next()
	return p.stmtList(false)
}

func (p *parser) lookupMacro(name string) (string, bool) {
	v, ok := p.macros[name]
	return v, ok
}

func (p *parser) scanError(pos Pos, msg string) {
	p.errs.Add(p.srcs.Position(pos), msg)
	p.stmtBad = true
}

// next advances to the next token.
func (p *parser) next() {
	if n := len(p.pending); n > 0 {
		t := p.pending[n-1]
		p.pending = p.pending[:n-1]
		p.pos, p.tok, p.lit = t.pos, t.tok, t.lit
		return
	}
	p.pos, p.tok, p.lit = p.sc.Scan()
}

// errorf reports an error at pos.
func (p *parser) errorf(pos Pos, format string, args ...any) {
	p.errs.Add(p.srcs.Position(pos), fmt.Sprintf(format, args...))
	p.stmtBad = true
}

// fail reports an error at pos and abandons the statement.
func (p *parser) fail(pos Pos, format string, args ...any) {
	p.errorf(pos, format, args...)
	panic(bailout{})
}

// syntaxError reports pfctl's "syntax error" at the current token and
// abandons the statement.
func (p *parser) syntaxError() {
	p.fail(p.pos, "syntax error")
}

// syntaxErrorAt reports "syntax error" at pos and abandons the statement.
func (p *parser) syntaxErrorAt(pos Pos) {
	p.fail(pos, "syntax error")
}

// isKw reports whether the current token is keyword k.
func (p *parser) isKw(k string) bool { return p.tok == WORD && p.lit == k }

// gotKw consumes keyword k if it is next.
func (p *parser) gotKw(k string) bool {
	if p.isKw(k) {
		p.next()
		return true
	}
	return false
}

func (p *parser) expectKw(k string) {
	if !p.gotKw(k) {
		p.syntaxError()
	}
}

func (p *parser) got(t Token) bool {
	if p.tok == t {
		p.next()
		return true
	}
	return false
}

func (p *parser) expect(t Token) {
	if !p.got(t) {
		p.syntaxError()
	}
}

// isString reports whether the current token is what pfctl's grammar calls
// STRING: a quoted string or a word that is not a keyword.
func (p *parser) isString() bool {
	return p.tok == STRING || p.tok == WORD && !keywords[p.lit]
}

// str consumes a STRING.
func (p *parser) str() (Pos, string) {
	if !p.isString() {
		p.syntaxError()
	}
	pos, s := p.pos, p.lit
	p.next()
	return pos, s
}

// numberString consumes a NUMBER or STRING and returns its text.
func (p *parser) numberString() (Pos, string) {
	if p.tok == NUMBER {
		pos, s := p.pos, p.numText()
		p.next()
		return pos, s
	}
	return p.str()
}

// numText returns the current NUMBER as pfctl would print it (%lld).
func (p *parser) numText() string {
	n, err := strconv.ParseInt(p.lit, 10, 64)
	if err != nil {
		return p.lit
	}
	return strconv.FormatInt(n, 10)
}

// number consumes a NUMBER and returns its value.
func (p *parser) number() (Pos, int64) {
	if p.tok != NUMBER {
		p.syntaxError()
	}
	pos := p.pos
	n, err := strconv.ParseInt(p.lit, 10, 64)
	if err != nil {
		var ne *strconv.NumError
		reason := "invalid"
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			if strings.HasPrefix(p.lit, "-") {
				reason = "too small"
			} else {
				reason = "too large"
			}
		}
		p.fail(pos, "\"%s\" invalid number: %s", p.lit, reason)
	}
	p.next()
	return pos, n
}

// numberIn consumes a NUMBER in [lo, hi]; out of range is reported with
// what (pfctl's wording varies per option, callers pass it).
func (p *parser) numberIn(lo, hi int64, what string) (Pos, int64) {
	pos, n := p.number()
	if n < lo || n > hi {
		if strings.Contains(what, "%") {
			// pfctl prints the value ("illegal ttl value %d").
			p.fail(pos, what, n)
		}
		p.fail(pos, "%s", what)
	}
	return pos, n
}

// numberOrString is parse.y's number: a NUMBER, or a STRING that atoul
// reads as one ("%s is not a number" otherwise).
func (p *parser) numberOrString() (Pos, int64) {
	if p.tok == NUMBER {
		return p.number()
	}
	pos, s := p.str()
	n, err := strconv.ParseUint(s, 0, 64)
	if err != nil || n > math.MaxInt64 {
		p.fail(pos, "%s is not a number", s)
	}
	return pos, int64(n)
}

// strtonum reads num as strtonum(3) does for what (lo..hi) and fails as
// pfctl does: "WHAT: invalid", "WHAT: too small", "WHAT: too large".
func (p *parser) strtonum(pos Pos, what, num string, lo, hi int64) int64 {
	n, err := strconv.ParseInt(num, 10, 64)
	switch {
	case err != nil && errors.Is(err, strconv.ErrRange) && strings.HasPrefix(num, "-"):
		p.fail(pos, "%s: too small", what)
	case err != nil && errors.Is(err, strconv.ErrRange):
		p.fail(pos, "%s: too large", what)
	case err != nil:
		p.fail(pos, "%s: invalid", what)
	case n < lo:
		p.fail(pos, "%s: too small", what)
	case n > hi:
		p.fail(pos, "%s: too large", what)
	}
	return n
}

// checkTag applies parse.y's strlcpy checks of a tag or tagged name
// (PF_TAG_NAME_SIZE is 64).
func (p *parser) checkTag(pos Pos, s string) {
	if len(s) >= 64 {
		p.fail(pos, "tag too long, max 63 chars")
	}
}

// optnl skips newlines.
func (p *parser) optnl() {
	for p.tok == NEWLINE {
		p.next()
	}
}

// comma skips an optional comma and newlines (pfctl's "comma optnl").
func (p *parser) comma() {
	p.got(COMMA)
	p.optnl()
}

// endStmt expects the end of a statement: a newline or the end of input
// (or a closing brace of an inline anchor, left for the caller).
func (p *parser) endStmt() {
	switch p.tok {
	case NEWLINE:
		p.next()
	case EOF:
	case RBRACE:
		if p.depth == 0 {
			p.syntaxError()
		}
	default:
		p.syntaxError()
	}
}

// skipLine skips to just after the next newline (error recovery).
func (p *parser) skipLine() {
	for p.tok != NEWLINE && p.tok != EOF {
		p.next()
	}
	if p.tok == NEWLINE {
		p.next()
	}
}

// stmtList parses statements until EOF or, inside an inline anchor, the
// closing brace (which it leaves as the current token).
func (p *parser) stmtList(inAnchor bool) []Stmt {
	var out []Stmt
	for {
		switch p.tok {
		case EOF:
			if inAnchor {
				p.errorf(p.pos, "syntax error")
			}
			return out
		case NEWLINE:
			p.next()
			continue
		case RBRACE:
			if inAnchor {
				return out
			}
		}
		out = p.stmt(out)
	}
}

// stmt parses one statement, recovering from errors at the next line.
func (p *parser) stmt(out []Stmt) (res []Stmt) {
	res = out
	p.stmtBad = false
	p.anyIf = false
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(bailout); !ok {
				panic(r)
			}
			p.skipLine()
		}
	}()
	pos := p.pos
	switch {
	case p.isKw("include"):
		p.next()
		fpos, name := p.str()
		p.endStmt()
		return append(out, p.include(fpos, name)...)
	case p.isKw("set"):
		return append(out, &DeclStmt{Decl: p.option()}) // option always returns a Decl
	case p.isKw("pass"), p.isKw("block"), p.isKw("match"):
		return append(out, p.filterRule())
	case p.isKw("scrub"):
		return append(out, p.scrubRule())
	case p.isKw("antispoof"):
		return append(out, p.antispoof())
	case p.isKw("anchor"), p.isKw("nat-anchor"), p.isKw("rdr-anchor"), p.isKw("binat-anchor"):
		return append(out, p.anchorRule())
	case p.isKw("load"):
		return append(out, p.loadRule())
	case p.isKw("nat"), p.isKw("rdr"), p.isKw("no"):
		return append(out, p.natRule())
	case p.isKw("binat"):
		return append(out, p.binatRule())
	case p.isKw("altq"):
		if d := p.altq(); d != nil {
			out = append(out, &DeclStmt{Decl: d})
		}
		return out
	case p.isKw("queue"):
		if d := p.queue(); d != nil {
			out = append(out, &DeclStmt{Decl: d})
		}
		return out
	case p.isKw("table"):
		return append(out, p.table())
	case p.isKw("ether"):
		return append(out, p.etherRule())
	case p.isKw("state"):
		if d := p.limiter(); d != nil {
			out = append(out, &DeclStmt{Decl: d})
		}
		return out
	case p.isString():
		// name = value
		name := p.lit
		p.next()
		if p.tok != ASSIGN {
			p.fail(pos, "syntax error")
		}
		p.next()
		return append(out, p.varset(pos, name))
	}
	p.syntaxError()
	return out
}

// varset parses the value of "name = value ..." (words joined by spaces).
func (p *parser) varset(pos Pos, name string) Stmt {
	var parts []string
	for p.tok == STRING || p.tok == WORD || p.tok == NUMBER {
		if p.tok == WORD && keywords[p.lit] {
			p.syntaxError()
		}
		_, s := p.numberString()
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		p.syntaxError()
	}
	if strings.ContainsAny(name, " \t\n") {
		p.fail(pos, "macro name cannot contain whitespace")
	}
	if !validMacroName(name) {
		// A quoted name that is no single word would not print back
		// as a definition.
		p.fail(pos, "invalid macro name '%s'", name)
	}
	val := strings.Join(parts, " ")
	if p.tok != NEWLINE && p.tok != EOF {
		p.syntaxError()
	}
	if !p.persist[name] {
		p.macros[name] = val
	}
	p.endStmt()
	return &DeclStmt{Decl: &MacroDecl{Pos: pos, Name: name, Value: val}}
}

// include splices the statements of another file.
func (p *parser) include(pos Pos, name string) []Stmt {
	if len(p.includes) >= maxIncludeDepth {
		p.errorf(pos, "failed to include file %s: too many nested includes", name)
		return nil
	}
	for _, n := range p.includes {
		if n == name {
			p.errorf(pos, "failed to include file %s: include loop", name)
			return nil
		}
	}
	src, err := p.readFile(name)
	if err != nil {
		// parse.y pushfile warns ("NAME: strerror"), then include
		// fails.
		p.errorf(pos, "%s: %s", name, strerror(err))
		p.errorf(pos, "failed to include file %s", name)
		return nil
	}
	depth := p.depth
	p.depth = 0
	defer func() { p.depth = depth }()
	return p.parseFile(name, src)
}

// strerror renders err's cause as strerror(3) does: "No such file or
// directory" (Go's errno texts are lower case).
func strerror(err error) string {
	s := unwrapPathError(err).Error()
	if s != "" && s[0] >= 'a' && s[0] <= 'z' {
		s = string(s[0]-'a'+'A') + s[1:]
	}
	return s
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// checkRuleState enforces "set require-order yes".
func (p *parser) checkRuleState(pos Pos, state int) {
	if p.requireOrder && p.ruleState > state {
		p.fail(pos, "Rules must be in order: options, ethernet, normalization, queueing, translation, filtering")
	}
	p.ruleState = state
}

// Rule states for require-order.
const (
	stateOption = iota
	stateEther
	stateScrub
	stateQueue
	stateNAT
	stateFilter
)

func validMacroName(name string) bool {
	// pfctl's varset takes any STRING: "net.inet6.ip6.forwarding=1" (a
	// sysctl line left in a pf.conf) defines a macro $ can never reach.
	// Accept every name that prints back as the one word it was, so the
	// printed definition parses again.
	if name == "" || isDigit(int(name[0])) || keywords[name] {
		return false
	}
	if c := int(name[0]); !isAlnum(c) && c != ':' && c != '_' {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !allowedInString(int(name[i])) {
			return false
		}
	}
	return true
}

// name consumes a STRING used as a name that pfctl prints bare (interface,
// table, queue, tag): it must read back as one word, so names with blanks,
// quotes or pf.conf punctuation, and keywords, are refused.
func (p *parser) name() (Pos, string) {
	pos, s := p.str()
	if !wordLike(s) {
		p.fail(pos, "invalid name '%s'", s)
	}
	return pos, s
}

// wordLike reports whether s scans as a single non-keyword word.
// ValidName reports whether s can be written as a name in pf.conf (an
// interface, table, tag or host name that reads back as one word; not a
// keyword), as this parser requires of names.
func ValidName(s string) bool { return wordLike(s) }

func wordLike(s string) bool {
	if s == "" || keywords[s] || allDigits([]byte(s)) {
		return false
	}
	if c := int(s[0]); !isAlnum(c) && c != ':' && c != '_' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !allowedInString(int(s[i])) {
			return false
		}
	}
	return !strings.Contains(s, "$")
}

// braceList parses "ITEM" or "{ ITEM [,] ITEM ... }" (newlines allowed
// inside the braces), calling item for each; an empty "{ }" is a syntax
// error, as in pfctl's grammar.
func braceList[T any](p *parser, item func() T) []T {
	if !p.got(LBRACE) {
		return []T{item()}
	}
	p.optnl()
	var l []T
	for p.tok != RBRACE {
		l = append(l, item())
		p.comma()
	}
	p.next()
	if len(l) == 0 {
		p.syntaxError()
	}
	return l
}
