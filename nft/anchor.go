package nft

import (
	"sort"
	"strings"
)

// Anchors
//
// A pf anchor is a set of regular chains of the pfcarp table named
// AnchorChain(path, part), one per part (AnchorParts), plus the chain
// AnchorChain(path, "meta") that holds the anchor's Records; its sets are
// named AnchorSet(path, name). The main ruleset's chains and sets never
// start with "@". An anchor call jumps to the anchor's chain of its part
// (see package compile for which); a wildcard call "p/*" jumps to the
// dispatch chains AnchorChain("p/*", part), which hold one jump per child
// anchor of p (children sorted by name, as pf keeps them; reversed in the
// "_r" parts, which are evaluated last rule first). Every transaction that
// installs or replaces an anchor rewrites the dispatch chains, so an anchor
// loaded later under a wildcard is evaluated without touching the rules
// that call it.

// AnchorParts are the chains of every anchor, whether it has rules of
// that part or not: a call must find its target.
var AnchorParts = []string{
	PartInQuick, PartInRest, PartOutQuick, PartOutRest,
	PartRDR, PartNAT, PartBINATIn, PartBINATOut, PartXRDR, PartXNAT,
}

// Anchor chain parts.
const (
	// PartInQuick and PartOutQuick hold an anchor's filter rules that are
	// evaluated first to last (match and quick rules, calls), inbound and
	// outbound.
	PartInQuick  = "in_q"
	PartOutQuick = "out_q"
	// PartInRest and PartOutRest hold its other filter rules, last to
	// first (pf's last match).
	PartInRest  = "in_r"
	PartOutRest = "out_r"
	// PartRDR and PartNAT hold rdr and nat rules; PartBINATIn and
	// PartBINATOut the two halves of binat rules.
	PartRDR      = "rdr"
	PartNAT      = "nat"
	PartBINATIn  = "binat_in"
	PartBINATOut = "binat_out"
	// PartXRDR and PartXNAT hold the translations of filter rules
	// (rdr-to, nat-to, binat-to on pass and match rules).
	PartXRDR = "xrdr"
	PartXNAT = "xnat"
	partMeta = "meta"
)

// MaxAnchorPath bounds an anchor path so that its chain and set names fit
// the kernel's 255 bytes.
const MaxAnchorPath = 200

// AnchorChain is the kernel name of part of anchor path.
func AnchorChain(path, part string) string { return "@" + path + ":" + part }

// AnchorSet is the kernel name of set name of anchor path.
func AnchorSet(path, name string) string { return "@" + path + ":" + name }

// parseAnchorName splits an AnchorChain or AnchorSet name.
func parseAnchorName(name string) (path, part string, ok bool) {
	if !strings.HasPrefix(name, "@") {
		return "", "", false
	}
	i := strings.LastIndexByte(name, ':')
	if i < 1 {
		return "", "", false
	}
	return name[1:i], name[i+1:], true
}

// IsWildcard reports whether an anchor call path is a wildcard ("p/*").
func IsWildcard(path string) bool { return len(path) > 2 && strings.HasSuffix(path, "/*") }

// wildcardParent is the parent of wildcard path w ("p/*" -> "p").
func wildcardParent(w string) string { return strings.TrimSuffix(w, "/*") }

// anchorParent is the parent path of anchor path ("a/b" -> "a", "a" -> "").
func anchorParent(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		return path[:i]
	}
	return ""
}

// children returns the anchors of paths whose parent is parent, sorted.
func children(paths map[string]bool, parent string) []string {
	var out []string
	for p := range paths {
		if !IsWildcard(p) && p != "" && anchorParent(p) == parent {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// metaChain is the chain of p's records.
func (p *Program) metaChain() string {
	if p.Anchor == "" {
		return MetaChain
	}
	return AnchorChain(p.Anchor, partMeta)
}

// walk calls fn for p and every anchor installed with it.
func (p *Program) walk(fn func(*Program)) {
	fn(p)
	for _, a := range p.Anchors {
		a.walk(fn)
	}
}

// ownerMain is the comment that opens the meta chain of an anchor the main
// ruleset's load installed (FromMain).
const ownerMain = "Omain"
