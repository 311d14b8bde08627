package daemon

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// haTable is the nftables table in which the daemon exempts its own
// protocols from connection tracking. It is separate from the pf ruleset's
// table so that loading or flushing rules never touches it.
const haTable = "pfcarp_ha"

// Protocols the daemon speaks between nodes.
const (
	protoCARP   = 112
	protoPFSYNC = 240
)

// installNotrack makes CARP and pfsync packets bypass connection tracking,
// in one transaction: a full conntrack table drops new flows, and CARP
// advertisements must never be among them or both nodes turn MASTER.
func installNotrack() error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := &nftables.Table{Name: haTable, Family: nftables.TableFamilyINet}
	c.AddTable(t)
	c.DelTable(t) // replace whatever an earlier run left, atomically
	c.AddTable(t)
	for _, hook := range []struct {
		name string
		hook *nftables.ChainHook
	}{{"prerouting", nftables.ChainHookPrerouting}, {"output", nftables.ChainHookOutput}} {
		ch := c.AddChain(&nftables.Chain{
			Name: hook.name, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: hook.hook, Priority: nftables.ChainPriorityRaw,
		})
		for _, p := range []byte{protoCARP, protoPFSYNC} {
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
				&expr.Counter{},
				&expr.Notrack{},
			}})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: exempting CARP and pfsync from conntrack (needs nf_tables with the notrack expression): %w", err)
	}
	return nil
}

// removeNotrack deletes the daemon's table; a missing table is not an error.
func removeNotrack() error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	t := &nftables.Table{Name: haTable, Family: nftables.TableFamilyINet}
	c.AddTable(t)
	c.DelTable(t)
	if err := c.Flush(); err != nil && err != unix.ENOENT {
		return fmt.Errorf("nftables: removing table %s: %w", haTable, err)
	}
	return nil
}
