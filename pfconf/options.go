package pfconf

import "strings"

// Limit indexes Options.Limits: the pools of "set limit", in limitNames'
// order.
type Limit uint8

// Limits of "set limit".
const (
	LimitStates Limit = iota
	LimitSrcNodes
	LimitFrags
	LimitTables
	LimitTableEntries
	LimitPktdelayPkts
	LimitAnchors
	LimitEthAnchors
	LimitMax
)

// limitNames are the pools of "set limit": FreeBSD's pf_limits
// (pfctl_parser.c) and OpenBSD's, which adds "tables" and "pktdelay_pkts"
// and lacks "eth-anchors". Indexed by Limit.
var limitNames = [LimitMax]string{"states", "src-nodes", "frags", "tables", "table-entries", "pktdelay_pkts", "anchors", "eth-anchors"}

// limitByName finds a pool by name, ignoring case as pfctl_set_limit does
// (strcasecmp).
func limitByName(name string) (Limit, bool) {
	for i, l := range limitNames {
		if strings.EqualFold(l, name) {
			return Limit(i), true
		}
	}
	return 0, false
}

// String returns the pool's pf.conf name.
func (l Limit) String() string {
	if l < LimitMax {
		return limitNames[l]
	}
	return "inv.limit"
}

// TimeoutName returns the pf.conf name of timeout tm (a Tm* constant).
func TimeoutName(tm int) string { return timeoutName(tm) }

// Options are a ruleset's "set" options as values. Several statements for
// one option: the last wins (per timeout and per limit), except "set skip",
// whose interfaces add up, as pfctl does.
type Options struct {
	// Given maps each option keyword given ("timeout", "limit", "skip",
	// "block-policy", ...) to its last statement.
	Given map[string]Pos

	// Timeouts are "set timeout" values in seconds, indexed by the Tm*
	// constants; TimeoutSet says which were given.
	Timeouts   [TmMax]uint32
	TimeoutSet [TmMax]bool
	// Limits are "set limit" values, indexed by Limit; LimitSet says
	// which were given.
	Limits   [LimitMax]uint32
	LimitSet [LimitMax]bool

	Optimization        string // "set optimization": normal, high-latency, ...; "" unset
	RulesetOptimization string // none, basic, profile; "" unset
	BlockPolicyReturn   bool   // set block-policy return
	FailPolicyReturn    bool   // set fail-policy return
	StatePolicyIfBound  bool   // set state-policy if-bound
	RequireOrder        bool   // set require-order yes
	LogInterface        string // "all" or an interface; "" unset
	HostID              uint32 // 0 unset (pf.conf cannot give 0)
	Debug               string // none, urgent, misc, loud or a syslog level; "" unset
	Fingerprints        string // file name; "" unset
	// Skip are the interfaces of "set skip on" (none: no interface).
	Skip         []string
	KeepCounters bool
	// Syncookies is never, always or adaptive ("" unset); adaptive's
	// watermarks are SyncookiesStart and SyncookiesEnd, in percent of
	// the state limit.
	Syncookies                     string
	SyncookiesStart, SyncookiesEnd int
	// Reassemble is "set reassemble yes"; ReassembleNoDF its no-df.
	Reassemble, ReassembleNoDF bool
	// StateDefaults are "set state-defaults" as the state options of a
	// rule (the parser applies them to pass rules that keep state by
	// default).
	StateDefaults StateOpts
}

// Timeout returns "set timeout" tm's value, and whether it was given.
func (o *Options) Timeout(tm int) (uint32, bool) {
	if tm < 0 || tm >= TmMax {
		return 0, false
	}
	return o.Timeouts[tm], o.TimeoutSet[tm]
}

// Limit returns "set limit" l's value, and whether it was given.
func (o *Options) Limit(l Limit) (uint32, bool) {
	if l >= LimitMax {
		return 0, false
	}
	return o.Limits[l], o.LimitSet[l]
}

// merge applies one statement's values (those of option name) to o.
func (o *Options) merge(pos Pos, name string, v *Options) {
	if o.Given == nil {
		o.Given = map[string]Pos{}
	}
	o.Given[name] = pos
	switch name {
	case "timeout":
		for i, set := range v.TimeoutSet {
			if set {
				o.Timeouts[i], o.TimeoutSet[i] = v.Timeouts[i], true
			}
		}
	case "limit":
		for i, set := range v.LimitSet {
			if set {
				o.Limits[i], o.LimitSet[i] = v.Limits[i], true
			}
		}
	case "optimization":
		o.Optimization = v.Optimization
	case "ruleset-optimization":
		o.RulesetOptimization = v.RulesetOptimization
	case "block-policy":
		o.BlockPolicyReturn = v.BlockPolicyReturn
	case "fail-policy":
		o.FailPolicyReturn = v.FailPolicyReturn
	case "state-policy":
		o.StatePolicyIfBound = v.StatePolicyIfBound
	case "require-order":
		o.RequireOrder = v.RequireOrder
	case "loginterface":
		o.LogInterface = v.LogInterface
	case "hostid":
		o.HostID = v.HostID
	case "debug":
		o.Debug = v.Debug
	case "fingerprints":
		o.Fingerprints = v.Fingerprints
	case "skip":
		o.Skip = append(o.Skip, v.Skip...)
	case "keepcounters":
		o.KeepCounters = true
	case "syncookies":
		o.Syncookies, o.SyncookiesStart, o.SyncookiesEnd = v.Syncookies, v.SyncookiesStart, v.SyncookiesEnd
	case "reassemble":
		o.Reassemble, o.ReassembleNoDF = v.Reassemble, v.ReassembleNoDF
	case "state-defaults":
		o.StateDefaults = v.StateDefaults
	}
}

// SkipText returns the line pfctl prints for "set skip on" ifs.
func SkipText(ifs []string) string {
	if len(ifs) == 0 {
		return "set skip on none"
	}
	return "set skip on { " + strings.Join(ifs, " ") + " }"
}
