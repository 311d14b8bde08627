package daemon

import (
	"io"
	"log/slog"
	"net/netip"
	"time"

	"github.com/pfcarp/pfcarp/carp"
	"github.com/pfcarp/pfcarp/config"
	"github.com/pfcarp/pfcarp/internal/clock"
	"github.com/pfcarp/pfcarp/nft"
	"github.com/pfcarp/pfcarp/pfload"
	"github.com/pfcarp/pfcarp/pfsync"
)

// System is everything the daemon does to the machine: the kernel's
// addresses, nftables tables, links and conntrack. The real one
// (LinuxSystem) speaks netlink; tests substitute fakes, so the daemon's
// own logic (start order, unwinding, reloads, link and pfsync events) is
// tested without root.
type System interface {
	// SetForwarding applies gateway_enable / ipv6_gateway_enable.
	SetForwarding(cfg *config.Node) error
	// SetPriority gives every thread of the daemon the scheduling
	// priority nice (pfcarp_nice).
	SetPriority(nice int) error
	// InstallHA replaces the persistent tables: conntrack exemption of
	// CARP and pfsync, and the liveness guard for vips (guard_linux.go).
	InstallHA(vips []netip.Addr) error
	// RemoveHA removes them.
	RemoveHA() error
	// OpenLease creates the live table: held VIPs answer for ttl after
	// each renewal, and not at all once the process is gone.
	OpenLease(ttl time.Duration) (Lease, error)
	// VIPs returns the address owner of a parent interface.
	VIPs(parent string) VIPOwner
	// NewTransport opens CARP's transport on a parent interface.
	NewTransport(parent string, v4, v6 bool) (carp.Transport, error)
	// LoadPF loads cfg's pf_rules, as pfload.Load read them (with their
	// load anchor files), into the kernel in one transaction.
	LoadPF(cfg *config.Node, rs *pfload.Ruleset) error
	// LoadAnchor replaces one anchor of the loaded ruleset (relayd's
	// relayd/NAME) in one transaction (nft.Conn.LoadAnchor).
	LoadAnchor(p *nft.Program) error
	// StickyBindings lists the sticky-address bindings of the anchors
	// whose path starts with prefix (nft.Conn.StickyElems).
	StickyBindings(prefix string) ([]nft.StickyElem, error)
	// SetSticky binds e.Source to e.Backend in sticky map e.Map for
	// e.Expires (nft.Conn.SetStickyElem).
	SetSticky(e nft.StickyElem) error
	// ForgetStickyBackends removes the sticky-address bindings to the
	// backends in addrs from the sticky maps of the anchors whose path
	// starts with prefix, and returns how many it removed.
	ForgetStickyBackends(prefix string, addrs []netip.Addr) (int, error)
	// StartPflog starts writing logged packets to pflog_logfile.
	StartPflog(cfg *config.Node, log *slog.Logger) (io.Closer, error)
	// StartPfsync starts pfsync as configured; nil, nil when pfsync0 is
	// not up.
	StartPfsync(cfg *config.Node, h SyncHooks) (Syncer, error)
	// Links subscribes to link state reports.
	Links() LinkSource
	// PFStats reads pf's rule counters and the state table's size.
	PFStats() (*PFStats, error)
	// WatchAddrs reports (coalesced) that some interface address changed,
	// until done is closed; the channel closes when the subscription ends.
	WatchAddrs(done <-chan struct{}) (<-chan struct{}, error)
	// RefreshPFAddrs sets pf's dynamic interface-address sets ("(if)") to
	// the addresses as cfg's node sees them now, in one transaction.
	RefreshPFAddrs(cfg *config.Node) (int, error)
}

// PFStats are pf's counters as the kernel has them.
type PFStats struct {
	Enabled  bool
	Rules    []PFRuleStat
	States   int
	StatesOK bool // States could be read
	// Tables are the pf tables of the main ruleset and of every anchor.
	Tables []PFTableStat
}

// PFTableStat is one pf table's size.
type PFTableStat struct {
	Anchor string // "" for the main ruleset
	Name   string
	// Entries is what pfctl -T show lists; -1 when the table was too
	// large to count (TableSizeLimit).
	Entries int
}

// TableSizeLimit is the number of set elements (two per address range) a
// metrics scrape or a page view reads of each pf table to count its
// entries: reading this many takes well under a second, while a table of a
// million addresses takes over a minute (nft.Conn.TableSize).
const TableSizeLimit = 100000

// PFRuleStat is one pf rule's counters.
type PFRuleStat struct {
	Kind        string // filter, nat, rdr, ...
	Nr          int
	Label       string
	Text        string // as pfctl prints it
	Packets     uint64
	Bytes       uint64
	Evaluations uint64
}

// Lease is the live table (see guard_linux.go).
type Lease interface {
	Hold(addrs []netip.Addr) error
	Release(addrs []netip.Addr) error
	Renew() error
	// SetTTL changes the lease's length from the next renewal on.
	SetTTL(ttl time.Duration)
	Close() error
}

// VIPOwner puts a parent's virtual addresses on and off (vip.Owner).
type VIPOwner interface {
	Add(prefixes []netip.Prefix) error
	Remove(prefixes []netip.Prefix) error
	// Announce sends gratuitous ARP / unsolicited NA for addresses held.
	Announce(prefixes []netip.Prefix) error
}

// SyncHooks is what pfsync may call back into the daemon.
type SyncHooks struct {
	Logger *slog.Logger
	Clock  clock.Clock
	// Demote raises (delta > 0) or lowers CARP's demotion while a bulk
	// update runs; nil when no CARP group is configured.
	Demote func(delta int, reason string)
}

// Syncer is a running pfsync (pfsync.Runner and its conntrack feed).
type Syncer interface {
	// RequestBulk asks the peer for a bulk update (demoting CARP until it
	// is done).
	RequestBulk(reason string)
	// LinkUp tells pfsync that the sync link came back.
	LinkUp()
	// TakeOver tells pfsync that this node has become (or stays, having
	// heard another) master: the states it holds may have been carried on
	// by the peer meanwhile. It returns at once; the work is pfsync's.
	TakeOver()
	// Refresh asks the peer for its whole table without demoting CARP
	// (pfsync.Engine.Refresh): a master heard another master.
	Refresh(reason string)
	Status() pfsync.Status
	Close()
}

// LinkState is one report of a link's state.
type LinkState struct {
	Name    string
	Index   int
	Up      bool // administratively up with a carrier
	Deleted bool
	// CarrierUps is IFLA_CARRIER_UP_COUNT (how often the link gained its
	// carrier), when HasUps.
	CarrierUps uint32
	HasUps     bool
}

// LinkSource delivers link reports: first the current state of every link,
// then each change, until done is closed. The report channel closes when
// the subscription ends (an overrun socket, a netlink error); errs carries
// errors the subscription survived.
type LinkSource interface {
	Subscribe(done <-chan struct{}) (reports <-chan LinkState, errs <-chan error, err error)
}
