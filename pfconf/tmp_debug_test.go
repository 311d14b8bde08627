package pfconf

import (
	"fmt"
	"os"
	"testing"

	"github.com/pfcarp/pfcarp/internal/bsdhost"
)

func TestTmpDebug(t *testing.T) {
	b, err := os.ReadFile(os.Getenv("PFCONF_FILE"))
	if err != nil {
		t.Skip()
	}
	out, serr, _ := runPfctl("t.conf", b, bsdhost.Static(), nil)
	fmt.Print(out, serr)
}
