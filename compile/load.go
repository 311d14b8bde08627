package compile

import (
	"errors"

	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/pfconf"
	"github.com/pfcarp/pfcarp/pfload"
)

// CompileLoad is the second half of pfload: it compiles what pfload.Load
// read into one program, the main ruleset (or anchor rs.Anchor) with the
// anchors of its "load anchor" statements in Program.Anchors, so that
// nft.Conn.Load (or LoadAnchor) installs them in one transaction, as
// pfctl_load_anchors adds them to the main load's transaction (pfctl.c).
// A nil opts.RuleText means pfctl's text of each rule (RuleTexts);
// opts.LoadAnchors is implied. The error is a *pfconf.ErrorList naming each
// rule that cannot be enforced, in whichever file it is.
func CompileLoad(rs *pfload.Ruleset, opts Options) (*nft.Program, error) {
	opts.LoadAnchors = true
	with := func(r *pfconf.Ruleset) Options {
		o := opts
		if o.RuleText == nil {
			o.RuleText = RuleTexts(r)
		}
		return o
	}
	var prog *nft.Program
	var err error
	if rs.Anchor != "" {
		prog, err = CompileAnchor(rs.Anchor, rs.Rules, with(rs.Rules))
	} else {
		prog, err = Compile(rs.Rules, with(rs.Rules))
	}
	if err != nil {
		return nil, err
	}
	var errs pfconf.ErrorList
	for _, a := range rs.Anchors {
		p, err := CompileAnchor(a.Path, a.Rules, with(a.Rules))
		if err != nil {
			var el *pfconf.ErrorList
			if errors.As(err, &el) {
				errs.List = append(errs.List, el.List...)
				errs.Dropped += el.Dropped
				continue
			}
			return nil, err
		}
		p.FromMain = rs.Anchor == ""
		prog.Anchors = append(prog.Anchors, p)
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return prog, nil
}
