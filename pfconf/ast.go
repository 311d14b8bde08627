package pfconf

import "net/netip"

// File is a parsed pf.conf: statements with positions, lists not yet
// expanded and names not yet resolved. Includes are already spliced in.
type File struct {
	Name    string
	Sources *Sources
	Stmts   []Stmt

	readFile     func(string) ([]byte, error)
	maxExpansion int
	// Macros holds every macro's final value (after -D overrides).
	Macros map[string]string
}

// Stmt is one statement of a pf.conf file.
type Stmt interface {
	Pos() Pos
}

// DeclStmt is a statement whose only effect on output is a declaration
// printed at parse time (macro, option, queue, limiter).
type DeclStmt struct {
	Decl Decl
}

// TableStmt is "table <name> [const] [persist] [counters] { ... } file ...".
type TableStmt struct {
	P        Pos
	Name     string
	Const    bool
	Persist  bool
	Counters bool
	Inits    []TableInitItem
	InitAddr bool
}

// TableInitItem is one initialiser of a table definition.
type TableInitItem struct {
	P     Pos
	File  string
	Hosts []HostItem
}

// HostKind classifies an address as written.
type HostKind uint8

// Address forms.
const (
	HostAddr    HostKind = iota // IP literal with optional /bits
	HostRange                   // a - b
	HostName                    // interface, group, "self" or host name
	HostDynIf                   // (ifname)
	HostTable                   // <table>
	HostNoRoute                 // no-route
	HostURPF                    // urpf-failed
	HostNone                    // route-to interface without address
)

// HostItem is one address of a list as written.
//
// Bits is the netmask given with "/" (-1 when none). For HostAddr, Addr is
// the literal (not yet masked). For HostName and HostDynIf, Name is the
// name and IfFlags the modifiers (:network, ...). RouteIf is the interface
// of a route-to target "(if addr)".
type HostItem struct {
	P       Pos
	Kind    HostKind
	Not     bool
	Addr    netip.Addr
	To      netip.Addr
	Bits    int
	Name    string
	IfFlags uint8
	RouteIf string
}

// IfItem is an interface in "on ..." (Not for "on ! if").
type IfItem struct {
	P       Pos
	Name    string
	Not     bool
	Dynamic bool // antispoof for (if)
}

// ProtoItem is a protocol number.
type ProtoItem struct {
	P     Pos
	Proto uint8
}

// PortItem is a port match.
type PortItem struct {
	P    Pos
	Op   PortOp
	Port [2]uint16
}

// IDItem is a user or group match as written (names resolved later).
type IDItem struct {
	P     Pos
	Op    PortOp
	Name  [2]string // names, or "" when numeric
	ID    [2]uint32
	isSet bool
}

// ICMPItem is an icmp-type or icmp6-type match; Type and Code are +1
// encoded (0 = unset).
type ICMPItem struct {
	P     Pos
	Type  uint8
	Code  uint8
	Proto uint8 // 1 or 58
}

// portRange is a port or range as parsed by pfctl's parseport.
type portRange struct {
	A, B uint16
	T    PortOp // OpNone, OpRRG (a:b) or OpIRG (a:*)
}

// RedirSpec is a translation or routing target with its pool options.
type RedirSpec struct {
	P          Pos
	Hosts      []HostItem
	RPort      portRange
	HasRPort   bool
	PoolType   uint8
	Sticky     bool
	StaticPort bool
	EndpointI  bool
	Key        *[4]uint32
	MapE       *struct {
		Offset, PSIDLen uint8
		PSID            uint16
	}
	AF       AF // af-to
	PreferV6 bool
}

// RuleStmt is a pass, block, match, scrub, anchor or translation rule
// before expansion: R holds every single-valued option, the slices hold the
// lists to expand. A nil host list means "any".
type RuleStmt struct {
	P        Pos
	R        Rule
	Ifs      []IfItem
	Protos   []ProtoItem
	SrcHosts []HostItem
	DstHosts []HostItem
	SrcPorts []PortItem
	DstPorts []PortItem
	UIDs     []IDItem
	GIDs     []IDItem
	ICMPs    []ICMPItem
	Route    *RedirSpec
	Nat      *RedirSpec
	Rdr      *RedirSpec
	// Anchors: Body is the inline ruleset (nil when not inline).
	Body   []Stmt
	Inline bool
	// Antispoof: expanded into block rules per interface.
	Antispoof bool
	// BinatTo marks binat-to (printed as such).
	BinatTo bool
	// flagsGiven records an explicit "flags" option.
	flagsGiven bool
	// anchorRule: parsed by anchorRule (its messages differ from pfrule's).
	anchorRule bool
}

// EtherStmt is an "ether" rule before expansion.
type EtherStmt struct {
	P      Pos
	R      EtherRule
	Ifs    []IfItem
	Protos []uint16
	Srcs   []EtherAddr
	Dsts   []EtherAddr
	IPSrc  []HostItem
	IPDst  []HostItem
	Body   []Stmt
	Inline bool
}

// LoadStmt is "load anchor NAME from FILE".
type LoadStmt struct {
	P          Pos
	Name, File string
}

// Pos implementations.
func (s *DeclStmt) Pos() Pos  { return s.Decl.declPos() }
func (s *TableStmt) Pos() Pos { return s.P }
func (s *RuleStmt) Pos() Pos  { return s.P }
func (s *EtherStmt) Pos() Pos { return s.P }
func (s *LoadStmt) Pos() Pos  { return s.P }
