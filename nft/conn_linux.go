package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/pfcarp/pfcarp/netdb"
)

// elemChunk is how many set elements go into one netlink message: a nested
// netlink attribute is at most 64 KiB long.
const elemChunk = 512

// Conn talks to the kernel's nftables in one network namespace. It holds no
// socket between calls and is safe for concurrent use (the kernel
// serialises transactions).
type Conn struct {
	netnsFD int // -1: the caller's namespace
	table   string
	host    netdb.Host // interface addresses for dynamic-address sets; nil: the namespace's
	anchor  string     // WithAnchor
}

// Option configures Open.
type Option func(*Conn)

// WithNetNS makes the Conn work in the namespace open as fd (it must stay
// open while the Conn is used).
func WithNetNS(fd int) Option { return func(c *Conn) { c.netnsFD = fd } }

// WithTable makes the Conn own a table other than TableName (tests and
// probes).
func WithTable(name string) Option { return func(c *Conn) { c.table = name } }

// Open returns a Conn. It does not touch the kernel.
func Open(opts ...Option) *Conn {
	c := &Conn{netnsFD: -1, table: TableName}
	for _, o := range opts {
		o(c)
	}
	return c
}

// readConn returns a library connection for dumps.
func (c *Conn) readConn() (*nftables.Conn, error) {
	if c.netnsFD >= 0 {
		return nftables.New(nftables.WithNetNSFd(c.netnsFD))
	}
	return nftables.New()
}

func (c *Conn) tableRef(flags uint32) *nftables.Table {
	return &nftables.Table{Name: c.table, Family: nftables.TableFamilyINet, Flags: flags}
}

// current returns the owned table as the kernel has it, or nil.
func (c *Conn) current() (*nftables.Table, error) {
	nc, err := c.readConn()
	if err != nil {
		return nil, err
	}
	ts, err := nc.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("nftables: listing tables: %w", err)
	}
	for _, t := range ts {
		if t.Name == c.table {
			// The library decodes NFTA_TABLE_FLAGS in host byte order;
			// the kernel sends it big-endian.
			t.Flags = binary.BigEndian.Uint32(binary.NativeEndian.AppendUint32(nil, t.Flags))
			return t, nil
		}
	}
	return nil, nil
}

// Loaded reports whether a ruleset is loaded and whether it is enabled.
func (c *Conn) Loaded() (loaded, enabled bool, err error) {
	t, err := c.current()
	if err != nil || t == nil {
		return false, false, err
	}
	return true, t.Flags&unix.NFT_TABLE_F_DORMANT == 0, nil
}

// SetEnabled turns filtering and translation on or off (pfctl -e / -d) by
// clearing or setting the table's dormant flag: a dormant table's chains are
// unhooked but its rules, sets and counters stay.
func (c *Conn) SetEnabled(on bool) error {
	t, err := c.current()
	if err != nil {
		return err
	}
	if t == nil {
		return errNoTable
	}
	flags := t.Flags &^ unix.NFT_TABLE_F_DORMANT
	if !on {
		flags |= unix.NFT_TABLE_F_DORMANT
	}
	b, err := newBatch()
	if err != nil {
		return err
	}
	b.AddTable(c.tableRef(flags))
	if err := c.send(b, &flags); err != nil {
		return fmt.Errorf("nftables: setting table %s flags: %w", c.table, err)
	}
	return nil
}

// Load replaces the owned table with p in one transaction: either all of p
// is in the kernel afterwards or nothing changed. An existing table's
// enabled/disabled state is kept; a new table is enabled. When the kernel
// refuses p, the error is a *LoadError.
func (c *Conn) Load(p *Program) error {
	if anchored, err := c.anchored(p); err != nil || anchored {
		if err != nil {
			return err
		}
		return c.install(p, false) // anchor_linux.go
	}
	if err := c.checkRoutes(p); err != nil { // policy_linux.go
		return err
	}
	old, err := c.current()
	if err != nil {
		return err
	}
	var flags uint32
	if old != nil {
		flags = old.Flags & unix.NFT_TABLE_F_DORMANT
	}
	b, err := newBatch()
	if err != nil {
		return err
	}
	t := c.tableRef(flags)
	b.AddTable(t) // so that the delete cannot fail on a missing table
	b.DelTable(t)
	b.AddTable(t)
	full, err := c.withDynIf(p)
	if err != nil {
		return err
	}
	if err := addProgram(b.Conn, t, full, -1, true); err != nil {
		return err
	}
	if err := c.send(b, &flags); err != nil {
		return c.diagnose(p, err)
	}
	return c.applyRoutes(p) // policy_linux.go
}

// addProgram buffers p into nc for table t. Only the first maxRules rules
// (in chain order) are added when maxRules >= 0; elements are added iff
// withElems. Records are added iff maxRules < 0.
func addProgram(nc *nftables.Conn, t *nftables.Table, p *Program, maxRules int, withElems bool) error {
	return addPrograms(nc, t, []*Program{p}, maxRules, withElems)
}

// addPrograms is addProgram for programs installed together (the main
// ruleset and its anchors): sets of all first, then chains, rules and each
// program's records in its own meta chain.
func addPrograms(nc *nftables.Conn, t *nftables.Table, progs []*Program, maxRules int, withElems bool) error {
	sets := map[string]*nftables.Set{}
	for _, p := range progs {
		for _, s := range p.Sets {
			ns, els, err := librarySet(t, s)
			if err != nil {
				return err
			}
			if !withElems && !ns.Constant {
				els = nil
			}
			if err := nc.AddSet(ns, nil); err != nil {
				return fmt.Errorf("nftables: set %s: %w", s.Name, err)
			}
			for len(els) > 0 {
				n := min(len(els), elemChunk)
				if err := nc.SetAddElements(ns, els[:n]); err != nil {
					return fmt.Errorf("nftables: set %s: %w", s.Name, err)
				}
				els = els[n:]
			}
			sets[s.Name] = ns
		}
	}
	accept := nftables.ChainPolicyAccept
	chains := map[string]*nftables.Chain{}
	for _, p := range progs {
		for _, ch := range p.Chains {
			lc := &nftables.Chain{Name: ch.Name, Table: t}
			if ch.Hook != nil {
				num, prio := ch.Hook.Num, nftables.ChainPriority(ch.Hook.Priority)
				lc.Type, lc.Hooknum, lc.Priority, lc.Policy = ch.Hook.Type, &num, &prio, &accept
			}
			chains[ch.Name] = nc.AddChain(lc)
		}
	}
	added := 0
	for _, p := range progs {
		for _, ch := range p.Chains {
			for _, r := range ch.Rules {
				if maxRules >= 0 && added >= maxRules {
					return nil
				}
				exprs, err := bindSets(r.Exprs, sets)
				if err != nil {
					return fmt.Errorf("nftables: chain %s: %s: %w", ch.Name, r.Text, err)
				}
				lr := &nftables.Rule{Table: t, Chain: chains[ch.Name], Exprs: exprs}
				if !r.Ref.IsZero() {
					lr.UserData = commentData(r.Ref.String())
				}
				nc.AddRule(lr)
				added++
			}
		}
	}
	if maxRules >= 0 {
		return nil
	}
	for _, p := range progs {
		if p.noMeta {
			continue
		}
		meta := nc.AddChain(&nftables.Chain{Name: p.metaChain(), Table: t})
		if p.Anchor != "" && p.FromMain {
			nc.AddRule(&nftables.Rule{Table: t, Chain: meta, UserData: commentData(ownerMain)})
		}
		for _, rec := range p.Records {
			for _, chunk := range encodeRecord(rec) {
				nc.AddRule(&nftables.Rule{Table: t, Chain: meta, UserData: commentData(chunk)})
			}
		}
	}
	return nil
}

// bindSets returns exprs with set references completed with the IDs the
// library assigned in this batch (the kernel resolves sets created in the
// same transaction by ID). The program's expressions are not modified.
func bindSets(exprs []expr.Any, sets map[string]*nftables.Set) ([]expr.Any, error) {
	out := exprs
	copied := false
	for i, e := range exprs {
		var repl expr.Any
		switch x := e.(type) {
		case *expr.Lookup:
			s, ok := sets[x.SetName]
			if !ok {
				return nil, fmt.Errorf("lookup in undefined set %s", x.SetName)
			}
			y := *x
			y.SetID = s.ID
			repl = &y
		case *expr.Dynset:
			s, ok := sets[x.SetName]
			if !ok {
				return nil, fmt.Errorf("update of undefined set %s", x.SetName)
			}
			y := *x
			y.SetID = s.ID
			repl = &y
		default:
			continue
		}
		if !copied {
			out = append([]expr.Any(nil), exprs...)
			copied = true
		}
		out[i] = repl
	}
	return out, nil
}

// librarySet converts s and its elements.
func librarySet(t *nftables.Table, s *Set) (*nftables.Set, []nftables.SetElement, error) {
	addrType := nftables.TypeIPAddr
	if s.V6 {
		addrType = nftables.TypeIP6Addr
	}
	ns := &nftables.Set{Table: t, Name: s.Name, KeyType: addrType}
	var els []nftables.SetElement
	switch s.Kind {
	case SetAddr:
		ns.Interval = true
		var ps []netip.Prefix
		for _, p := range s.Prefixes {
			if p.Addr().Is4() == !s.V6 {
				ps = append(ps, p)
			} else {
				return nil, nil, fmt.Errorf("set %s: %s is of the other address family", s.Name, p)
			}
		}
		els = rangeElements(MergePrefixes(ps))
	case SetPool:
		ns.IsMap, ns.Constant = true, true
		ns.KeyType, ns.DataType = nftables.TypeInteger, addrType
		for i, a := range s.Pool {
			if a.Is4() == s.V6 {
				return nil, nil, fmt.Errorf("map %s: %s is of the other address family", s.Name, a)
			}
			els = append(els, nftables.SetElement{Key: binary.NativeEndian.AppendUint32(nil, uint32(i)), Val: a.AsSlice()})
		}
	case SetSticky:
		ns.IsMap, ns.Dynamic, ns.HasTimeout = true, true, true
		ns.DataType = addrType
		ns.Timeout = s.Timeout
	case SetSource:
		ns.Dynamic, ns.Size = true, s.Size
		if s.Timeout > 0 {
			ns.HasTimeout, ns.Timeout = true, s.Timeout
		}
	case SetOverload:
		ns.Dynamic = true
	case SetDynIf:
		ns.Interval = true
		els = rangeElements(MergePrefixes(append([]netip.Prefix(nil), s.Prefixes...)))
	case SetDynIfPool:
		ns.IsMap = true
		ns.KeyType, ns.DataType = nftables.TypeInteger, addrType
		if len(s.Pool) > 0 {
			els = append(els, nftables.SetElement{Key: binary.NativeEndian.AppendUint32(nil, 0), Val: s.Pool[0].AsSlice()})
		}
	default:
		return nil, nil, fmt.Errorf("set %s: unknown kind %d", s.Name, s.Kind)
	}
	return ns, els, nil
}

// LoadError is a refused Load: the pf rule whose kernel rule the kernel
// refused (when it could be found), the feature that rule needs, and the
// kernel's error.
type LoadError struct {
	// Record is the pf rule; zero when the refusal was not in a rule.
	Record Record
	// Rule is the refused kernel rule, nil when not found.
	Rule *Rule
	// Chain is the refused rule's chain.
	Chain string
	Err   error
}

func (e *LoadError) Error() string {
	var b strings.Builder
	switch {
	case e.Record.Kind != KindNone:
		if e.Record.Pos != "" {
			b.WriteString(e.Record.Pos + ": ")
		}
		fmt.Fprintf(&b, "rule %q: ", e.Record.Text)
	case e.Rule != nil:
		fmt.Fprintf(&b, "chain %s rule %q: ", e.Chain, e.Rule.Text)
	}
	b.WriteString("the kernel refused it")
	if e.Rule != nil && e.Rule.Needs != "" {
		fmt.Fprintf(&b, " (it needs %s", e.Rule.Needs)
		if isMissing(e.Err) {
			b.WriteString(", which this kernel lacks")
		}
		b.WriteString(")")
	}
	if isJumpLimit(e.Err) { // anchor_linux.go
		b.WriteString(" (anchors call each other in a loop, or jumps nest deeper than the kernel's 16 levels)")
	}
	fmt.Fprintf(&b, ": %v; nothing was changed", e.Err)
	return b.String()
}

func (e *LoadError) Unwrap() error { return e.Err }

// isMissing reports whether err is how the kernel says a module or
// expression type does not exist.
func isMissing(err error) bool {
	return errors.Is(err, unix.ENOENT)
}

// diagnose finds the first rule of p the kernel refuses, by loading growing
// prefixes of p into a scratch table that the same transaction deletes.
func (c *Conn) diagnose(p *Program, loadErr error) error {
	probe := func(n int) error {
		b, err := newBatch()
		if err != nil {
			return err
		}
		t := &nftables.Table{Name: c.table + "_probe", Family: nftables.TableFamilyINet}
		b.AddTable(t)
		b.DelTable(t)
		b.AddTable(t)
		if err := addProgram(b.Conn, t, p, n, false); err != nil {
			return err
		}
		b.DelTable(t)
		dormant := uint32(unix.NFT_TABLE_F_DORMANT)
		return c.send(b, &dormant)
	}
	total := p.NumRules()
	if err := probe(total); err == nil {
		// Rules are fine: elements or records were refused.
		return &LoadError{Err: loadErr}
	}
	if err := probe(0); err != nil {
		return &LoadError{Err: fmt.Errorf("sets and chains: %w", err)}
	}
	lo, hi := 0, total // probe(lo) succeeds, probe(hi) fails
	var hiErr error
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if err := probe(mid); err != nil {
			hi, hiErr = mid, err
		} else {
			lo = mid
		}
	}
	if hiErr == nil {
		hiErr = loadErr
	}
	i := hi - 1
	for _, ch := range p.Chains {
		if i < len(ch.Rules) {
			r := ch.Rules[i]
			rec, _ := p.Record(r.Ref)
			return &LoadError{Record: rec, Rule: r, Chain: ch.Name, Err: unwrapKernel(hiErr)}
		}
		i -= len(ch.Rules)
	}
	return &LoadError{Err: loadErr}
}

// unwrapKernel strips the library's wrapping down to the netlink error.
func unwrapKernel(err error) error {
	var oe *netlink.OpError
	if errors.As(err, &oe) {
		if oe.Message != "" {
			return fmt.Errorf("%w (%s)", oe.Err, oe.Message)
		}
		return oe.Err
	}
	return err
}
