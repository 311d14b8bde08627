package compile

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/pfcarp/pfcarp/internal/bsdhost"
	"github.com/pfcarp/pfcarp/internal/testenv"
	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/nft/nfttest"
	"github.com/pfcarp/pfcarp/pfconf"
)

// corpusRatchet is how many files of pfconf's pfctl corpus compile and
// load; it may only go up.
const corpusRatchet = 56

// TestKernelCorpus compiles every file of the pfctl corpus (pfconf's
// testdata) on the corpus's FreeBSD host: what compiles must load into
// the kernel, what does not must be refused (never a panic), and at least
// corpusRatchet files load.
func TestKernelCorpus(t *testing.T) {
	testenv.RequireRoot(t)
	dir := filepath.Join("..", "pfconf", "testdata", "conformance")
	files, err := filepath.Glob(filepath.Join(dir, "*.in"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus in %s: %v", dir, err)
	}
	host := bsdhost.Static()
	ns := nfttest.New(t, "hk-corpus")
	conn := nft.Open(nft.WithNetNS(ns.FD()), nft.WithHost(host))
	loaded, refused := 0, 0
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		pf, err := pfconf.Parse(filepath.Base(f), src, pfconf.ParseOptions{ReadFile: func(p string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, p)) }})
		if err != nil {
			continue // a case pfctl refuses too
		}
		rs, err := pfconf.Expand(pf, host)
		if err != nil {
			continue
		}
		prog, err := Compile(rs, Options{RuleText: RuleTexts(rs), Host: host})
		if err != nil {
			if _, ok := err.(*pfconf.ErrorList); !ok {
				t.Errorf("%s: Compile error is %T", f, err)
			}
			refused++
			continue
		}
		if err := conn.Load(prog); err != nil {
			t.Errorf("%s: compiled, but the kernel refused it: %v", f, err)
			continue
		}
		loaded++
	}
	t.Logf("%d of %d files compile and load, %d refused", loaded, len(files), refused)
	if loaded < corpusRatchet {
		t.Errorf("%d files load, the ratchet is %d", loaded, corpusRatchet)
	}
}
