package pfconf

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pfcarp/pfcarp/netdb"
)

// Print writes the ruleset as "pfctl -nv" (verbose 1) or "pfctl -nvv"
// (verbose 2) prints it: declarations in file order (macros, options,
// tables, queues), then ether, scrub, nat, rdr, binat and filter rules,
// anchors' rules indented inside braces.
func (rs *Ruleset) Print(w io.Writer, verbose int) error {
	bw := bufio.NewWriter(w)
	pr := &printer{w: bw, vv: verbose >= 2, consumed: map[anchorKind]bool{}}
	for _, d := range rs.Decls {
		pr.decl(d)
	}
	pr.etherRuleset(rs.Main, 0)
	for _, k := range []int{kindScrub, kindNAT, kindRDR, kindBINAT, kindFilter} {
		pr.ruleset(rs.Main, k, 0)
	}
	return bw.Flush()
}

// String returns the -nv form of the ruleset.
func (rs *Ruleset) String() string {
	var b strings.Builder
	_ = rs.Print(&b, 1) // into a strings.Builder: cannot fail
	return b.String()
}

const (
	kindScrub = iota
	kindFilter
	kindNAT
	kindBINAT
	kindRDR
	kindEther
)

type anchorKind struct {
	a    *Anchor
	kind int
}

type printer struct {
	w        *bufio.Writer
	vv       bool
	noNr     bool // vv without the "@N " rule numbers
	consumed map[anchorKind]bool
}

// RuleText returns rule r on one line as "pfctl -nvv" prints it, without
// its "@N" number and, for an anchor call, without the anchor's rules.
func RuleText(r *Rule) string {
	var b strings.Builder
	pr := &printer{w: bufio.NewWriter(&b), vv: true, noNr: true}
	pr.rule(r)
	_ = pr.w.Flush() // into a strings.Builder: cannot fail
	return b.String()
}

// printf and str write to a bufio.Writer, which keeps its first error and
// fails every later write: Print returns that error from Flush.
func (p *printer) printf(format string, args ...any) { _, _ = fmt.Fprintf(p.w, format, args...) }
func (p *printer) str(s string)                      { _, _ = p.w.WriteString(s) }

func (p *printer) indent(depth int, on bool) {
	if on {
		for i := 0; i < depth; i++ {
			p.str("  ")
		}
	}
}

func (p *printer) decl(d Decl) {
	switch d := d.(type) {
	case *MacroDecl:
		p.printf("%s = \"%s\"\n", d.Name, d.Value)
	case *OptionDecl:
		p.str(d.Text + "\n")
	case *AltqDecl:
		p.str(d.Text + "\n")
	case *LimiterDecl:
		p.str(d.String() + "\n")
	case *TableDecl:
		p.table(d)
	}
}

func (p *printer) table(d *TableDecl) {
	p.printf("table <%s>", d.Name)
	if d.Const {
		p.str(" const")
	}
	if d.Persist {
		p.str(" persist")
	}
	if d.Counters {
		p.str(" counters")
	}
	for i := 0; i < len(d.Inits); i++ {
		ti := d.Inits[i]
		if ti.File != "" {
			p.printf(" file \"%s\"", ti.File)
			continue
		}
		p.str(" {")
		for {
			for _, en := range ti.Entries {
				if en.Neg {
					p.str(" !")
				} else {
					p.str(" ")
				}
				p.str(addrString(en.Addr, en.AF, false))
			}
			if i+1 < len(d.Inits) && d.Inits[i+1].File == "" {
				i++
				ti = d.Inits[i]
				continue
			}
			break
		}
		p.str(" }")
	}
	if d.InitAddr && len(d.Inits) == 0 {
		p.str(" { }")
	}
	p.str("\n")
}

func (a *Anchor) rules(kind int) []*Rule {
	switch kind {
	case kindScrub:
		return a.Scrub
	case kindNAT:
		return a.NAT
	case kindRDR:
		return a.RDR
	case kindBINAT:
		return a.BINAT
	}
	return a.Filter
}

// ruleset prints the rules of one kind of anchor a, as pfctl_load_ruleset
// does while loading (each anchor's rules are printed once).
func (p *printer) ruleset(a *Anchor, kind, depth int) {
	var rules []*Rule
	key := anchorKind{a, kind}
	if !p.consumed[key] {
		rules = a.rules(kind)
		p.consumed[key] = true
	}
	brace := false
	if depth > 0 {
		if len(rules) > 0 {
			brace = true
			p.str(" {\n")
		} else {
			p.str("\n")
		}
	}
	for _, r := range rules {
		p.indent(depth, !p.vv)
		p.rule(r)
		if r.Anchor != nil {
			p.ruleset(r.Anchor, kind, depth+1)
		} else {
			p.str("\n")
		}
	}
	if brace {
		p.indent(depth-1, true)
		p.str("}\n")
	}
}

func (p *printer) etherRuleset(a *Anchor, depth int) {
	var rules []*EtherRule
	key := anchorKind{a, kindEther}
	if !p.consumed[key] {
		rules = a.Ether
		p.consumed[key] = true
	}
	brace := false
	if depth > 0 {
		if len(rules) > 0 {
			brace = true
			p.str(" {\n")
		} else {
			p.str("\n")
		}
	}
	for _, r := range rules {
		p.indent(depth, !p.vv)
		p.etherRule(r)
		if r.Anchor != nil {
			p.etherRuleset(r.Anchor, depth+1)
		} else {
			p.str("\n")
		}
	}
	if brace {
		p.indent(depth-1, true)
		p.str("}\n")
	}
}

// ntop formats an address as FreeBSD's inet_ntop does.
func ntop(a netip.Addr) string {
	if !a.IsValid() {
		return "?"
	}
	if a.Is4() {
		return a.String()
	}
	b := a.As16()
	var words [8]uint16
	for i := range words {
		words[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
	}
	bestBase, bestLen, curBase, curLen := -1, 0, -1, 0
	for i := 0; i < 8; i++ {
		if words[i] == 0 {
			if curBase == -1 {
				curBase, curLen = i, 1
			} else {
				curLen++
			}
		} else if curBase != -1 {
			if bestBase == -1 || curLen > bestLen {
				bestBase, bestLen = curBase, curLen
			}
			curBase = -1
		}
	}
	if curBase != -1 && (bestBase == -1 || curLen > bestLen) {
		bestBase, bestLen = curBase, curLen
	}
	if bestBase != -1 && bestLen < 2 {
		bestBase = -1
	}
	var s strings.Builder
	for i := 0; i < 8; i++ {
		if bestBase != -1 && i >= bestBase && i < bestBase+bestLen {
			if i == bestBase {
				s.WriteByte(':')
			}
			continue
		}
		if i != 0 {
			s.WriteByte(':')
		}
		if i == 6 && bestBase == 0 && (bestLen == 6 || bestLen == 5 && words[5] == 0xffff) {
			fmt.Fprintf(&s, "%d.%d.%d.%d", b[12], b[13], b[14], b[15])
			break
		}
		s.WriteString(strconv.FormatUint(uint64(words[i]), 16))
	}
	if bestBase != -1 && bestBase+bestLen == 8 {
		s.WriteByte(':')
	}
	return s.String()
}

// addrString formats an address as pfctl's print_addr.
func addrString(a Addr, af AF, verbose bool) string {
	var s strings.Builder
	switch a.Type {
	case AddrDynIf:
		s.WriteString("(" + a.Name)
		if a.IfFlags&IfNetwork != 0 {
			s.WriteString(":network")
		}
		if a.IfFlags&IfBroadcast != 0 {
			s.WriteString(":broadcast")
		}
		if a.IfFlags&IfPeer != 0 {
			s.WriteString(":peer")
		}
		if a.IfFlags&IfNoAlias != 0 {
			s.WriteString(":0")
		}
		if verbose {
			s.WriteString(":*")
		}
		s.WriteString(")")
		if a.Bits < maxBits(af) {
			fmt.Fprintf(&s, "/%d", a.Bits)
		}
		return s.String()
	case AddrTable:
		if verbose {
			return "<" + a.Name + ":0>"
		}
		return "<" + a.Name + ">"
	case AddrRange:
		return ntop(a.Addr) + " - " + ntop(a.To)
	case AddrNoRoute:
		return "no-route"
	case AddrURPF:
		return "urpf-failed"
	case AddrMask:
		if !a.Addr.IsValid() {
			if a.Bits > 0 {
				return fmt.Sprintf("any/%d", a.Bits)
			}
			return "any"
		}
		s.WriteString(ntop(a.Addr))
		if a.Bits < maxBits(af) {
			fmt.Fprintf(&s, "/%d", a.Bits)
		}
		return s.String()
	}
	return "?"
}

func opString(op PortOp, a1, a2 string) string {
	switch op {
	case OpIRG:
		return " " + a1 + " >< " + a2
	case OpXRG:
		return " " + a1 + " <> " + a2
	case OpEQ:
		return " = " + a1
	case OpNE:
		return " != " + a1
	case OpLT:
		return " < " + a1
	case OpLE:
		return " <= " + a1
	case OpGT:
		return " > " + a1
	case OpGE:
		return " >= " + a1
	case OpRRG:
		return " " + a1 + ":" + a2
	}
	return ""
}

func portString(op PortOp, p1, p2 uint16, proto string) string {
	a1 := strconv.Itoa(int(p1))
	a2 := strconv.Itoa(int(p2))
	if op == OpEQ || op == OpNE {
		if name, ok := netdb.ServiceByPort(p1, proto); ok {
			a1 = name
		}
	}
	return " port" + opString(op, a1, a2)
}

func flagString(f uint8) string {
	var s strings.Builder
	for i := 0; i < 8; i++ {
		if f&(1<<uint(i)) != 0 {
			s.WriteByte(tcpFlagChars[i])
		}
	}
	return s.String()
}

// expandLabel replaces the label macros of pfctl ($if, $srcaddr, ...).
func expandLabel(l string, r *Rule) string {
	if !strings.Contains(l, "$") {
		return l
	}
	if strings.Contains(l, "$if") {
		v := r.Ifname
		if v == "" {
			v = "any"
		}
		l = strings.ReplaceAll(l, "$if", v)
	}
	addr := func(ra RuleAddr) string {
		var t string
		switch ra.Addr.Type {
		case AddrDynIf:
			t = "(" + ra.Addr.Name + ")"
		case AddrTable:
			t = "<" + ra.Addr.Name + ">"
		case AddrNoRoute:
			t = "no-route"
		case AddrURPF:
			t = "urpf-failed"
		case AddrMask:
			if r.AF == 0 || !ra.Addr.Addr.IsValid() {
				t = "any"
			} else if ra.Addr.Bits < maxBits(r.AF) {
				t = fmt.Sprintf("%s/%d", ntop(ra.Addr.Addr), ra.Addr.Bits)
			} else {
				t = ntop(ra.Addr.Addr)
			}
		default:
			t = "?"
		}
		if ra.Neg {
			return "! " + t
		}
		return t
	}
	port := func(ra RuleAddr) string {
		a1, a2 := strconv.Itoa(int(ra.Port[0])), strconv.Itoa(int(ra.Port[1]))
		switch ra.PortOp {
		case OpIRG:
			return a1 + "><" + a2
		case OpXRG:
			return a1 + "<>" + a2
		case OpEQ:
			return a1
		case OpNE:
			return "!=" + a1
		case OpLT:
			return "<" + a1
		case OpLE:
			return "<=" + a1
		case OpGT:
			return ">" + a1
		case OpGE:
			return ">=" + a1
		}
		return ""
	}
	if strings.Contains(l, "$srcaddr") {
		l = strings.ReplaceAll(l, "$srcaddr", addr(r.Src))
	}
	if strings.Contains(l, "$dstaddr") {
		l = strings.ReplaceAll(l, "$dstaddr", addr(r.Dst))
	}
	if strings.Contains(l, "$srcport") {
		l = strings.ReplaceAll(l, "$srcport", port(r.Src))
	}
	if strings.Contains(l, "$dstport") {
		l = strings.ReplaceAll(l, "$dstport", port(r.Dst))
	}
	if strings.Contains(l, "$proto") {
		v, ok := netdb.ProtoByNumber(r.Proto)
		if !ok {
			v = strconv.Itoa(int(r.Proto))
		}
		l = strings.ReplaceAll(l, "$proto", v)
	}
	if strings.Contains(l, "$nr") {
		l = strings.ReplaceAll(l, "$nr", strconv.Itoa(r.Nr))
	}
	return l
}
