package cli

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// failAfter accepts n bytes, then fails every write.
type failAfter struct {
	n   int
	got strings.Builder
}

var errFull = errors.New("no space left on device")

func (f *failAfter) Write(b []byte) (int, error) {
	if f.got.Len()+len(b) > f.n {
		return 0, errFull
	}
	return f.got.Write(b)
}

func TestStickyWriterKeepsTheFirstError(t *testing.T) {
	dst := &failAfter{n: 6}
	w := &stickyWriter{w: dst}
	fmt.Fprintf(w, "one\n")
	fmt.Fprintf(w, "two\n") // fails: 8 bytes > 6
	dst.n = 100             // the device has room again: later writes still fail
	fmt.Fprintf(w, "three\n")
	if !errors.Is(w.err, errFull) || dst.got.String() != "one\n" {
		t.Fatalf("err %v, written %q; want %v and only the first line", w.err, dst.got.String(), errFull)
	}
}
