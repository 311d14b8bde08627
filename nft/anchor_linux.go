package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// kernelState is what install needs to know about the table as it is.
type kernelState struct {
	table   *nftables.Table
	chains  map[string]bool // every chain name
	sets    []*nftables.Set
	anchors map[string]bool // anchor paths with chains (wildcards included)
	// fromMain are the anchors the last main load installed.
	fromMain map[string]bool
}

// kernelState reads the table's chains and sets; with owners also which
// anchors the last main load installed (one read per anchor: only main
// loads need it).
func (c *Conn) kernelState(owners bool) (*kernelState, error) {
	ks := &kernelState{chains: map[string]bool{}, anchors: map[string]bool{}, fromMain: map[string]bool{}}
	t, err := c.current()
	if err != nil || t == nil {
		return ks, err
	}
	ks.table = t
	nc, err := c.readConn()
	if err != nil {
		return nil, err
	}
	chains, err := nc.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("nftables: listing chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table.Name != c.table {
			continue
		}
		ks.chains[ch.Name] = true
		path, part, ok := parseAnchorName(ch.Name)
		if !ok {
			continue
		}
		ks.anchors[path] = true
		if part == partMeta && owners {
			rules, err := nc.GetRules(t, ch)
			if err != nil {
				return nil, fmt.Errorf("nftables: listing chain %s: %w", ch.Name, err)
			}
			if len(rules) > 0 {
				if s, _ := dataComment(rules[0].UserData); s == ownerMain {
					ks.fromMain[path] = true
				}
			}
		}
	}
	if ks.sets, err = nc.GetSets(t); err != nil {
		return nil, fmt.Errorf("nftables: listing sets: %w", err)
	}
	return ks, nil
}

// hasAnchors reports whether p installs or calls anchors.
func (p *Program) hasAnchors() bool { return len(p.Anchors) > 0 || len(p.Calls) > 0 }

// LoadAnchor replaces anchor p.Anchor (and the anchors installed with it)
// in one transaction, as pfctl -a NAME -f FILE does: its rules, records and
// sets (its pf tables) are replaced, nothing else changes (the rules that
// call it keep their handles and counters). The dispatch chains of
// wildcard calls are rewritten, so a new child of a wildcard-called anchor
// ("relayd/web" under "relayd/*") is evaluated from this transaction on.
// The table is created (without hooks) when no ruleset is loaded.
func (c *Conn) LoadAnchor(p *Program) error {
	if p.Anchor == "" || IsWildcard(p.Anchor) {
		return fmt.Errorf("nft: LoadAnchor needs an anchor path, not %q", p.Anchor)
	}
	return c.install(p, true)
}

// install loads root (the main ruleset, or an anchor when anchorLoad) with
// its anchors into a table that already holds anchors, replacing the
// chains and sets of what it installs and keeping every other anchor.
func (c *Conn) install(root *Program, anchorLoad bool) error {
	var err error
	for range 8 {
		var gen uint32
		if gen, err = c.genID(); err != nil {
			return err
		}
		if err = c.installOnce(root, anchorLoad, gen); !errors.Is(err, unix.ERESTART) {
			return err
		}
	}
	return fmt.Errorf("nftables: the ruleset kept changing during the load: %w", err)
}

func (c *Conn) installOnce(root *Program, anchorLoad bool, gen uint32) error {
	ks, err := c.kernelState(!anchorLoad)
	if err != nil {
		return err
	}
	var progs []*Program
	txn := map[string]*Program{}
	var calls []string
	var bad error
	root.walk(func(p *Program) {
		if anchorLoad || p != root {
			if p.Anchor == "" || len(p.Anchor) > MaxAnchorPath {
				bad = fmt.Errorf("nft: bad anchor path %q", p.Anchor)
			}
			if txn[p.Anchor] != nil {
				bad = fmt.Errorf("nft: anchor %q defined twice", p.Anchor)
			}
			txn[p.Anchor] = p
		}
		progs = append(progs, p)
		calls = append(calls, p.Calls...)
	})
	if bad != nil {
		return bad
	}
	var flags uint32
	if ks.table != nil {
		flags = ks.table.Flags & unix.NFT_TABLE_F_DORMANT
	}
	b, err := newBatch()
	if err != nil {
		return err
	}
	b.genID = gen
	t := c.tableRef(flags)
	b.AddTable(t)

	// Anchors whose rules and sets go: those replaced, and (main load)
	// those the previous main load installed.
	flush := map[string]bool{}
	for path := range txn {
		if ks.anchors[path] {
			flush[path] = true
		}
	}
	if !anchorLoad {
		for path := range ks.fromMain {
			flush[path] = true
		}
	}
	for name := range ks.chains {
		path, _, ok := parseAnchorName(name)
		switch {
		case ok && (flush[path] || IsWildcard(path)):
			b.FlushChain(&nftables.Chain{Name: name, Table: t})
		case !ok && !anchorLoad:
			// main ruleset chains: flushed first so that no jump holds
			// a chain when it is deleted
			b.FlushChain(&nftables.Chain{Name: name, Table: t})
		}
	}
	for _, s := range ks.sets {
		path, _, ok := parseAnchorName(s.Name)
		if (ok && flush[path]) || (!ok && !anchorLoad) {
			b.DelSet(&nftables.Set{Name: s.Name, Table: t})
		}
	}
	if !anchorLoad {
		for name := range ks.chains {
			if _, _, ok := parseAnchorName(name); !ok {
				b.DelChain(&nftables.Chain{Name: name, Table: t})
			}
		}
	}

	// Every anchor that exists after this transaction, and the chains
	// of those that are new.
	all := map[string]bool{}
	for path := range ks.anchors {
		all[path] = true
	}
	var extra []*Chain
	ensure := func(path string) {
		if all[path] && ks.anchors[path] {
			return
		}
		all[path] = true
		have := map[string]bool{}
		if p := txn[path]; p != nil {
			for _, ch := range p.Chains {
				have[ch.Name] = true
			}
		}
		for _, part := range AnchorParts {
			if name := AnchorChain(path, part); !have[name] {
				extra = append(extra, &Chain{Name: name})
			}
		}
		if txn[path] == nil && !IsWildcard(path) {
			extra = append(extra, &Chain{Name: AnchorChain(path, partMeta)})
		}
	}
	for path := range txn {
		ensure(path)
	}
	for _, path := range calls {
		ensure(path)
	}
	for _, path := range calls {
		if len(path) > MaxAnchorPath {
			return fmt.Errorf("nft: anchor path %q is longer than %d bytes", path, MaxAnchorPath)
		}
	}
	// Dispatch chains: one jump per child, in pf's order.
	var wild []string
	for path := range all {
		if IsWildcard(path) {
			wild = append(wild, path)
		}
	}
	sort.Strings(wild)
	dispatch := &Program{noMeta: true}
	for _, w := range wild {
		kids := children(all, wildcardParent(w))
		for _, part := range AnchorParts {
			ch := &Chain{Name: AnchorChain(w, part)}
			for i := range kids {
				k := kids[i]
				if strings.HasSuffix(part, "_r") {
					k = kids[len(kids)-1-i]
				}
				target := AnchorChain(k, part)
				ch.Rules = append(ch.Rules, &Rule{Text: "jump " + target,
					Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: target}}})
			}
			dispatch.Chains = append(dispatch.Chains, ch)
		}
	}
	// addPrograms adds every chain before any rule.
	empties := &Program{Chains: extra, noMeta: true}
	order := append([]*Program{empties, dispatch}, progs...)
	if err := addPrograms(b.Conn, t, order, -1, true); err != nil {
		return err
	}
	if err := c.send(b, &flags); err != nil {
		if errors.Is(err, unix.ERESTART) {
			return err
		}
		flat := &Program{}
		for _, p := range order {
			flat.Sets = append(flat.Sets, p.Sets...)
			flat.Chains = append(flat.Chains, p.Chains...)
			flat.Records = append(flat.Records, p.Records...)
		}
		for name := range ks.chains {
			if path, _, ok := parseAnchorName(name); ok && txn[path] == nil {
				flat.Chains = append([]*Chain{{Name: name}}, flat.Chains...)
			}
		}
		return c.diagnose(flat, err)
	}
	return nil
}

// anchored reports whether loading p needs install: p has anchors, or the
// table holds anchors to keep.
func (c *Conn) anchored(p *Program) (bool, error) {
	if p.hasAnchors() {
		return true, nil
	}
	t, err := c.current()
	if err != nil || t == nil {
		return false, err
	}
	nc, err := c.readConn()
	if err != nil {
		return false, err
	}
	chains, err := nc.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("nftables: listing chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table.Name == c.table && strings.HasPrefix(ch.Name, "@") {
			return true, nil
		}
	}
	return false, nil
}

// WithAnchor makes Read, FlushKinds and the pf table operations (Tables,
// ChangeTable, TableRanges, ...) work on anchor path instead of the main
// ruleset (pfctl -a path).
func WithAnchor(path string) Option { return func(c *Conn) { c.anchor = path } }

// ownsChain reports whether chain name belongs to the Conn's ruleset (the
// main one or its anchor) and whether it is that ruleset's record chain.
func (c *Conn) ownsChain(name string) (meta, mine bool) {
	if c.anchor == "" {
		if strings.HasPrefix(name, "@") {
			return false, false
		}
		return name == MetaChain, true
	}
	path, part, ok := parseAnchorName(name)
	if !ok || path != c.anchor {
		return false, false
	}
	return part == partMeta, true
}

// setName is the kernel name of the Conn's ruleset's set name.
func (c *Conn) setName(name string) string {
	if c.anchor == "" {
		return name
	}
	return AnchorSet(c.anchor, name)
}

// ownSet returns the set's name within the Conn's ruleset, or "" when the
// set belongs to another.
func (c *Conn) ownSet(kernel string) string {
	path, name, ok := parseAnchorName(kernel)
	switch {
	case c.anchor == "" && !ok:
		return kernel
	case c.anchor != "" && ok && path == c.anchor:
		return name
	}
	return ""
}

// Anchors returns the paths of the anchors in the table, sorted, without
// the wildcard dispatch chains (pfctl -s Anchors -v).
func (c *Conn) Anchors() ([]string, error) {
	ks, err := c.kernelState(false)
	if err != nil {
		return nil, err
	}
	if ks.table == nil {
		return nil, errNoTable
	}
	var out []string
	for p := range ks.anchors {
		if !IsWildcard(p) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out, nil
}

// isJumpLimit reports whether err is the kernel's refusal of a jump loop
// or of jumps nested deeper than NFT_JUMP_STACK_SIZE.
func isJumpLimit(err error) bool {
	return errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EMLINK)
}

// setBatchGenID adds NFNL_BATCH_GENID to the batch-begin message.
func setBatchGenID(msgs []netlink.Message, gen uint32) {
	attr := binary.NativeEndian.AppendUint16(nil, 8)
	attr = binary.NativeEndian.AppendUint16(attr, unix.NFNL_BATCH_GENID)
	attr = binary.BigEndian.AppendUint32(attr, gen)
	msgs[0].Data = append(msgs[0].Data, attr...)
	msgs[0].Header.Length = 0 // recomputed when sent
}

// genID returns the kernel's nftables ruleset generation: install reads
// the table, then commits only if no other transaction came in between
// (two anchor loads at once would otherwise each rewrite the wildcard
// dispatch chains without the other's new anchor).
func (c *Conn) genID() (uint32, error) {
	cfg := &netlink.Config{}
	if c.netnsFD >= 0 {
		cfg.NetNS = c.netnsFD
	}
	nl, err := netlink.Dial(unix.NETLINK_NETFILTER, cfg)
	if err != nil {
		return 0, fmt.Errorf("nftables: %w", err)
	}
	defer nl.Close()
	replies, err := nl.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN), Flags: netlink.Request},
		Data:   []byte{unix.AF_UNSPEC, 0, 0, 0},
	})
	if err != nil {
		return 0, fmt.Errorf("nftables: reading the generation: %w", err)
	}
	for _, m := range replies {
		if len(m.Data) < 4 {
			continue
		}
		attrs, err := netlink.UnmarshalAttributes(m.Data[4:])
		if err != nil {
			return 0, err
		}
		for _, a := range attrs {
			if a.Type == unix.NFTA_GEN_ID && len(a.Data) == 4 {
				return binary.BigEndian.Uint32(a.Data), nil
			}
		}
	}
	return 0, fmt.Errorf("nftables: no generation in the kernel's answer")
}
