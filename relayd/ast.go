package relayd

import (
	"fmt"
	"net/netip"
	"time"
)

// Pos is a position in a configuration file; Line and Col start at 1.
type Pos struct {
	File string
	Line int
	Col  int
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col) }

// Defaults from relayd.h (CHECK_INTERVAL, CHECK_TIMEOUT, RELAY_TIMEOUT).
const (
	DefaultInterval       = 10 * time.Second
	DefaultTimeout        = 200 * time.Millisecond
	DefaultSessionTimeout = 600 * time.Second
	maxPrefork            = 32 // RELAY_MAXPROC
	maxPriority           = 63 // RTP_MAX
	maxIncludeDepth       = 32
	tableNameSize         = 64 // TABLE_NAME_SIZE
)

// LogOpts is the set of "log" global options.
type LogOpts uint8

// Log options as relayd's loglevel rule gives them.
const (
	LogStateChanges     LogOpts = 1 << iota // log state changes
	LogHostChecks                           // log host checks
	LogConnection                           // log connection
	LogConnectionErrors                     // log connection errors
)

// Config is a parsed relayd.conf.
type Config struct {
	Interval  time.Duration // global check interval
	Timeout   time.Duration // global check timeout (last value in the file)
	Log       LogOpts
	Prefork   int         // accepted and ignored: it only concerns relays
	Tables    []*TableDef // table definitions (templates), in file order
	Redirects []*Redirect // in file order
	Instances []*Table    // tables as used by forward lines, with host IDs
}

// TableDef is a "table <name> { hosts }" definition.
type TableDef struct {
	Pos      Pos
	Name     string
	Disabled bool
	Hosts    []*HostDef
	timeout  time.Duration // global timeout when the table was defined
}

// HostDef is one host of a table definition with its options.
type HostDef struct {
	Pos      Pos
	Name     string     // as written (address or host name)
	Addr     netip.Addr // valid when Name is a numeric address
	Retry    int
	Parent   int // host ID of the parent, 0 for none
	Priority int
	TTL      int
}

// Mode is a table's scheduling mode for a redirection.
type Mode int

// Modes accepted by relayd's dstmode rule.
const (
	ModeRoundRobin Mode = iota // default (RELAY_DSTMODE_DEFAULT)
	ModeLeastStates
	ModeSourceHash
	ModeRandom
	ModeLoadBalance
	ModeHash
)

var modeNames = [...]string{"roundrobin", "least-states", "source-hash", "random", "loadbalance", "hash"}

func (m Mode) String() string { return modeNames[m] }

// CheckKind is the kind of host check of a table.
type CheckKind int

// Check kinds (relayd.h CHECK_*).
const (
	CheckNone CheckKind = iota
	CheckICMP
	CheckTCP
	CheckHTTPCode
	CheckHTTPDigest
	CheckSendExpect
	CheckScript
)

var checkNames = [...]string{"none", "icmp", "tcp", "http code", "http digest", "send expect", "script"}

func (k CheckKind) String() string { return checkNames[k] }

// Check is a table's "check" option.
type Check struct {
	Pos    Pos
	Kind   CheckKind
	TLS    bool   // https, "check tls", "send ... expect ... tls"
	Path   string // http path, script path
	Host   string // http Host header, "" for none (HTTP/1.0)
	Code   int    // expected http status code
	Digest string // lowercase hex digest of the page
	MD5    bool   // digest is MD5 (32 hex digits) instead of SHA-1
	Send   string // data sent; "" with "nothing"
	Expect string // shell glob the received data must match
}

// Forward is a "forward to <table> options" line of a redirection.
type Forward struct {
	Pos       Pos
	Table     string
	Port      uint16
	PortSet   bool // "port" was given (relayd's F_PORT); else Port is the first listen port
	Mode      Mode
	Key       string // source-hash key as written ("0x" and 32 hex digits, or a string); "" for none
	Check     Check
	Timeout   time.Duration // 0: the table definition's timeout
	Interval  time.Duration // 0: global interval
	Demote    string
	Interface string
	Instance  *Table
}

// PortRange is a listen port or a range lo:hi; Hi is 0 for a single port.
type PortRange struct{ Lo, Hi uint16 }

// Listen is a "listen on" line of a redirection.
type Listen struct {
	Pos       Pos
	Addr      string // address, host name or interface as written
	Proto     string // "tcp" (default) or a protocol name
	Port      PortRange
	Interface string
	PFLog     bool
}

// Redirect is a "redirect name { ... }" block.
type Redirect struct {
	Pos            Pos
	Name           string
	Listens        []Listen
	Forward        *Forward // main table
	Backup         *Forward // optional second forward line
	Disabled       bool
	Sticky         bool
	Tag            string
	MatchTag       bool
	SessionTimeout time.Duration
}

// Table is a table as the checker runs it: a definition used by a forward
// line with a port, like relayd's table_inherit makes one ("name:port").
type Table struct {
	ID       int
	Name     string
	Port     uint16
	Check    Check
	Timeout  time.Duration
	Skip     int // intervals skipped between checks (interval/global - 1)
	Disabled bool
	Demote   string
	Hosts    []*Host
}

// Host is one host of a Table with its relayd host ID.
type Host struct {
	ID       int
	Name     string
	Addr     netip.Addr
	Retry    int
	ParentID int
	Priority int
	TTL      int
	Pos      Pos
}
