package pfconf

import "net/netip"

// Action is what a rule does, numbered as pf's PF_PASS, PF_DROP, ...
type Action uint8

// Rule actions, in pf's order (print tables depend on it).
const (
	ActPass Action = iota
	ActBlock
	ActScrub
	ActNoScrub
	ActNAT
	ActNoNAT
	ActBINAT
	ActNoBINAT
	ActRDR
	ActNoRDR
	_
	_
	ActMatch
)

// Direction of a rule.
type Direction uint8

// Directions.
const (
	DirAny Direction = iota
	DirIn
	DirOut
)

// AF is an address family; 0 means "both".
type AF uint8

// Address families.
const (
	AFUnspec AF = 0
	AFInet   AF = 2
	AFInet6  AF = 28 // FreeBSD's AF_INET6 (only used as a tag)
)

// PortOp is a port or id comparison operator, numbered as pf's PF_OP_*.
type PortOp uint8

// Comparison operators.
const (
	OpNone PortOp = iota
	OpIRG         // a >< b
	OpEQ          // = a
	OpNE          // != a
	OpLT          // < a
	OpLE          // <= a
	OpGT          // > a
	OpGE          // >= a
	OpXRG         // a <> b
	OpRRG         // a:b
)

// AddrType is the kind of an address in a rule.
type AddrType uint8

// Address kinds, as pf's PF_ADDR_*.
const (
	AddrMask    AddrType = iota // address and netmask; zero Addr = any
	AddrNoRoute                 // no-route
	AddrDynIf                   // (ifname[:mod])
	AddrTable                   // <table>
	AddrURPF                    // urpf-failed
	AddrRange                   // addr - addr
	AddrNone                    // no address (unused pool)
)

// Interface address modifiers (pf's PFI_AFLAG_*).
const (
	IfNetwork   uint8 = 0x01 // :network
	IfBroadcast uint8 = 0x02 // :broadcast
	IfPeer      uint8 = 0x04 // :peer
	IfNoAlias   uint8 = 0x08 // :0
)

// Addr is an address as a rule carries it after expansion.
//
// For AddrMask, Addr is the network address (host bits cleared) and Bits its
// prefix length; an invalid Addr means "any". For AddrRange, Addr and To are
// the bounds. For AddrDynIf, Name is the interface, IfFlags its modifiers and
// Bits the netmask applied to its addresses (128 = none). For AddrTable,
// Name is the table.
type Addr struct {
	Type    AddrType
	Addr    netip.Addr
	To      netip.Addr
	Bits    int
	Name    string
	IfFlags uint8
}

// IsAny reports whether a is "any".
func (a Addr) IsAny() bool { return a.Type == AddrMask && !a.Addr.IsValid() }

// RuleAddr is one side (from or to) of a rule.
type RuleAddr struct {
	Addr   Addr
	Neg    bool
	PortOp PortOp
	Port   [2]uint16
}

// IDMatch is a user or group comparison (uid/gid are numeric after
// expansion).
type IDMatch struct {
	Op  PortOp
	ID  [2]uint32
	Set bool
}

// Pool types (pf's PF_POOL_*) and pool flags.
const (
	PoolNone       uint8 = 0
	PoolBitmask    uint8 = 1
	PoolRandom     uint8 = 2
	PoolSourceHash uint8 = 3
	PoolRoundRobin uint8 = 4
)

// PoolAddr is one address of a translation or routing pool.
type PoolAddr struct {
	Addr   Addr
	Ifname string // route-to interface, or "" for translation pools
}

// Pool is a translation target (nat, rdr, binat, nat-to, rdr-to, af-to) or
// a routing target (route-to, reply-to, dup-to).
type Pool struct {
	Addrs               []PoolAddr
	ProxyPort           [2]uint16 // nat: port range (0,0 = static-port); rdr: target port(s)
	Type                uint8     // PoolNone, PoolRoundRobin, ...
	Sticky              bool
	EndpointIndependent bool
	Key                 [4]uint32 // source-hash key
	MapE                struct {
		Offset, PSIDLen uint8
		PSID            uint16
	}
}

// Empty reports whether the pool has no address.
func (p *Pool) Empty() bool { return len(p.Addrs) == 0 }

// Route kinds.
const (
	RouteNone uint8 = iota
	RouteFastRoute
	RouteTo
	RouteReplyTo
	RouteDupTo
)

// State kinds (pf's PF_STATE_*).
const (
	StateNone     uint8 = 0
	StateNormal   uint8 = 1
	StateModulate uint8 = 2
	StateSynproxy uint8 = 3
)

// Log flags.
const (
	LogOn      uint8 = 0x01
	LogAll     uint8 = 0x02
	LogSocket  uint8 = 0x04 // log (user)
	LogMatches uint8 = 0x08
)

// Block return kinds.
const (
	ReturnDrop uint8 = iota
	ReturnRST
	ReturnICMP
	ReturnBoth // "return": RST for TCP, ICMP otherwise
)

// Timeouts, in pf's PFTM order.
const (
	TmTCPFirst = iota
	TmTCPOpening
	TmTCPEstablished
	TmTCPClosing
	TmTCPFinWait
	TmTCPClosed
	TmSCTPFirst
	TmSCTPOpening
	TmSCTPEstablished
	TmSCTPClosing
	TmSCTPClosed
	TmUDPFirst
	TmUDPSingle
	TmUDPMultiple
	TmICMPFirst
	TmICMPError
	TmOtherFirst
	TmOtherSingle
	TmOtherMultiple
	TmFrag
	TmInterval
	TmAdaptiveStart
	TmAdaptiveEnd
	TmSrcNode
	TmTSDiff
	TmMax
)

// timeoutNames maps pf.conf timeout names to PFTM indexes, in pfctl's
// table order (printing searches it in this order).
var timeoutNames = []struct {
	name string
	tm   int
}{
	{"tcp.first", TmTCPFirst}, {"tcp.opening", TmTCPOpening},
	{"tcp.established", TmTCPEstablished}, {"tcp.closing", TmTCPClosing},
	{"tcp.finwait", TmTCPFinWait}, {"tcp.closed", TmTCPClosed},
	{"tcp.tsdiff", TmTSDiff},
	{"sctp.first", TmSCTPFirst}, {"sctp.opening", TmSCTPOpening},
	{"sctp.established", TmSCTPEstablished}, {"sctp.closing", TmSCTPClosing},
	{"sctp.closed", TmSCTPClosed},
	{"udp.first", TmUDPFirst}, {"udp.single", TmUDPSingle},
	{"udp.multiple", TmUDPMultiple}, {"icmp.first", TmICMPFirst},
	{"icmp.error", TmICMPError}, {"other.first", TmOtherFirst},
	{"other.single", TmOtherSingle}, {"other.multiple", TmOtherMultiple},
	{"frag", TmFrag}, {"interval", TmInterval},
	{"adaptive.start", TmAdaptiveStart}, {"adaptive.end", TmAdaptiveEnd},
	{"src.track", TmSrcNode},
}

func timeoutByName(name string) (int, bool) {
	for _, t := range timeoutNames {
		if t.name == name {
			return t.tm, true
		}
	}
	return 0, false
}

func timeoutName(tm int) string {
	for _, t := range timeoutNames {
		if t.tm == tm {
			return t.name
		}
	}
	return "inv.timeout"
}

// StateOpts are the options in "keep state (...)".
type StateOpts struct {
	Max             uint32
	NoSync          bool
	SourceTrack     bool
	SourceTrackRule bool
	MaxSrcStates    uint32
	MaxSrcConn      uint32
	MaxSrcConnRate  struct{ Limit, Seconds uint32 }
	MaxSrcNodes     uint32
	Overload        string // table name
	Flush           bool
	FlushGlobal     bool
	IfBound         bool
	Floating        bool // explicitly floating (not printed)
	Sloppy          bool
	Pflow           bool
	Timeouts        [TmMax]uint32
}

// Rule is one expanded rule: every list has been crossed out into single
// values, names resolved to numbers and addresses. It is the input of the
// printer and of the compiler to nftables.
type Rule struct {
	Pos    Pos // where the rule was written
	Nr     int // number within its ruleset
	Action Action
	// Anchor is set for anchor calls (anchor, nat-anchor, ...).
	Anchor *Anchor
	// AnchorCall is the anchor name as written ("" for non-anchor rules;
	// "_N" for unnamed inline anchors).
	AnchorCall string

	NatPass bool // nat/rdr/binat pass

	Return    uint8 // block: ReturnDrop, ReturnRST, ReturnICMP, ReturnBoth
	ReturnTTL uint8
	// ReturnICMP and ReturnICMP6 are (type<<8 | code).
	ReturnICMP, ReturnICMP6 uint16

	Direction Direction
	Log       uint8
	LogIf     uint8
	Quick     bool
	Ifname    string
	IfNot     bool
	RcvIfname string
	RcvIfNot  bool

	RouteType         uint8
	Route             Pool
	PreferIPv6Nexthop bool

	AF    AF
	Proto uint8
	Src   RuleAddr
	Dst   RuleAddr
	OS    string

	UID, GID IDMatch

	Flags, FlagSet uint8
	// ICMPType and ICMPCode are type+1 and code+1 (0 = unset), as pf
	// stores them.
	ICMPType, ICMPCode uint8

	TOS        uint8
	Prio       uint8 // 0 = unset; prioZero for "prio 0"
	SetPrio    [2]uint8
	SetPrioSet bool
	SetTOS     uint8
	SetTOSSet  bool

	MaxPktRate struct{ Limit, Seconds uint32 }
	MaxPktSize uint16

	KeepState     uint8
	StateOpts     StateOpts
	Prob          uint32 // 0 = always
	ProbText      string // probability as pfctl prints it (without %)
	AllowOpts     bool
	Fragment      bool
	Labels        []string
	Ridentifier   uint32
	Queue, PQueue string
	Tag           string
	Tagged        string
	TaggedNot     bool
	Rtable        int // -1 = unset
	DivertPort    uint16
	DivertAddr    netip.Addr
	DivertReply   bool
	Once          bool

	// Translation on pass/match rules and old-style nat/rdr/binat.
	NAT, RDR Pool
	NAF      AF // af-to target family
	AFTo     bool

	StateLimiter        uint32 // 0 = none; id
	StateLimiterSet     bool
	StateLimiterNoMatch bool

	// Scrub options.
	Scrub ScrubOpts

	Dnpipe, Dnrpipe uint32
	DnQueue         bool
}

// ScrubOpts are the options of a scrub rule or of "scrub (...)".
type ScrubOpts struct {
	NoDF          bool
	RandomID      bool
	MinTTL        uint8
	MaxMSS        uint16
	SetTOS        uint8
	SetTOSSet     bool
	ReassembleTCP bool
	NoReassemble  bool // fragment no reassemble
	Set           bool // scrub (...) given on a filter rule
}

const prioZero = 255

// EtherAddr is a MAC address with mask as an ether rule carries it.
type EtherAddr struct {
	Addr [6]byte
	Mask [6]byte
	Neg  bool
	Set  bool
}

// EtherRule is an expanded "ether" rule.
type EtherRule struct {
	Pos          Pos
	Nr           int
	Action       Action // ActPass, ActBlock
	Anchor       *Anchor
	AnchorCall   string
	Direction    Direction
	Quick        bool
	Ifname       string
	IfNot        bool
	BridgeTo     string
	Proto        uint16
	Src, Dst     EtherAddr
	IPSrc, IPDst RuleAddr
	Labels       []string
	Ridentifier  uint32
	Queue        string
	Tag          string
	Tagged       string
	TaggedNot    bool
	Dnpipe       uint32
	DnQueue      bool
}

// Anchor is a ruleset: the main one or an anchor's. Rules are kept per pf
// ruleset kind, in file order.
type Anchor struct {
	Name   string // as called ("" for the main ruleset)
	Ether  []*EtherRule
	Scrub  []*Rule
	Filter []*Rule
	NAT    []*Rule
	RDR    []*Rule
	BINAT  []*Rule
}

// Decl is something pfctl prints while parsing, before the rules: macro
// definitions, options, tables, queues, limiters.
type Decl interface {
	declPos() Pos
}

// MacroDecl is "name = value".
type MacroDecl struct {
	Pos         Pos
	Name, Value string
}

// OptionDecl is one "set" statement: its values, and the form pfctl
// prints it in ("set limit states 100").
type OptionDecl struct {
	Pos  Pos
	Name string // option keyword ("limit", "timeout", "skip", ...)
	Text string // printed line(s) without the last newline; for printing only
	// Value holds what this statement sets: the fields of option Name
	// (Ruleset.Options merges every statement's).
	Value *Options
}

// TableDecl is a table definition with its resolved addresses.
type TableDecl struct {
	Pos      Pos
	Name     string
	Const    bool
	Persist  bool
	Counters bool
	// Inits are the initialisers in order: address lists and files.
	Inits    []TableInit
	InitAddr bool // "{ }" was given
	// Entries are all addresses (lists and files), resolved.
	Entries []TableEntry
}

// TableInit is one initialiser of a table: a list of addresses or a file.
type TableInit struct {
	File    string
	Entries []TableEntry
}

// TableEntry is one table address.
type TableEntry struct {
	Neg  bool
	AF   AF
	Addr Addr
}

// AltqDecl is "altq on IF ..." or "queue NAME ...": a queue discipline or a
// queue, with the text pfctl prints.
type AltqDecl struct {
	Pos  Pos
	Text string
	// OpenBSD is set for an OpenBSD (5.5+) HFSC/FQ-CoDel queue,
	// "queue NAME on IF|parent P bandwidth ...", rather than ALTQ.
	OpenBSD bool
	// Queues are the statement's queues, one per interface, typed for
	// the loader.
	Queues []Queue
}

// Queue is one queue of one interface as the statement declares it. An
// ALTQ "altq on IF" is the interface's root (Name ""); an ALTQ queue's
// Parent is "" when the altq statement lists it. An OpenBSD root queue
// ("on IF", no parent) has a Name and no Parent.
type Queue struct {
	Name, Parent string
	Ifname       string
	// Sched is the ALTQ scheduler ("cbq", "priq", "hfsc", "fairq",
	// "codelq"); "" for an OpenBSD queue.
	Sched string
	// Bandwidth is in bits per second, percentages of the parent's
	// resolved (0: not given). For an OpenBSD queue it is the bandwidth
	// curve's m2; its burst is in Linkshare.
	Bandwidth uint64
	Priority  int // ALTQ priority (pfctl's default 1)
	Qlimit    int // 0: not given
	// Flags are the ALTQ scheduler flags as written (default, borrow,
	// red, ecn, rio, cleardscp, ...).
	Flags   []string
	Default bool
	// Service curves: ALTQ hfsc's realtime, linkshare and upperlimit;
	// OpenBSD's min, bandwidth and max.
	Realtime, Linkshare, Upperlimit Curve
	// Flows and Quantum are OpenBSD's FQ-CoDel options (0: not given).
	Flows, Quantum int
}

// HasFlag reports whether the ALTQ scheduler flag f was given.
func (q *Queue) HasFlag(f string) bool {
	for _, x := range q.Flags {
		if x == f {
			return true
		}
	}
	return false
}

// Curve is a service curve: M1 bits per second for D milliseconds, then
// M2, percentages resolved. Set says it was given.
type Curve struct {
	M1, M2 uint64
	D      uint32
	Set    bool
}

// LimiterDecl is "state limiter NAME id N limit N [rate N/N]".
type LimiterDecl struct {
	Pos   Pos
	Name  string
	ID    uint32
	Limit uint32
	Rate  struct{ Limit, Seconds uint32 }
}

func (d *MacroDecl) declPos() Pos   { return d.Pos }
func (d *OptionDecl) declPos() Pos  { return d.Pos }
func (d *TableDecl) declPos() Pos   { return d.Pos }
func (d *AltqDecl) declPos() Pos    { return d.Pos }
func (d *LimiterDecl) declPos() Pos { return d.Pos }

// LoadAnchor is "load anchor NAME from FILE".
type LoadAnchor struct {
	Pos        Pos
	Name, File string
}

// Ruleset is an expanded pf.conf: what pfctl would load.
type Ruleset struct {
	Sources *Sources
	// Decls in file order (printed first, as pfctl prints them while
	// parsing).
	Decls []Decl
	Main  *Anchor
	Loads []LoadAnchor
	// Options are the "set" options as values.
	Options Options
}
