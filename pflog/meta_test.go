package pflog

import (
	"strings"
	"testing"
)

func TestFormatPrefix(t *testing.T) {
	tests := []struct {
		m    Meta
		want string
	}{
		{Meta{Rule: 3, Action: ActionBlock, Dir: DirIn}, "pf:3/0:block:in"},
		{Meta{Rule: 0}, "pf:0/0:pass:in/out"},
		{Meta{Rule: 12, Anchor: "web", SubRule: 2, Action: ActionPass, Dir: DirOut, RIdentifier: 4711}, "pf:12.web.2/0:pass:out:4711"},
		{Meta{Rule: 7, Reason: ReasonStateMismatch, Action: ActionBlock, Dir: DirIn}, "pf:7/10:block:in"},
		{Meta{Rule: 1, Action: ActionMatch, Dir: DirOut}, "pf:1/0:match:out"},
		// Values without a name are written in decimal.
		{Meta{Rule: 1, Action: 200, Dir: 9, Reason: 255}, "pf:1/255:200:9"},
		// SubRule without an anchor is not encoded.
		{Meta{Rule: 5, SubRule: 9, Action: ActionRdr, Dir: DirIn}, "pf:5/0:rdr:in"},
		// Bytes an anchor may not hold become '_'; the anchor is cut to 15.
		{Meta{Rule: 1, Anchor: "a.b/c:d e", Dir: DirIn}, "pf:1.a_b_c_d_e.0/0:pass:in"},
		{Meta{Rule: 1, Anchor: "abcdefghijklmnopqrstuvwxyz", Dir: DirIn}, "pf:1.abcdefghijklmno.0/0:pass:in"},
	}
	for _, tt := range tests {
		got := FormatPrefix(tt.m)
		if got != tt.want {
			t.Errorf("FormatPrefix(%+v) = %q, want %q", tt.m, got, tt.want)
		}
		m, ok := ParsePrefix(got)
		if !ok {
			t.Errorf("ParsePrefix(%q) failed", got)
			continue
		}
		want := expectedRoundTrip(tt.m, m.Anchor)
		if m != want {
			t.Errorf("ParsePrefix(%q) = %+v, want %+v", got, m, want)
		}
	}
}

// expectedRoundTrip is what ParsePrefix(FormatPrefix(m)) must return, given
// the anchor it returned (checked separately to be a sanitised prefix of
// m.Anchor).
func expectedRoundTrip(m Meta, gotAnchor string) Meta {
	m = m.Canonical()
	if m.Anchor != "" {
		m.Anchor = gotAnchor
	}
	return m
}

func TestFormatPrefixWorstCaseFits(t *testing.T) {
	m := Meta{
		Rule: 4294967295, Anchor: "longest-anchor-name", SubRule: 4294967295,
		Reason: ReasonStateMismatch, Action: ActionSynproxyDrop, Dir: DirInOut,
		RIdentifier: 4294967295,
	}
	got := FormatPrefix(m)
	if len(got) > MaxPrefixLen {
		t.Fatalf("FormatPrefix = %q (%d bytes), longer than %d", got, len(got), MaxPrefixLen)
	}
	const want = "pf:4294967295.lon.4294967295/10:synproxy-drop:in/out:4294967295"
	if got != want {
		t.Fatalf("FormatPrefix = %q, want %q", got, want)
	}
	back, ok := ParsePrefix(got)
	if !ok || back.Anchor != "lon" || back.SubRule != m.SubRule || back.RIdentifier != m.RIdentifier {
		t.Fatalf("ParsePrefix(%q) = %+v, %v", got, back, ok)
	}
}

func TestParsePrefixRejects(t *testing.T) {
	bad := []string{
		"",
		"pf:",
		"pf:3",
		"pf:3/0:block",                      // no direction
		"pf:3/0:block:in:5:6",               // too many fields
		"PF:3/0:block:in",                   // magic is case-sensitive
		"pfx3/0:block:in",                   // wrong magic
		"pf:03/0:block:in",                  // leading zero
		"pf:-3/0:block:in",                  // sign
		"pf:+3/0:block:in",                  // sign
		"pf:4294967296/0:block:in",          // overflows uint32
		"pf:3/256:block:in",                 // reason is a byte
		"pf:3/x:block:in",                   // reason is a number
		"pf:3/0:drop:in",                    // pf calls it block
		"pf:3/0:1:in",                       // action 1 has a name
		"pf:3/0:block:1",                    // direction 1 has a name
		"pf:3/0:block:sideways",             // unknown direction
		"pf:3/0:block:in:0",                 // rid 0 is written by omission
		"pf:3/0:block:in:",                  // empty rid
		"pf:3./0:block:in",                  // anchor without sub rule
		"pf:3..1/0:block:in",                // empty anchor
		"pf:3.web/0:block:in",               // anchor without sub rule
		"pf:3.web.1.2/0:block:in",           // dot in sub rule
		"pf:3.we b.1/0:block:in",            // space in anchor
		"pf:3.abcdefghijklmnop.1/0:pass:in", // 16-byte anchor
		"pf:3/0:block:in\x00",               // NUL
		"ulogd: something else",
	}
	for _, s := range bad {
		if m, ok := ParsePrefix(s); ok {
			t.Errorf("ParsePrefix(%q) = %+v, true; want false", s, m)
		}
	}
}

func TestNamesMatchTcpdump(t *testing.T) {
	// tcpdump's print-pflog.c names (its Linux build stops at 10 for
	// actions and 14 for reasons).
	actions := []string{"pass", "block", "scrub", "noscrub", "nat", "nonat", "binat", "nobinat", "rdr", "nordr", "synproxy-drop"}
	for i, n := range actions {
		if got := Action(i).String(); got != n {
			t.Errorf("Action(%d) = %q, want %q", i, got, n)
		}
	}
	reasons := []string{"match", "bad-offset", "fragment", "short", "normalize", "memory", "bad-timestamp", "congestion", "ip-option", "proto-cksum", "state-mismatch", "state-insert", "state-limit", "src-limit", "synproxy"}
	for i, n := range reasons {
		if got := Reason(i).String(); got != n {
			t.Errorf("Reason(%d) = %q, want %q", i, got, n)
		}
	}
	for i, n := range []string{"in/out", "in", "out"} {
		if got := Direction(i).String(); got != n {
			t.Errorf("Direction(%d) = %q, want %q", i, got, n)
		}
	}
}

// FuzzParsePrefix checks that ParsePrefix never panics and that every string
// it accepts is the canonical spelling FormatPrefix produces.
func FuzzParsePrefix(f *testing.F) {
	for _, s := range []string{
		"pf:3/0:block:in",             // the example
		"pf:12.web.2/0:pass:out:4711", // anchor and ridentifier
		"pf:1/255:200:9",              // unnamed values
		"pf:4294967295.lo.4294967295/10:synproxy-drop:in/out:4294967295", // longest
		"pf:3/0:block:in:0",  // rejected: rid 0
		"pf:03/0:block:in",   // rejected: leading zero
		"pf:3.a.b.c/0:x:y:z", // rejected: garbage fields
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, ok := ParsePrefix(s)
		if !ok {
			return
		}
		if m.Anchor == "" && m.SubRule != 0 {
			t.Fatalf("ParsePrefix(%q) = %+v: sub rule without anchor", s, m)
		}
		out := FormatPrefix(m)
		if len(s) <= MaxPrefixLen && out != s {
			t.Fatalf("FormatPrefix(ParsePrefix(%q)) = %q", s, out)
		}
		back, ok := ParsePrefix(out)
		if !ok || back != expectedRoundTrip(m, back.Anchor) || !strings.HasPrefix(m.Anchor, back.Anchor) {
			t.Fatalf("ParsePrefix(%q) = %+v, %v; from %+v", out, back, ok, m)
		}
	})
}

// FuzzFormatPrefix checks FormatPrefix's length bound and round trip for
// arbitrary Metas.
func FuzzFormatPrefix(f *testing.F) {
	f.Add(uint32(3), "", uint32(0), uint8(0), uint8(1), uint8(1), uint32(0))
	f.Add(uint32(4294967295), "longest-anchor-name", uint32(4294967295), uint8(10), uint8(10), uint8(0), uint32(4294967295))
	f.Add(uint32(1), "a.b/c:d\x00\xff", uint32(7), uint8(255), uint8(255), uint8(255), uint32(1))
	f.Fuzz(func(t *testing.T, rule uint32, anchor string, sub uint32, reason, action, dir uint8, rid uint32) {
		m := Meta{Rule: rule, Anchor: anchor, SubRule: sub, Reason: Reason(reason), Action: Action(action), Dir: Direction(dir), RIdentifier: rid}
		s := FormatPrefix(m)
		if len(s) > MaxPrefixLen {
			t.Fatalf("FormatPrefix(%+v) = %q: %d bytes", m, s, len(s))
		}
		back, ok := ParsePrefix(s)
		if !ok {
			t.Fatalf("ParsePrefix(FormatPrefix(%+v) = %q) failed", m, s)
		}
		if back != expectedRoundTrip(m, back.Anchor) {
			t.Fatalf("round trip of %+v via %q = %+v", m, s, back)
		}
		if anchor != "" {
			if back.Anchor == "" || len(back.Anchor) > maxAnchorLen || len(back.Anchor) > len(anchor) {
				t.Fatalf("anchor %q came back as %q", anchor, back.Anchor)
			}
			for i := 0; i < len(back.Anchor); i++ {
				if c := anchor[i]; anchorByte(c) && back.Anchor[i] != c || !anchorByte(c) && back.Anchor[i] != '_' {
					t.Fatalf("anchor %q came back as %q", anchor, back.Anchor)
				}
			}
		}
	})
}
