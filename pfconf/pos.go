package pfconf

import "sort"

// Pos is a compact source position: a byte offset into the concatenation of
// every source a parse has read (main file, includes, -D macros), plus one.
// The zero Pos is "no position". A Pos means something only together with
// the Sources that produced it; Sources.Position turns it into file:line:col.
type Pos int

// NoPos is the zero Pos.
const NoPos Pos = 0

// IsValid reports whether p is a real position.
func (p Pos) IsValid() bool { return p != NoPos }

// source is one file (or pseudo-file) read during a parse.
type source struct {
	name  string
	base  int // Pos of the first byte
	size  int
	lines []int // offsets of line starts, computed lazily
}

// Sources records every source a parse read, so that positions can be
// reported as file:line:col. It is not safe for concurrent mutation; once a
// parse has returned it is read-only and safe for concurrent use.
type Sources struct {
	files []*source
	next  int
}

// add registers a source of the given size and returns it with its base.
func (s *Sources) add(name string, src []byte) *source {
	if s.next == 0 {
		s.next = 1
	}
	f := &source{name: name, base: s.next, size: len(src)}
	f.lines = append(f.lines, 0)
	for i, c := range src {
		if c == '\n' {
			f.lines = append(f.lines, i+1)
		}
	}
	s.files = append(s.files, f)
	s.next += len(src) + 1 // +1 so that EOF has its own position
	return f
}

// pos returns the Pos of byte offset off in f.
func (f *source) pos(off int) Pos { return Pos(f.base + off) }

// Position resolves p. It returns the zero Position for NoPos or an unknown
// position.
func (s *Sources) Position(p Pos) Position {
	if s == nil || p == NoPos {
		return Position{}
	}
	i := sort.Search(len(s.files), func(i int) bool { return s.files[i].base > int(p) }) - 1
	if i < 0 {
		return Position{}
	}
	f := s.files[i]
	off := int(p) - f.base
	if off > f.size {
		return Position{}
	}
	l := sort.Search(len(f.lines), func(i int) bool { return f.lines[i] > off }) - 1
	return Position{Filename: f.name, Line: l + 1, Column: off - f.lines[l] + 1}
}
