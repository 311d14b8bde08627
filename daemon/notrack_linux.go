package daemon

import (
	"errors"
	"fmt"
	"net/netip"

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

// installHA replaces the daemon's persistent tables (inet and arp
// pfcarp_ha) in one transaction: CARP and pfsync packets bypass connection
// tracking (a full conntrack table drops new flows, and CARP advertisements
// must never be among them or both nodes turn MASTER), and the liveness
// guard (guard_linux.go) for vips.
func installHA(vips []netip.Addr) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := &nftables.Table{Name: haTable, Family: nftables.TableFamilyINet}
	ta := &nftables.Table{Name: haTable, Family: nftables.TableFamilyARP}
	for _, tt := range []*nftables.Table{t, ta} {
		c.AddTable(tt)
		c.DelTable(tt) // replace whatever an earlier run left, atomically
		c.AddTable(tt)
	}
	if err := addGuard(c, t, ta, vips); err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
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

// removeHA deletes the daemon's persistent tables; a missing table is not
// an error.
func removeHA() error {
	var errs []error
	for _, fam := range []nftables.TableFamily{nftables.TableFamilyINet, nftables.TableFamilyARP} {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		t := &nftables.Table{Name: haTable, Family: fam}
		c.AddTable(t)
		c.DelTable(t)
		if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("nftables: removing table %s: %w", haTable, err))
		}
	}
	return errors.Join(errs...)
}
