package pfconf

import (
	"strings"
	"testing"

	"github.com/pfcarp/pfcarp/internal/bsdhost"
)

// checkCase is one input that pfctl rejects and the line it prints for it,
// "LINE: message" (pfctl's "file:LINE: message" without the file name).
type checkCase struct {
	name, src, want string
}

func runCheckCases(t *testing.T, cases []checkCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, serr, failed := runPfctl("checks.conf", []byte(c.src), bsdhost.Static(), nil)
			if !failed {
				t.Fatalf("accepted, want %q; output:\n%s", c.want, out)
			}
			want := "checks.conf:" + c.want + "\n"
			if !strings.Contains(serr, want) {
				t.Fatalf("stderr:\n%swant the line %q", serr, strings.TrimSuffix(want, "\n"))
			}
		})
	}
}
