package relayd

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/pfcarp/pfcarp/netdb"
)

// keywords is relayd's lookup() table (parse.y): these words are tokens of
// their own when unquoted and cannot stand where a name is expected.
var keywords = map[string]bool{}

func init() {
	for _, k := range strings.Fields(`agentx append backlog backup binary block buffer ca cache cert
	changes check checks ciphers client code connection context cookie demote destination digest
	disable ecdhe edh error errors expect external file forward from hash header headerlen host
	http icmp include inet inet6 interface interval ip key keypair label least-states listen
	loadbalance log lookup match method mode nat no nodelay nothing on params parent pass password
	path pflog pftag port prefork priority protocol query quick random real redirect relay remove
	request response retry return roundrobin route router rtable rtlabel sack script send session
	set socket source-hash splice state sticky-address strip style table tag tagged tcp tickets
	timeout tls to transparent ttl url value websockets with`) {
		keywords[k] = true
	}
}

// Parse parses relayd.conf text src named name. readFile loads included
// files (nil refuses include). It returns every problem found as an
// ErrorList; the Config is nil then.
func Parse(name string, src []byte, readFile func(string) ([]byte, error)) (*Config, error) {
	p := &parser{
		cfg:      &Config{Interval: DefaultInterval, Timeout: DefaultTimeout},
		readFile: readFile,
		tables:   map[string]*TableDef{},
		rdrs:     map[string]bool{},
	}
	p.lx = &lexer{macros: map[string]string{}, errf: p.errAt}
	p.lx.files = []*srcFile{{name: name, data: src, line: 1, col: 1}}
	p.parse()
	if len(p.errs) == 0 {
		p.finish()
	}
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	return p.cfg, nil
}

type parser struct {
	lx        *lexer
	cfg       *Config
	readFile  func(string) ([]byte, error)
	errs      ErrorList
	tok       token
	peeked    bool
	tables    map[string]*TableDef
	rdrs      map[string]bool
	tablePort uint16 // port of the last listen line (relayd's tableport)
	depth     int    // braces open at the current token
	last      token  // last token consumed
	fwdTried  bool   // the redirect block has a forward line (maybe failed)
	lstTried  bool   // the redirect block has a listen line (maybe failed)
	lastTable int
	lastHost  int
}

type parseErr struct{}

func (p *parser) errAt(pos Pos, msg string) {
	if len(p.errs) < MaxErrors {
		p.errs = append(p.errs, &Error{Pos: pos, Msg: msg})
	}
}

// fail records msg at pos and unwinds to the statement's recovery point.
func (p *parser) fail(pos Pos, format string, a ...any) {
	p.errAt(pos, fmt.Sprintf(format, a...))
	panic(parseErr{})
}

func (p *parser) peek() token {
	if !p.peeked {
		p.tok = p.lx.next()
		p.peeked = true
	}
	return p.tok
}

func (p *parser) next() token {
	t := p.peek()
	p.peeked = false
	switch {
	case isP(t, "{"):
		p.depth++
	case isP(t, "}"):
		p.depth--
	}
	p.last = t
	return t
}

func isWord(t token, w string) bool { return t.kind == tString && !t.quoted && t.s == w }
func isP(t token, c string) bool    { return t.kind == tPunct && t.s == c }

func (p *parser) syntax(t token) { p.fail(t.pos, "syntax error") }

func (p *parser) want(w string) token {
	t := p.next()
	if !isWord(t, w) {
		p.syntax(t)
	}
	return t
}

func (p *parser) wantPunct(c string) token {
	t := p.next()
	if !isP(t, c) {
		p.syntax(t)
	}
	return t
}

// str reads a STRING token: quoted, or an unquoted word that is not a
// keyword.
func (p *parser) str() token {
	t := p.next()
	if t.kind != tString || (!t.quoted && keywords[t.s]) {
		p.syntax(t)
	}
	return t
}

func (p *parser) num() token {
	t := p.next()
	if t.kind != tNumber {
		p.syntax(t)
	}
	return t
}

func (p *parser) optnl() {
	for isP(p.peek(), "\n") {
		p.next()
	}
}

// endStmt requires the newline (or end of input) that ends a statement.
func (p *parser) endStmt() {
	t := p.peek()
	if t.kind == tEOF {
		return
	}
	if !isP(t, "\n") {
		p.syntax(t)
	}
	p.next()
}

// recover runs f; on a parse error it skips to the end of the line
// (stopping before a '}' when inBlock) and reports whether f failed.
func (p *parser) recover(inBlock bool, f func()) (failed bool) {
	depth := p.depth
	p.last = token{}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(parseErr); !ok {
				panic(r)
			}
			failed = true
			p.skipLine(inBlock, depth)
		}
	}()
	f()
	return false
}

// skipLine skips to the newline that ends the failed statement at brace
// depth depth (nothing when the failing token was that newline); in a
// block it stops before the block's closing brace.
func (p *parser) skipLine(inBlock bool, depth int) {
	if isP(p.last, "\n") && p.depth <= depth {
		return
	}
	for {
		t := p.peek()
		switch {
		case t.kind == tEOF:
			return
		case isP(t, "\n") && p.depth <= depth:
			p.next()
			return
		case inBlock && isP(t, "}") && p.depth <= depth:
			return
		}
		p.next()
	}
}

// skipBlock skips a refused statement: to the end of its line, or past
// its balanced braces.
func (p *parser) skipBlock() {
	depth := 0
	for {
		t := p.peek()
		switch {
		case t.kind == tEOF:
			return
		case isP(t, "{"):
			depth++
		case isP(t, "}"):
			depth--
		case isP(t, "\n") && depth <= 0:
			p.next()
			return
		}
		p.next()
	}
}

func (p *parser) parse() {
	for {
		t := p.peek()
		if t.kind == tEOF {
			return
		}
		if isP(t, "\n") {
			p.next()
			continue
		}
		if p.refused(t) {
			continue
		}
		p.recover(false, p.statement)
	}
}

// refused reports (and skips) the statements out of this package's scope.
func (p *parser) refused(t token) bool {
	if t.kind != tString || t.quoted {
		return false
	}
	msg := ""
	switch t.s {
	case "relay":
		msg = "relay: layer-7 relays are not supported (only redirections)"
	case "protocol":
		msg = "protocol: layer-7 relay protocols are not supported (only redirections)"
	case "http", "tcp", "dns":
		msg = t.s + " protocol: layer-7 relay protocols are not supported (only redirections)"
	case "router":
		msg = "router: relayd routers are not supported"
	case "agentx", "snmp":
		msg = t.s + ": not supported"
	case "socket":
		msg = "socket: control socket option not supported"
	default:
		return false
	}
	p.errAt(t.pos, msg)
	p.skipBlock()
	return true
}

func (p *parser) statement() {
	t := p.next()
	if t.kind != tString {
		p.syntax(t)
	}
	if !t.quoted && keywords[t.s] {
		switch t.s {
		case "include":
			p.include()
			return
		case "interval":
			n := p.num()
			if n.n <= 0 || n.n > int64(1<<31-1) {
				p.fail(n.pos, "invalid interval: %d", n.n)
			}
			p.cfg.Interval = time.Duration(n.n) * time.Second
		case "timeout":
			p.cfg.Timeout = p.timeout()
		case "log":
			p.cfg.Log |= p.logLevel()
		case "prefork":
			// Only the number of relay processes: accepted, ignored.
			n := p.num()
			if n.n <= 0 || n.n > maxPrefork {
				p.fail(n.pos, "invalid number of preforked relays: %d", n.n)
			}
			p.cfg.Prefork = int(n.n)
		case "table":
			p.tableDef(t)
		case "redirect":
			p.redirect(t)
		default:
			p.syntax(t)
		}
		p.endStmt()
		return
	}
	// varset: STRING '=' STRING
	eq := p.next()
	if !isP(eq, "=") {
		p.syntax(eq)
	}
	v := p.next()
	if v.kind != tString && v.kind != tNumber {
		p.syntax(v)
	}
	if strings.ContainsAny(t.s, " \t") {
		p.fail(t.pos, "macro name cannot contain whitespace")
	}
	p.lx.macros[t.s] = v.s
	p.endStmt()
}

func (p *parser) include() {
	s := p.str()
	if p.readFile == nil || len(p.lx.files) >= maxIncludeDepth {
		p.fail(s.pos, "failed to include file %s", s.s)
	}
	data, err := p.readFile(s.s)
	if err != nil {
		p.fail(s.pos, "failed to include file %s", s.s)
	}
	// The newline that ends the include line is read from the new file's
	// end (relayd lungetc('\n') then pushfile).
	p.lx.files = append(p.lx.files, &srcFile{name: s.s, data: data, line: 1, col: 1})
}

func (p *parser) timeout() time.Duration {
	n := p.num()
	if n.n < 0 || n.n > 1<<40 {
		p.fail(n.pos, "invalid timeout: %d", n.n)
	}
	return time.Duration(n.n) * time.Millisecond
}

func (p *parser) logLevel() LogOpts {
	t := p.next()
	switch {
	case isWord(t, "state"):
		p.want("changes")
		return LogStateChanges
	case isWord(t, "host"):
		p.want("checks")
		return LogHostChecks
	case isWord(t, "connection"):
		if isWord(p.peek(), "errors") {
			p.next()
			return LogConnectionErrors
		}
		return LogConnection | LogConnectionErrors
	}
	p.syntax(t)
	return 0
}

func (p *parser) tableName() token {
	p.wantPunct("<")
	n := p.str()
	p.wantPunct(">")
	if len(n.s) >= tableNameSize {
		p.fail(n.pos, "invalid table name")
	}
	return n
}

func (p *parser) tableDef(kw token) {
	n := p.tableName()
	_, dup := p.tables[n.s]
	if dup {
		p.errAt(n.pos, fmt.Sprintf("table %s defined twice", n.s))
	}
	td := &TableDef{Pos: kw.pos, Name: n.s, timeout: p.cfg.Timeout}
	opts := 0
	for {
		t := p.peek()
		if isWord(t, "disable") {
			p.next()
			td.Disabled = true
		} else if isP(t, "{") {
			p.next()
			p.hostList(td)
		} else {
			break
		}
		opts++
	}
	if opts == 0 {
		p.syntax(p.peek())
	}
	if len(td.Hosts) == 0 {
		p.fail(n.pos, "table %s has no hosts", td.Name)
	}
	if !dup {
		p.tables[td.Name] = td
		p.cfg.Tables = append(p.cfg.Tables, td)
	}
}

// hostList reads hosts up to the closing brace; hosts are separated by
// commas, newlines or nothing (relayd's comma rule).
func (p *parser) hostList(td *TableDef) {
	for {
		t := p.peek()
		switch {
		case isP(t, "\n") || isP(t, ","):
			p.next()
			continue
		case isP(t, "}"):
			p.next()
			return
		case isWord(t, "include"):
			p.next()
			p.include()
			continue
		}
		td.Hosts = append(td.Hosts, p.host())
	}
}

func (p *parser) host() *HostDef {
	a := p.str()
	h := &HostDef{Pos: a.pos, Name: a.s}
	if ad, err := netip.ParseAddr(a.s); err == nil {
		h.Addr = ad
	}
	var retry, parent, prio, ttl bool
	for {
		t := p.peek()
		switch {
		case isWord(t, "retry"):
			p.next()
			n := p.num()
			if retry {
				p.fail(t.pos, "retry value already set")
			}
			if n.n < 0 || n.n > 1<<31-1 {
				p.fail(n.pos, "invalid retry value: %d", n.n)
			}
			h.Retry, retry = int(n.n), true
		case isWord(t, "parent"):
			p.next()
			n := p.num()
			if parent {
				p.fail(t.pos, "parent value already set")
			}
			if n.n < 0 || n.n > 1<<31-1 {
				p.fail(n.pos, "invalid parent value: %d", n.n)
			}
			h.Parent, parent = int(n.n), true
		case isWord(t, "priority"):
			p.next()
			n := p.num()
			if prio {
				p.fail(t.pos, "priority already set")
			}
			if n.n < 0 || n.n > maxPriority {
				p.fail(n.pos, "invalid priority value: %d", n.n)
			}
			h.Priority, prio = int(n.n), true
		case isWord(t, "ip"):
			p.next()
			p.want("ttl")
			n := p.num()
			if ttl {
				p.fail(t.pos, "ttl value already set")
			}
			if n.n < 0 || n.n > 255 {
				p.fail(n.pos, "invalid ttl value: %d", n.n)
			}
			h.TTL, ttl = int(n.n), true
		default:
			return h
		}
	}
}

func (p *parser) redirect(kw token) {
	n := p.str()
	if p.rdrs[n.s] {
		p.errAt(n.pos, fmt.Sprintf("redirection %s defined twice", n.s))
	}
	if len(n.s) >= 64 {
		p.fail(n.pos, "redirection name truncated: %s", n.s)
	}
	r := &Redirect{Pos: kw.pos, Name: n.s, SessionTimeout: DefaultSessionTimeout}
	p.tablePort = 0
	p.fwdTried, p.lstTried = false, false
	p.wantPunct("{")
	p.optnl()
	for {
		t := p.peek()
		if isP(t, "}") {
			p.next()
			break
		}
		if t.kind == tEOF {
			p.syntax(t)
		}
		if isP(t, "\n") {
			p.next()
			continue
		}
		if !p.recover(true, func() { p.rdrOption(r) }) {
			t := p.peek()
			if !isP(t, "}") {
				if !isP(t, "\n") {
					p.recover(true, func() { p.syntax(t) })
				} else {
					p.next()
				}
			}
		}
	}
	p.rdrs[r.Name] = true
	if r.Forward == nil && !p.fwdTried {
		p.fail(kw.pos, "redirection %s has no table", r.Name)
	}
	if r.Forward == nil || len(r.Listens) == 0 && p.lstTried {
		return
	}
	if len(r.Listens) == 0 {
		p.fail(kw.pos, "redirection %s has no virtual ip", r.Name)
	}
	if r.Backup != nil && r.Backup.Port != r.Forward.Port {
		p.fail(kw.pos, "redirection %s uses two different ports for its table and backup table", r.Name)
	}
	p.cfg.Redirects = append(p.cfg.Redirects, r)
}

func (p *parser) rdrOption(r *Redirect) {
	t := p.next()
	switch {
	case isWord(t, "forward"):
		p.fwdTried = true
		p.want("to")
		p.forward(r, t)
	case isWord(t, "route"):
		p.fail(t.pos, "route to: routing to gateways is not supported (use forward to)")
	case isWord(t, "transparent"):
		p.want("forward")
		p.fail(t.pos, "no transparent forward here")
	case isWord(t, "listen"):
		p.lstTried = true
		p.want("on")
		p.listen(r, t)
	case isWord(t, "disable"):
		r.Disabled = true
	case isWord(t, "sticky-address"):
		r.Sticky = true
	case isWord(t, "match"), isWord(t, "pftag"), isWord(t, "tag"):
		if isWord(t, "match") {
			r.MatchTag = true
			t = p.next()
			if !isWord(t, "pftag") && !isWord(t, "tag") {
				p.syntax(t)
			}
		}
		s := p.str()
		if len(s.s) >= 64 {
			p.fail(s.pos, "redirection tag name truncated: %s", s.s)
		}
		r.Tag = s.s
	case isWord(t, "session"):
		p.want("timeout")
		n := p.num()
		if n.n < 0 {
			p.fail(n.pos, "invalid timeout: %d", n.n)
		}
		if n.n > 1<<31-1 {
			p.fail(n.pos, "timeout too large: %d", n.n)
		}
		r.SessionTimeout = time.Duration(n.n) * time.Second
	case isWord(t, "include"):
		p.include()
		return
	default:
		p.syntax(t)
	}
}

func (p *parser) listen(r *Redirect, kw token) {
	a := p.str()
	l := Listen{Pos: kw.pos, Addr: a.s, Proto: "tcp"}
	if t := p.peek(); isWord(t, "tcp") {
		p.next()
	} else if t.kind == tString && !t.quoted && !keywords[t.s] {
		p.next()
		if t.s != "udp" && t.s != "tcp" && t.s != "sctp" {
			p.fail(t.pos, "invalid protocol: %s", t.s)
		}
		l.Proto = t.s
	}
	if isWord(p.peek(), "port") {
		l.Port = p.port(true)
	}
	if isWord(p.peek(), "interface") {
		p.next()
		l.Interface = p.str().s
	}
	if isWord(p.peek(), "pflog") {
		p.next()
		l.PFLog = true
	}
	if _, err := netip.ParseAddr(a.s); err != nil && !validHostName(a.s) {
		p.fail(a.pos, "invalid virtual ip: %s", a.s)
	}
	r.Listens = append(r.Listens, l)
	if p.tablePort == 0 {
		p.tablePort = l.Port.Lo
	}
}

func validHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, c := range s {
		if !(c == '.' || c == '-' || c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
			return false
		}
	}
	return true
}

// port reads "port N", "port name" or (when ranges) "port a:b".
func (p *parser) port(ranges bool) PortRange {
	p.want("port")
	t := p.next()
	switch t.kind {
	case tNumber:
		if t.n <= 0 || t.n >= 65535 {
			p.fail(t.pos, "invalid port: %d", t.n)
		}
		return PortRange{Lo: uint16(t.n)}
	case tString:
		a, b, isRange := strings.Cut(t.s, ":")
		if isRange && !ranges {
			p.fail(t.pos, "invalid port")
		}
		var pr PortRange
		pr.Lo = p.service(t, a)
		if isRange {
			pr.Hi = p.service(t, b)
		}
		return pr
	}
	p.syntax(t)
	return PortRange{}
}

// service is relayd's getservice: a number or a services(5) name.
func (p *parser) service(t token, s string) uint16 {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 65535 {
			p.fail(t.pos, "invalid port: %s", s)
		}
		return uint16(n)
	}
	if n, ok := netdb.PortByName(s, "tcp"); ok {
		return n
	}
	if n, ok := netdb.PortByName(s, "udp"); ok {
		return n
	}
	p.fail(t.pos, "unknown port %s", s)
	return 0
}

func (p *parser) forward(r *Redirect, kw token) {
	n := p.tableName()
	f := &Forward{Pos: kw.pos, Table: n.s}
	hashKeySet := false
	for {
		t := p.peek()
		switch {
		case isWord(t, "check"):
			p.next()
			if f.Check.Kind != CheckNone {
				p.fail(t.pos, "table %s: check already set", f.Table)
			}
			f.Check = p.check(t)
		case isWord(t, "port"):
			f.Port = p.port(false).Lo
			f.PortSet = true
		case isWord(t, "timeout"):
			p.next()
			f.Timeout = p.timeout()
		case isWord(t, "demote"):
			p.next()
			g := p.str()
			if len(g.s) >= 16 {
				p.fail(g.pos, "yyparse: demote group name too long")
			}
			f.Demote = g.s
		case isWord(t, "interval"):
			p.next()
			iv := p.num()
			g := int64(p.cfg.Interval / time.Second)
			if iv.n < g || iv.n%g != 0 {
				p.fail(iv.pos, "table interval must be divisible by global interval")
			}
			f.Interval = time.Duration(iv.n) * time.Second
		case isWord(t, "mode"):
			p.next()
			hashKeySet = p.mode(f)
		case isWord(t, "interface"):
			p.next()
			s := p.str()
			p.fail(s.pos, "superfluous interface")
		default:
			p.endForward(r, f, hashKeySet)
			return
		}
	}
}

func (p *parser) mode(f *Forward) bool {
	t := p.next()
	switch {
	case isWord(t, "roundrobin"):
		f.Mode = ModeRoundRobin
	case isWord(t, "least-states"):
		f.Mode = ModeLeastStates
	case isWord(t, "source-hash"):
		f.Mode = ModeSourceHash
	case isWord(t, "random"):
		f.Mode = ModeRandom
	case isWord(t, "loadbalance"), isWord(t, "hash"):
		p.fail(t.pos, "mode not supported for redirections")
	default:
		p.syntax(t)
	}
	k := p.peek()
	if k.kind != tString || (!k.quoted && keywords[k.s]) {
		return false
	}
	p.next()
	if f.Mode != ModeSourceHash {
		p.fail(k.pos, "key not supported by mode")
	}
	f.Key = k.s
	if strings.HasPrefix(k.s, "0x") {
		if len(k.s) != 34 {
			p.fail(k.pos, "hex key must be 128 bits (32 hex digits) long")
		}
		for _, c := range k.s[2:] {
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				p.fail(k.pos, "invalid hex key")
			}
		}
	}
	return true
}

func (p *parser) check(kw token) Check {
	c := Check{Pos: kw.pos}
	t := p.next()
	switch {
	case isWord(t, "icmp"):
		c.Kind = CheckICMP
	case isWord(t, "tcp"):
		c.Kind = CheckTCP
	case isWord(t, "tls"):
		c.Kind, c.TLS = CheckTCP, true
	case isWord(t, "http"), t.kind == tString && !keywords[t.s] && !t.quoted:
		if !isWord(t, "http") {
			if t.s != "https" {
				p.fail(t.pos, "invalid check type: %s", t.s)
			}
			c.TLS = true
		}
		c.Path = p.str().s
		if isWord(p.peek(), "host") {
			p.next()
			c.Host = p.str().s
		}
		nt := p.next()
		switch {
		case isWord(nt, "code"):
			n := p.num()
			if n.n <= 0 || n.n > 999 {
				p.fail(n.pos, "invalid HTTP code: %d", n.n)
			}
			c.Kind, c.Code = CheckHTTPCode, int(n.n)
		case isWord(nt, "digest"):
			d := p.str()
			switch len(d.s) {
			case 40:
			case 32:
				c.MD5 = true
			default:
				p.fail(d.pos, "invalid http digest")
			}
			c.Kind, c.Digest = CheckHTTPDigest, strings.ToLower(d.s)
		default:
			p.syntax(nt)
		}
	case isWord(t, "send"):
		c.Kind = CheckSendExpect
		if isWord(p.peek(), "nothing") {
			p.next()
		} else {
			c.Send = p.str().s
		}
		p.want("expect")
		e := p.str()
		if len(e.s) >= 4096 {
			p.fail(e.pos, "yyparse: expect buffer truncated")
		}
		c.Expect = translateString(e.s)
		if isWord(p.peek(), "tls") {
			p.next()
			c.TLS = true
		}
	case isWord(t, "binary"):
		p.fail(t.pos, "binary send: binary send/expect checks are not supported")
	case isWord(t, "script"):
		s := p.str()
		if len(s.s) >= 1024 {
			p.fail(s.pos, "script path truncated")
		}
		c.Kind, c.Path = CheckScript, s.s
	default:
		p.syntax(t)
	}
	return c
}

// translateString is relayd's translate_string (util.c): \n, \r and \\
// escapes become the characters, other escapes are kept as written.
func translateString(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			switch s[i+1] {
			case 'n':
				b.WriteByte('\n')
				i++
				continue
			case 'r':
				b.WriteByte('\r')
				i++
				continue
			case '\\':
				b.WriteByte('\\')
				i++
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// endForward applies relayd's checks of rdroptsl's forward rule and
// table_inherit.
func (p *parser) endForward(r *Redirect, f *Forward, _ bool) {
	td, ok := p.tables[f.Table]
	if !ok {
		p.fail(f.Pos, "unknown table %s", f.Table)
	}
	if f.Port == 0 {
		f.Port = p.tablePort
	}
	if f.Port == 0 {
		p.fail(f.Pos, "unspecified port for table %s", f.Table)
	}
	if f.Check.Kind == CheckNone {
		p.fail(f.Pos, "table %s has no check", f.Table)
	}
	if r.Backup != nil {
		p.fail(f.Pos, "only one backup table is allowed")
	}
	if r.Forward != nil {
		if f.Mode != r.Forward.Mode {
			p.fail(f.Pos, "backup table for %s with different mode", r.Name)
		}
		r.Backup = f
	} else {
		r.Forward = f
	}
	f.Instance = p.instance(td, f)
}

func (p *parser) instance(td *TableDef, f *Forward) *Table {
	to := f.Timeout
	if to == 0 {
		to = td.timeout
	}
	skip := 0
	if f.Interval > 0 {
		skip = int(f.Interval/p.cfg.Interval) - 1
	}
	t := &Table{Name: td.Name, Port: f.Port, Check: f.Check, Timeout: to, Skip: skip,
		Disabled: td.Disabled, Demote: f.Demote}
	for _, old := range p.cfg.Instances {
		if sameTable(old, t) {
			return old
		}
	}
	p.lastTable++
	t.ID = p.lastTable
	for _, hd := range td.Hosts {
		p.lastHost++
		t.Hosts = append(t.Hosts, &Host{ID: p.lastHost, Name: hd.Name, Addr: hd.Addr,
			Retry: hd.Retry, ParentID: hd.Parent, Priority: hd.Priority, TTL: hd.TTL, Pos: hd.Pos})
	}
	p.cfg.Instances = append(p.cfg.Instances, t)
	return t
}

func sameTable(a, b *Table) bool {
	ca, cb := a.Check, b.Check
	ca.Pos, cb.Pos = Pos{}, Pos{}
	return a.Name == b.Name && a.Port == b.Port && ca == cb && a.Timeout == b.Timeout &&
		a.Skip == b.Skip && a.Demote == b.Demote
}

// finish is load_config's checks after the parse.
func (p *parser) finish() {
	c := p.cfg
	if len(c.Redirects) == 0 {
		p.errAt(Pos{File: p.lx.files[0].name}, "no actions, nothing to do")
	}
	if c.Timeout >= c.Interval {
		p.errAt(Pos{File: p.lx.files[0].name}, "global timeout exceeds interval")
	}
	hosts := map[int]*Host{}
	for _, t := range c.Instances {
		for _, h := range t.Hosts {
			hosts[h.ID] = h
		}
	}
	for _, t := range c.Instances {
		for _, h := range t.Hosts {
			if h.ParentID == 0 {
				continue
			}
			ph := hosts[h.ParentID]
			if h.ID == h.ParentID || ph == nil || ph.ParentID != 0 {
				p.errAt(h.Pos, fmt.Sprintf("host parent id %d invalid", h.ParentID))
			}
		}
		if t.Timeout >= c.Interval {
			p.errAt(Pos{File: p.lx.files[0].name}, "table timeout exceeds interval: "+t.Name)
		}
	}
}
