package compile

import (
	"fmt"

	"github.com/google/nftables/expr"

	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/pfconf"
)

// dynIf returns the spec of dynamic address a.
func dynIf(a pfconf.Addr) nft.DynIf {
	return nft.DynIf{Ifname: a.Name, Flags: a.IfFlags, Bits: a.Bits}
}

// dynIfSet returns the set of a's addresses of family fam.
func (c *compiler) dynIfSet(a pfconf.Addr, fam byte, pool bool) *nft.Set {
	d := dynIf(a)
	v6 := fam == famV6
	s := &nft.Set{Name: nft.DynIfSetName(d, v6, pool), Kind: nft.SetDynIf, V6: v6, DynIf: d}
	if pool {
		s.Kind = nft.SetDynIfPool
	}
	if c.sets[s.Name] {
		for _, o := range c.prog.Sets {
			if o.Name == s.Name {
				return o
			}
		}
	}
	if c.opts.Host != nil {
		addrs, _ := c.opts.Host.InterfaceAddrs(d.Ifname)
		ps := nft.DynIfPrefixes(d, addrs, v6)
		if pool {
			if len(ps) > 0 {
				s.Pool = append(s.Pool, ps[0].Addr())
			}
		} else {
			s.Prefixes = ps
		}
	}
	c.addSet(s)
	return s
}

// dynIfAddress adds the match of a dynamic address.
func (c *compiler) dynIfAddress(b *builder, ra *pfconf.RuleAddr, dst bool, fam byte, orig bool) string {
	if fam == famAny {
		return "a dynamic interface address needs an address family"
	}
	s := c.dynIfSet(ra.Addr, fam, false)
	name := b.loadAddr(dst, fam, orig, 1)
	b.add(fmt.Sprintf("%s %s@%s", name, negText(ra.Neg), s.Name),
		&expr.Lookup{SourceRegister: 1, SetName: s.Name, Invert: ra.Neg})
	return ""
}

// dynIfTarget loads the first address of a dynamic translation target
// into register 2 and returns its text.
func (c *compiler) dynIfTarget(b *builder, a pfconf.Addr, fam byte) string {
	s := c.dynIfSet(a, fam, true)
	b.add("", &expr.Immediate{Register: 2, Data: u32(0)},
		&expr.Lookup{SourceRegister: 2, DestRegister: 2, IsDestRegSet: true, SetName: s.Name})
	return "0 map @" + s.Name
}
