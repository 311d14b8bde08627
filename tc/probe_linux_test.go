package tc

import (
	"testing"

	"github.com/pfcarp/pfcarp/internal/testenv"
)

// TestProbe asks the running kernel; HTB and FIFO are in every kernel
// pfcarp supports, the others are reported as they are.
func TestProbe(t *testing.T) {
	testenv.RequireRoot(t)
	has, err := Probe()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{HTB, HFSC, FqCodel, Pfifo} {
		t.Logf("%s: %v", k, has(k))
	}
	if !has(HTB) || !has(Pfifo) {
		t.Fatalf("HTB %v, pfifo %v: want both", has(HTB), has(Pfifo))
	}
}
