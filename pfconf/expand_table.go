package pfconf

import (
	"strings"
)

// table resolves a table definition.
func (e *expander) table(s *TableStmt) Decl {
	d := &TableDecl{Pos: s.P, Name: s.Name, Const: s.Const, Persist: s.Persist, Counters: s.Counters, InitAddr: s.InitAddr}
	ok := true
	for _, ti := range s.Inits {
		if ti.File != "" {
			entries, good := e.tableFile(ti)
			if !good {
				ok = false
				continue
			}
			d.Inits = append(d.Inits, TableInit{File: ti.File})
			d.Entries = append(d.Entries, entries...)
			continue
		}
		hs, good := e.resolve(ti.Hosts)
		if !good {
			ok = false
			continue
		}
		var entries []TableEntry
		for _, h := range hs {
			switch h.addr.Type {
			case AddrMask, AddrRange:
			default:
				e.errorf(h.pos, "invalid address in table <%s>", s.Name)
				ok = false
				continue
			}
			entries = append(entries, TableEntry{Neg: h.not, AF: h.af, Addr: h.addr})
		}
		d.Inits = append(d.Inits, TableInit{Entries: entries})
		d.Entries = append(d.Entries, entries...)
	}
	if !ok {
		return nil
	}
	return d
}

// tableFile reads a table file: addresses separated by blanks, comments
// from '#' or ';' to the end of the line.
func (e *expander) tableFile(ti TableInitItem) ([]TableEntry, bool) {
	src, err := e.f.readFile(ti.File)
	if err != nil {
		e.errorf(ti.P, "cannot load \"%s\": %s", ti.File, strerror(err))
		return nil, false
	}
	var entries []TableEntry
	for _, line := range strings.Split(string(src), "\n") {
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		for _, w := range strings.Fields(line) {
			not := strings.HasPrefix(w, "!")
			w = strings.TrimPrefix(w, "!")
			h, ok := e.tableWord(ti.P, w)
			if !ok {
				e.errorf(ti.P, "file \"%s\" contains bad data", ti.File)
				return nil, false
			}
			for _, x := range h {
				entries = append(entries, TableEntry{Neg: not, AF: x.af, Addr: x.addr})
			}
		}
	}
	return entries, true
}

// tableWord classifies and resolves one word of a table file.
func (e *expander) tableWord(pos Pos, w string) ([]rhost, bool) {
	var p parser
	p.srcs = e.f.Sources
	var h HostItem
	func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(bailout); !ok {
					panic(r)
				}
			}
		}()
		h = p.hostString(pos, w, pos)
	}()
	if p.errs.Len() > 0 || h.Kind == HostAddr && !h.Addr.IsValid() && h.Name == "" {
		return nil, false
	}
	sub := &expander{f: e.f, host: e.host}
	hs, ok := sub.resolveOne(h)
	return hs, ok && len(hs) > 0
}
