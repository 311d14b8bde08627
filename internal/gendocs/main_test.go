package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestDocsUpToDate fails when a page under docs/ differs from what the code
// says (run `go run ./internal/gendocs` from the repository root).
func TestDocsUpToDate(t *testing.T) {
	root := filepath.Join("..", "..")
	pages, err := generate(root)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range pages {
		got, err := os.ReadFile(filepath.Join(root, "docs", name))
		if err != nil {
			t.Errorf("docs/%s: %v (run `go run ./internal/gendocs`)", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("docs/%s is out of date: run `go run ./internal/gendocs` from the repository root", name)
		}
	}
	if len(pages["config.md"]) < 500 || !bytes.Contains(pages["config.md"], []byte("`pfcarp_metrics`")) {
		t.Errorf("config.md lacks the key table:\n%s", pages["config.md"])
	}
}
