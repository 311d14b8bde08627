package compile

import (
	"testing"
	"time"
)

// The compiler takes "set timeout src.track" and "set limit src-nodes"
// from the ruleset's typed options; Options.StickyTimeout overrides.
func TestSetOptionsTyped(t *testing.T) {
	for _, tc := range []struct {
		src    string
		opt    time.Duration
		sticky time.Duration
		nodes  uint32
	}{
		{"pass all\n", 0, DefaultStickyTimeout, DefaultSrcNodes},
		{"set timeout src.track 30\nset limit src-nodes 500\n", 0, 30 * time.Second, 500},
		{"set timeout { tcp.first 10, src.track 45 }\nset limit { states 100, src-nodes 7 }\n", 0, 45 * time.Second, 7},
		{"set timeout src.track 30\nset timeout src.track 60\n", 0, 60 * time.Second, DefaultSrcNodes},
		{"set timeout src.track 0\nset limit src-nodes 0\n", 0, DefaultStickyTimeout, DefaultSrcNodes},
		{"set timeout src.track 30\n", 5 * time.Second, 5 * time.Second, DefaultSrcNodes},
	} {
		c := &compiler{rs: ruleset(t, tc.src), opts: Options{StickyTimeout: tc.opt}}
		if got := c.stickyTimeout(); got != tc.sticky {
			t.Errorf("%q: sticky timeout %v, want %v", tc.src, got, tc.sticky)
		}
		if got := c.srcNodes(); got != tc.nodes {
			t.Errorf("%q: src nodes %d, want %d", tc.src, got, tc.nodes)
		}
	}
}
