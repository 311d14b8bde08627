package config

import (
	"io/fs"
	"os"
)

var errNoFS = &fs.PathError{Op: "open", Path: "-", Err: fs.ErrNotExist}

func mustRead(t interface {
	Helper()
	Fatal(...any)
}, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
