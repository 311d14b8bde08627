package daemon

import (
	"testing"

	"github.com/pfcarp/pfcarp/compile"
)

// The packet-mark bits of DESIGN.md section 9 do not overlap: each owner
// sets and clears its own without touching another's.
func TestMarkBitsDisjoint(t *testing.T) {
	owners := []struct {
		name string
		bits uint32
	}{
		{"compile.MetaMarkRouteMask", compile.MetaMarkRouteMask},
		{"compile.MetaMarkSynproxy", compile.MetaMarkSynproxy},
		{"compile.MetaMarkDivert", compile.MetaMarkDivert},
		{"daemon.LiveMark", LiveMark},
	}
	for i, a := range owners {
		for _, b := range owners[i+1:] {
			if a.bits&b.bits != 0 {
				t.Errorf("%s (%#08x) and %s (%#08x) share bits %#08x", a.name, a.bits, b.name, b.bits, a.bits&b.bits)
			}
		}
	}
}
