package pflog

import (
	"strconv"
	"strings"
)

// Action is a pf rule action as the BSD kernels number it (pfvar.h PF_PASS,
// PF_DROP, ...); it is the pflog header's action byte.
type Action uint8

// Action values shared by FreeBSD and OpenBSD. tcpdump built on Linux names
// 0 through 10; it prints the others as unkn(N).
const (
	ActionPass         Action = 0
	ActionBlock        Action = 1 // PF_DROP
	ActionScrub        Action = 2
	ActionNoScrub      Action = 3
	ActionNAT          Action = 4
	ActionNoNAT        Action = 5
	ActionBinat        Action = 6
	ActionNoBinat      Action = 7
	ActionRdr          Action = 8
	ActionNoRdr        Action = 9
	ActionSynproxyDrop Action = 10
	ActionDefer        Action = 11
	ActionMatch        Action = 12
)

var actionNames = [...]string{
	ActionPass:         "pass",
	ActionBlock:        "block",
	ActionScrub:        "scrub",
	ActionNoScrub:      "noscrub",
	ActionNAT:          "nat",
	ActionNoNAT:        "nonat",
	ActionBinat:        "binat",
	ActionNoBinat:      "nobinat",
	ActionRdr:          "rdr",
	ActionNoRdr:        "nordr",
	ActionSynproxyDrop: "synproxy-drop",
	ActionDefer:        "defer",
	ActionMatch:        "match",
}

// String returns the name tcpdump prints for a, or the decimal value when a
// has no name.
func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return strconv.Itoa(int(a))
}

// Reason is pf's reason code (pfvar.h PFRES_*), the pflog header's reason
// byte. Rules that log a packet they matched use ReasonMatch.
type Reason uint8

// Reason values shared by the BSDs, plus FreeBSD's 15.
const (
	ReasonMatch         Reason = 0
	ReasonBadOffset     Reason = 1
	ReasonFragment      Reason = 2
	ReasonShort         Reason = 3
	ReasonNormalize     Reason = 4
	ReasonMemory        Reason = 5
	ReasonBadTimestamp  Reason = 6
	ReasonCongestion    Reason = 7
	ReasonIPOption      Reason = 8
	ReasonProtoChecksum Reason = 9
	ReasonStateMismatch Reason = 10
	ReasonStateInsert   Reason = 11
	ReasonStateLimit    Reason = 12
	ReasonSrcLimit      Reason = 13
	ReasonSynproxy      Reason = 14
	ReasonMapFailed     Reason = 15 // FreeBSD only
)

var reasonNames = [...]string{
	"match", "bad-offset", "fragment", "short", "normalize", "memory",
	"bad-timestamp", "congestion", "ip-option", "proto-cksum",
	"state-mismatch", "state-insert", "state-limit", "src-limit", "synproxy",
	"map-failed",
}

// String returns pf's name for r ("match", "state-mismatch", ...) or the
// decimal value when r has no name.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return strconv.Itoa(int(r))
}

// Direction is the direction a pf rule matched in (pfvar.h PF_INOUT, PF_IN,
// PF_OUT), the pflog header's dir byte.
type Direction uint8

// Direction values.
const (
	DirInOut Direction = 0 // a rule without "in" or "out"
	DirIn    Direction = 1
	DirOut   Direction = 2
)

var dirNames = [...]string{DirInOut: "in/out", DirIn: "in", DirOut: "out"}

// String returns tcpdump's name for d ("in", "out", "in/out") or the decimal
// value when d has no name.
func (d Direction) String() string {
	if int(d) < len(dirNames) {
		return dirNames[d]
	}
	return strconv.Itoa(int(d))
}

// Meta is what a logged packet carries from the pf rule that logged it: the
// fields of the pflog header that the kernel cannot know. The zero value is
// rule 0 of the main ruleset, passing, reason match, direction in/out.
type Meta struct {
	// Rule is the rule number tcpdump prints after "rule" (pfctl -vvsr's @N):
	// the number in the main ruleset, or of the anchor rule when Anchor is
	// set.
	Rule uint32
	// Anchor is the name of the anchor whose rule logged, "" for the main
	// ruleset. The BSD header has 16 bytes for it (15 and a NUL);
	// FormatPrefix may shorten it further, see there.
	Anchor string
	// SubRule is the rule number inside Anchor; meaningful iff Anchor != "".
	SubRule uint32
	Reason  Reason
	Action  Action
	Dir     Direction
	// RIdentifier is FreeBSD's per-rule `ridentifier N`; 0 means none.
	RIdentifier uint32
}

// Canonical returns m with the fields the prefix encoding drops cleared:
// SubRule when there is no anchor. Two Metas with equal Canonical forms log
// identically.
func (m Meta) Canonical() Meta {
	if m.Anchor == "" {
		m.SubRule = 0
	}
	return m
}

// MaxPrefixLen is the longest prefix FormatPrefix returns: the 64-byte
// prefix of xt_NFLOG less its NUL (nftables allows 127, so both fit).
const MaxPrefixLen = 63

// maxAnchorLen is PFLOG_RULESET_NAME_SIZE less the NUL.
const maxAnchorLen = 15

// prefixMagic starts every pfcarp pflog prefix; a packet on the group whose
// prefix lacks it did not come from a pfcarp rule.
const prefixMagic = "pf:"

// FormatPrefix encodes m as an NFLOG prefix for the compiler's
// `log group N prefix P` expression. The grammar mirrors what tcpdump prints
// for the same packet ("rule 3/0(match): block in"):
//
//	prefix  = "pf:" rule [ "." anchor "." subrule ] "/" reason ":" action ":" dir [ ":" rid ]
//	rule, subrule, rid = decimal uint32, no sign, no leading zeros
//	reason  = decimal 0-255 (pf's PFRES_* number)
//	action  = name from Action.String ("pass", "block", "match", ...) or decimal 0-255
//	dir     = "in" | "out" | "in/out" or decimal 0-255
//	anchor  = 1-15 bytes of printable ASCII (0x21-0x7e) other than '.', '/' and ':'
//
// The ":rid" part is present iff RIdentifier != 0; the anchor part iff
// Anchor != "". Examples:
//
//	pf:3/0:block:in
//	pf:12.web.2/0:pass:out:4711
//
// The result is never longer than MaxPrefixLen bytes. To get there
// FormatPrefix replaces bytes an anchor may not contain with '_' and cuts the
// anchor to 15 bytes (the BSD kernels cut it the same way into the header),
// and further only when every number is near its 32-bit maximum; the cut
// anchor keeps at least one byte.
func FormatPrefix(m Meta) string {
	return string(AppendPrefix(make([]byte, 0, MaxPrefixLen), m))
}

// AppendPrefix appends FormatPrefix(m) to b.
func AppendPrefix(b []byte, m Meta) []byte {
	start := len(b)
	b = append(b, prefixMagic...)
	b = strconv.AppendUint(b, uint64(m.Rule), 10)
	// Build the tail first so the anchor gets whatever room is left.
	var tail [48]byte
	t := append(tail[:0], '/')
	t = strconv.AppendUint(t, uint64(m.Reason), 10)
	t = append(t, ':')
	t = append(t, m.Action.String()...)
	t = append(t, ':')
	t = append(t, m.Dir.String()...)
	if m.RIdentifier != 0 {
		t = append(t, ':')
		t = strconv.AppendUint(t, uint64(m.RIdentifier), 10)
	}
	if m.Anchor != "" {
		var sub [10]byte
		s := strconv.AppendUint(sub[:0], uint64(m.SubRule), 10)
		room := MaxPrefixLen - (len(b) - start) - len(t) - len(s) - 2
		room = min(room, maxAnchorLen, len(m.Anchor))
		room = max(room, 1) // unreachable bound: the worst case leaves 2
		b = append(b, '.')
		for i := range room {
			c := m.Anchor[i]
			if !anchorByte(c) {
				c = '_'
			}
			b = append(b, c)
		}
		b = append(b, '.')
		b = append(b, s...)
	}
	return append(b, t...)
}

func anchorByte(c byte) bool {
	return c > 0x20 && c < 0x7f && c != '.' && c != '/' && c != ':'
}

// ParsePrefix decodes a prefix written by FormatPrefix. It reports false for
// any other string, including prefixes of other log rules sharing the group;
// it never panics, whatever the input.
func ParsePrefix(s string) (Meta, bool) {
	var m Meta
	rest, ok := strings.CutPrefix(s, prefixMagic)
	if !ok {
		return Meta{}, false
	}
	head, tail, ok := strings.Cut(rest, "/")
	if !ok {
		return Meta{}, false
	}
	// head: rule [ "." anchor "." subrule ]
	ruleStr, anch, hasAnchor := strings.Cut(head, ".")
	if m.Rule, ok = parseUint32(ruleStr); !ok {
		return Meta{}, false
	}
	if hasAnchor {
		name, sub, ok := strings.Cut(anch, ".")
		if !ok || name == "" || len(name) > maxAnchorLen {
			return Meta{}, false
		}
		for i := 0; i < len(name); i++ {
			if !anchorByte(name[i]) {
				return Meta{}, false
			}
		}
		if m.SubRule, ok = parseUint32(sub); !ok {
			return Meta{}, false
		}
		m.Anchor = name
	}
	// tail: reason ":" action ":" dir [ ":" rid ]
	fields := strings.Split(tail, ":")
	if len(fields) != 3 && len(fields) != 4 {
		return Meta{}, false
	}
	r, ok := parseUint32(fields[0])
	if !ok || r > 0xff {
		return Meta{}, false
	}
	m.Reason = Reason(r)
	a, ok := parseName(fields[1], actionNames[:])
	if !ok {
		return Meta{}, false
	}
	m.Action = Action(a)
	d, ok := parseName(fields[2], dirNames[:])
	if !ok {
		return Meta{}, false
	}
	m.Dir = Direction(d)
	if len(fields) == 4 {
		// FormatPrefix writes the rid only when it is not 0.
		if m.RIdentifier, ok = parseUint32(fields[3]); !ok || m.RIdentifier == 0 {
			return Meta{}, false
		}
	}
	return m, true
}

// parseName accepts a name from names or the decimal form of a value that
// has no name, so every byte value has exactly one spelling.
func parseName(s string, names []string) (uint8, bool) {
	for i, n := range names {
		if s == n {
			return uint8(i), true
		}
	}
	v, ok := parseUint32(s)
	if !ok || v > 0xff || int(v) < len(names) {
		return 0, false
	}
	return uint8(v), true
}

// parseUint32 accepts canonical decimal: digits only, no leading zeros.
func parseUint32(s string) (uint32, bool) {
	if s == "" || len(s) > 10 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	if v > 0xffffffff {
		return 0, false
	}
	return uint32(v), true
}
