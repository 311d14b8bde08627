package pfconf

// ether expands an ether rule.
func (e *expander) ether(s *EtherStmt, a *Anchor) {
	ipsrc, ok1 := e.resolve(s.IPSrc)
	ipdst, ok2 := e.resolve(s.IPDst)
	if !ok1 || !ok2 {
		return
	}
	var child *Anchor
	if s.Inline {
		child = &Anchor{Name: s.R.AnchorCall}
		e.stmts(s.Body, child)
	} else if s.R.AnchorCall != "" {
		child = &Anchor{Name: s.R.AnchorCall}
	}
	ifs := s.Ifs
	if len(ifs) == 0 {
		ifs = []IfItem{{}}
	}
	protos := s.Protos
	if len(protos) == 0 {
		protos = []uint16{0}
	}
	srcs := s.Srcs
	if len(srcs) == 0 {
		srcs = []EtherAddr{{}}
	}
	dsts := s.Dsts
	if len(dsts) == 0 {
		dsts = []EtherAddr{{}}
	}
	total := 1
	for _, n := range []int{len(ifs), len(protos), len(srcs), len(dsts), max(len(ipsrc), 1), max(len(ipdst), 1)} {
		total *= n
		if total > e.f.maxExpansion {
			e.errorf(s.P, "rule expands to more than %d rules", e.f.maxExpansion)
			return
		}
	}
	for _, ifc := range ifs {
		for _, pr := range protos {
			for _, sm := range srcs {
				for _, dm := range dsts {
					for _, sh := range orAny(ipsrc) {
						for _, dh := range orAny(ipdst) {
							r := s.R
							r.Labels = append([]string(nil), s.R.Labels...)
							r.Ifname, r.IfNot = ifc.Name, ifc.Not
							r.Proto = pr
							r.Src, r.Dst = sm, dm
							r.IPSrc = RuleAddr{Addr: sh.addr, Neg: sh.not}
							r.IPDst = RuleAddr{Addr: dh.addr, Neg: dh.not}
							r.Anchor = child
							r.Nr = e.nextEtherNr(a)
							a.Ether = append(a.Ether, &r)
						}
					}
				}
			}
		}
	}
}

func (e *expander) nextEtherNr(a *Anchor) int {
	n := 0
	for _, r := range a.Ether {
		if r.Nr >= n {
			n = r.Nr + 1
		}
	}
	return n
}
