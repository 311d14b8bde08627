package seed

import (
	"bytes"
	"os"
	"testing"
)

// The embedded files are the ones in this directory, byte for byte.
func TestEmbeddedMatchDisk(t *testing.T) {
	for _, name := range append(Names(), "README.md") {
		got, err := ReadFile(name)
		if err != nil {
			t.Fatalf("ReadFile(%q): %v", name, err)
		}
		want, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: embedded copy differs from the file on disk", name)
		}
	}
	if _, err := ReadFile("nope"); err == nil {
		t.Error("ReadFile of a missing file: no error")
	}
}
