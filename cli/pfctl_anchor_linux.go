package cli

import (
	"github.com/pfcarp/pfcarp/compile"
	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/pfconf"
)

// compileLoad compiles what pfctl -f loads: the main ruleset, or anchor
// -a NAME, with the anchors of its "load anchor" statements, installed
// in the same transaction (pfctl.c: pfctl_load_anchors adds them to the
// main load's transaction).
func compileLoad(rs *pfconf.Ruleset, k *kernelFlags) (*nft.Program, error) {
	var prog *nft.Program
	var err error
	if *k.anchor != "" {
		prog, err = compile.CompileAnchor(*k.anchor, rs, compile.Options{RuleText: compile.RuleTexts(rs)})
	} else {
		prog, err = compile.Compile(rs, compile.Options{RuleText: compile.RuleTexts(rs)})
	}
	if err != nil {
		return nil, err
	}
	var errs pfconf.ErrorList
	for _, l := range k.loads {
		p, err := compile.CompileAnchor(l.path, l.rs, compile.Options{RuleText: compile.RuleTexts(l.rs)})
		if err != nil {
			if el, ok := err.(*pfconf.ErrorList); ok {
				errs.List = append(errs.List, el.List...)
				continue
			}
			return nil, err
		}
		p.FromMain = *k.anchor == ""
		prog.Anchors = append(prog.Anchors, p)
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return prog, nil
}

// install loads prog: the main ruleset (keeping anchors it does not
// define) or one anchor.
func install(prog *nft.Program) error {
	if prog.Anchor != "" {
		return nft.Open().LoadAnchor(prog)
	}
	return nft.Open().Load(prog)
}
