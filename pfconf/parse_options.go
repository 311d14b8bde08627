package pfconf

import (
	"bufio"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// option parses a "set" statement: the values it sets, and what pfctl
// prints for it.
func (p *parser) option() Decl {
	pos := p.pos
	p.expectKw("set")
	p.checkRuleState(pos, stateOption)
	if p.depth > 0 {
		p.fail(pos, "set options are not allowed within anchors")
	}
	v := &Options{}
	decl := func(name, format string, args ...any) *OptionDecl {
		return &OptionDecl{Pos: pos, Name: name, Text: fmt.Sprintf(format, args...), Value: v}
	}
	var d Decl
	switch {
	case p.gotKw("reassemble"):
		on := p.yesNo()
		nodf := p.gotKw("no-df")
		suffix := ""
		if nodf {
			suffix = "no-df"
		}
		v.Reassemble, v.ReassembleNoDF = on, nodf
		d = decl("reassemble", "set reassemble %s %s", yesNoText(on), suffix)
	case p.gotKw("optimization"):
		vpos, s := p.str()
		switch s {
		case "normal", "default", "high-latency", "satellite", "aggressive", "conservative":
		default:
			// pfctl.c pfctl_set_optimization warns, then parse.y
			// SET OPTIMIZATION fails.
			p.errorf(vpos, "invalid state timeouts optimization")
			p.fail(vpos, "unknown optimization %s", s)
		}
		v.Optimization = s
		d = decl("optimization", "set optimization %s", s)
	case p.gotKw("ruleset-optimization"):
		vpos, s := p.str()
		switch s {
		case "none", "basic", "profile":
		default:
			p.fail(vpos, "unknown ruleset-optimization %s", s)
		}
		v.RulesetOptimization = s
		d = decl("ruleset-optimization", "set ruleset-optimization %s", s)
	case p.gotKw("timeout"):
		var lines []string
		one := func() {
			tpos, name := p.pos, ""
			if p.gotKw("interval") {
				name = "interval"
			} else {
				tpos, name = p.str()
			}
			_, n := p.numberIn(0, math.MaxUint32, "only positive values permitted")
			tm, ok := timeoutByName(name)
			if !ok {
				// pfctl.c pfctl_set_timeout warns, then parse.y
				// timeout_spec fails.
				p.errorf(tpos, "Bad timeout name.")
				p.fail(tpos, "unknown timeout %s", name)
			}
			v.Timeouts[tm], v.TimeoutSet[tm] = uint32(n), true
			lines = append(lines, fmt.Sprintf("set timeout %s %d", name, n))
		}
		if p.got(LBRACE) {
			p.optnl()
			for p.tok != RBRACE {
				one()
				p.comma()
			}
			p.next()
		} else {
			one()
		}
		d = decl("timeout", "%s", strings.Join(lines, "\n"))
	case p.gotKw("limit"):
		var lines []string
		one := func() {
			lpos, name := p.str()
			_, n := p.numberIn(0, math.MaxUint32, "only positive values permitted")
			l, ok := limitByName(name)
			if !ok {
				p.errorf(lpos, "Bad pool name.")
				p.fail(lpos, "unable to set limit %s %d", name, n)
			}
			v.Limits[l], v.LimitSet[l] = uint32(n), true
			lines = append(lines, fmt.Sprintf("set limit %s %d", name, n))
		}
		if p.got(LBRACE) {
			p.optnl()
			for p.tok != RBRACE {
				one()
				p.comma()
			}
			p.next()
		} else {
			one()
		}
		d = decl("limit", "%s", strings.Join(lines, "\n"))
	case p.gotKw("loginterface"):
		var s string
		if p.gotKw("all") {
			s = "all"
		} else {
			_, s = p.str()
		}
		v.LogInterface = s
		d = decl("loginterface", "set loginterface %s", s)
	case p.gotKw("hostid"):
		hpos, n := p.number()
		if n == 0 {
			p.fail(hpos, "hostid must be non-zero")
		}
		if n < 0 || n > math.MaxUint32 {
			p.fail(hpos, "invalid hostid")
		}
		v.HostID = uint32(n)
		d = decl("hostid", "set hostid 0x%08x", n)
	case p.gotKw("block-policy"):
		switch {
		case p.gotKw("drop"):
			p.blockReturn = false
			d = decl("block-policy", "set block-policy drop")
		case p.gotKw("return"):
			p.blockReturn = true
			v.BlockPolicyReturn = true
			d = decl("block-policy", "set block-policy return")
		default:
			p.syntaxError()
		}
	case p.gotKw("fail-policy"):
		switch {
		case p.gotKw("drop"):
			d = decl("fail-policy", "set fail-policy drop")
		case p.gotKw("return"):
			v.FailPolicyReturn = true
			d = decl("fail-policy", "set fail-policy return")
		default:
			p.syntaxError()
		}
	case p.gotKw("require-order"):
		on := p.yesNo()
		p.requireOrder = on
		v.RequireOrder = on
		d = decl("require-order", "set require-order %s", yesNoText(on))
	case p.gotKw("fingerprints"):
		fpos, s := p.str()
		if _, err := p.readFile(s); err != nil {
			p.fail(fpos, "error loading fingerprints %s", s)
		}
		v.Fingerprints = s
		d = decl("fingerprints", "set fingerprints \"%s\"", s)
	case p.gotKw("state-policy"):
		switch {
		case p.gotKw("if-bound"):
			p.statePolicyIfBound = true
			v.StatePolicyIfBound = true
			d = decl("state-policy", "set state-policy if-bound")
		case p.gotKw("floating"):
			p.statePolicyIfBound = false
			d = decl("state-policy", "set state-policy floating")
		default:
			p.syntaxError()
		}
	case p.gotKw("debug"):
		vpos, s := p.numberString()
		switch s {
		case "none", "urgent", "misc", "loud": // FreeBSD's pfctl_set_debug
		case "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug":
			// OpenBSD's pfctl_set_debug takes syslog levels (string_to_loglevel).
		default:
			// pfctl_set_debug warns, then parse.y's SET DEBUG fails.
			p.errorf(vpos, "unknown debug level \"%s\"", s)
			p.fail(vpos, "error setting debuglevel %s", s)
		}
		v.Debug = s
		d = decl("debug", "set debug %s", s)
	case p.gotKw("skip"):
		p.expectKw("on")
		ifs := p.ifList()
		if len(ifs) == 1 && !ifs[0].Not && ifs[0].Name == "none" {
			d = decl("skip", "set skip on none")
			break
		}
		for _, i := range ifs {
			if i.Not {
				// parse.y expand_skip_interface, then SET SKIP.
				p.errorf(i.P, "skip on ! <interface> is not supported")
				p.fail(i.P, "error setting skip interface(s)")
			}
			v.Skip = append(v.Skip, i.Name)
		}
		d = decl("skip", "%s", SkipText(v.Skip))
	case p.gotKw("keepcounters"):
		d = decl("keepcounters", "set keepcounters")
	case p.gotKw("syncookies"):
		vpos, s := p.str()
		switch s {
		case "never", "always":
			v.Syncookies = s
			d = decl("syncookies", "set syncookies %s", s)
		case "adaptive":
			start, end := 25, 12
			if p.got(LPAREN) {
				for p.tok != RPAREN {
					// parse.y syncookie_opt: STRING STRING, the
					// second a percentage (strtod, then "%").
					kpos, k := p.str()
					vpos, v := p.str()
					f, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
					if err != nil || !strings.HasSuffix(v, "%") {
						p.syntaxErrorAt(vpos)
					}
					if f <= 0 || f > 100 {
						p.fail(vpos, "illegal percentage value")
					}
					n := int(f)
					switch k {
					case "start":
						start = n
					case "end":
						end = n
					default:
						p.fail(kpos, "illegal syncookie option")
					}
					p.comma()
				}
				p.next()
			}
			v.Syncookies, v.SyncookiesStart, v.SyncookiesEnd = s, start, end
			if start == 25 && end == 12 {
				d = decl("syncookies", "set syncookies adaptive")
			} else {
				d = decl("syncookies", "set syncookies adaptive (start %d%%, end %d%%)", start, end)
			}
		default:
			p.fail(vpos, "illegal value for syncookies")
		}
	case p.gotKw("state-defaults"):
		if p.stateDefaultsSet {
			p.fail(pos, "cannot redefine state-defaults")
		}
		p.stateDefaultsSet = true
		fo := &filterOptions{}
		for p.tok != NEWLINE && p.tok != EOF {
			fo.stateOpts = append(fo.stateOpts, p.stateOptItem())
			p.got(COMMA) // parse.y's comma: no newline after it here

		}
		// parse.y: keep_state_defaults, given to every pass rule that
		// keeps state by default (finishFilter).
		p.stateDefaults = fo.stateOpts
		text, so := p.stateDefaultsText(fo.stateOpts)
		v.StateDefaults = so
		d = decl("state-defaults", "set state-defaults%s", text)
	default:
		p.syntaxError()
	}
	p.endStmt()
	return d
}

func (p *parser) yesNo() bool {
	if p.gotKw("no") {
		return false
	}
	pos, s := p.numberString()
	switch s {
	case "yes":
		return true
	case "no":
		return false
	}
	// parse.y yesno: NO or a STRING that must be "yes".
	p.fail(pos, "invalid value '%s', expected 'yes' or 'no'", s)
	return false
}

func yesNoText(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// stateDefaultsText prints state options as "set state-defaults" takes
// them (" opt, opt"), the way a rule's "keep state (...)" prints them, and
// returns them as a rule's state options.
func (p *parser) stateDefaultsText(opts []stateOpt) (string, StateOpts) {
	if len(opts) == 0 {
		return "", StateOpts{}
	}
	r := &Rule{KeepState: StateNormal}
	p.applyStateOpts(r, opts)
	// Only an explicit if-bound, not "set state-policy if-bound".
	r.StateOpts.IfBound = hasStateOpt(opts, "if-bound")
	var b strings.Builder
	pr := &printer{w: bufio.NewWriter(&b)}
	pr.stateOpts(r)
	_ = pr.w.Flush() // into a strings.Builder: cannot fail
	t := strings.TrimSuffix(strings.TrimPrefix(b.String(), " ("), ")")
	if t == "" {
		return "", r.StateOpts
	}
	return " " + t, r.StateOpts
}

func hasStateOpt(opts []stateOpt, kind string) bool {
	for _, o := range opts {
		if o.kind == kind {
			return true
		}
	}
	return false
}
