// Package compile turns an expanded pf ruleset (pfconf.Ruleset) into an
// nftables program (nft.Program): a pure function with no kernel access. It
// owns the meaning of pf on nftables: which hook sees which rule, in which
// order, with which verdict, and the metadata (pf rule numbers, text,
// labels) stored with the kernel rules. It does not parse pf.conf (pfconf
// does), does not talk to the kernel (nft does), and does not resolve
// interface or host names (pfconf's expansion did).
//
// # Hooks: where pf's "in" and "out" happen
//
// pf filters a packet when it enters an interface ("in", on that interface)
// and again when it leaves one ("out", on the outgoing interface); a
// forwarded packet meets both. rdr happens before filtering (filter rules see
// the translated destination), nat after it. The table inet pfcarp has these
// base chains (policy accept: pf's default is pass):
//
//	hook_dnat  nat    prerouting  -100  set skip; jump rdr       (binat in, rdr, rdr-to: first match)
//	hook_in    filter prerouting     0  state; set skip; drop invalid; jump filter_in
//	hook_fwd   filter forward        0  state; set skip; jump filter_out
//	hook_out   filter output         0  state; set skip; jump filter_out
//	hook_snat  nat    postrouting  100  set skip; jump nat       (binat out, nat, nat-to: first match)
//
// and, only when the ruleset scrubs (see Scrub):
//
//	hook_scrub_pre    filter prerouting  -150  jump scrub_in  (scrub in rules: first match)
//	hook_scrub_post   filter postrouting   50  jump scrub_out (scrub out rules), then the connection's scrub profile
//	hook_scrub_input  filter input        300  the connection's scrub profile
//
// filter_in holds every rule that applies inbound (in or no direction),
// matching the interface with iifname; filter_out every rule that applies
// outbound, matching oifname. filter_in runs in prerouting after DNAT, so
// "in" rules see rdr's translated destination, as in pf, and it runs for
// both forwarded and locally delivered packets. filter_out runs in forward
// and output, not postrouting, because the kernel refuses reject (block
// return) in postrouting; so "out" rules see the source address before nat
// (pf shows them the translated one). Write out rules on the inside address,
// or use the nat rule's own criteria; this is the one place pfcarp and pf
// differ.
//
// # Evaluation order
//
// pf takes the last matching rule unless a quick rule matches first. The
// filter chains therefore hold: match rules (no verdict: log, count, tag),
// quick rules and the tag setters of the other rules (see Tags) in file
// order, then the other rules in reverse file order, each with a terminal
// verdict; a packet that matches none passes by the chain's policy (pf's
// default pass, without state).
// Translation chains are first match in file order, binat before nat/rdr, as
// pf evaluates them; "no nat" and "no rdr" are accept (stop translating).
//
// # Anchors
//
// Each anchor is its own set of chains, @PATH:PART, and its own
// nft.Program (CompileAnchor for one loaded on its own, as pfctl -a and
// relayd load them). An anchor rule jumps to the anchor's quick chain in
// the quick half of the calling chain and to its rest chain in the rest
// half, each at the anchor rule's place, which keeps pf's last match
// across the anchor boundary; wildcard calls ("relayd/*") go through
// dispatch chains that every anchor load rewrites. Details in anchor.go.
//
// # State
//
// Every connection is tracked by conntrack, but only those a keep-state rule
// passed carry CtMarkState; the base filter chains start with
// "ct state established,related ct mark & CtMarkState accept", so packets of
// a kept state (both directions, ICMP errors included) pass without rule
// evaluation, and packets of a "no state" connection are evaluated like pf's
// stateless packets. A pass rule that keeps state sets CtMarkState and, with
// (no-sync), CtMarkNoSync (the contract with pfsync: skip such connections),
// and writes its rule number + 1 into the low 16 bits (CtMarkRuleMask), so
// states can be counted per rule. nat pass / rdr pass set CtMarkPass, which
// lets the connection's first packet through the filter chains.
//
// The connection mark, bit by bit (pfsync replicates all of it):
//
//	0-15   CtMarkRuleMask   filter rule number + 1 of the rule that kept state
//	16-21  CtMarkTagMask    tag number (see Tags)
//	22-25  CtMarkPrioMask   set prio + 1
//	26-28  CtMarkScrubMask  scrub profile (see Scrub)
//	29     CtMarkPass       nat pass / rdr pass
//	30     CtMarkState      kept state: later packets pass without rules
//	31     CtMarkNoSync     (no-sync): pfsync skips the connection
//
// Before the state shortcut, hook_in, hook_fwd and hook_out drop the
// packets of flushed states (see State limits), and hook_fwd and hook_out
// give the packets of a connection with set prio their priority.
//
// # Invalid packets
//
// hook_in drops packets conntrack classifies as invalid (after the set skip
// rules, before filter_in): above all TCP segments outside their
// connection's window. pf drops a packet that matches a state but fails its
// sequence checks ("BAD state") rather than evaluating rules for it; without
// the drop such a packet has no conntrack entry, skips rdr, and a packet to
// a VIP port that only rdr serves reaches the local stack, which answers
// RST and kills the connection. This matters in a CARP failover where the
// old master's kernel still holds a VIP (its daemon was killed) while the
// other groups already moved: it sees ACKs for data it never forwarded.
// Dropped, they are retransmitted and reach the new master once the last
// VIP moved. Packets conntrack cannot tie to a connection are invalid too
// (an ICMP error for no known flow, a malformed header); pf would evaluate
// rules for some of those, pfcarp drops them. The drop is left out when a
// pass rule is stateless ("no state") or "sloppy": pf checks no windows for
// those (asymmetric paths are their use), and conntrack, seeing one
// direction only, would call their packets invalid.
//
// # Tables, pools, sticky-address
//
// A pf table <t> is two interval sets, nft.TableSetName(t, false/true). A
// table with "!" entries (exceptions) is flattened into the exact prefixes
// that match, the most specific entry deciding as in pf (negtable.go). A translation
// pool of several addresses is a constant map index -> address per family,
// chosen by numgen inc (round-robin), numgen random (random) or jhash of the
// source address (source-hash; the seed is the XOR of the four 32-bit words
// of pf's key). bitmask keeps the source's host bits under the pool's
// network. Tables used as pools are expanded when the ruleset is compiled (a
// later pfctl -T change does not change the pool). sticky-address adds a
// dynamic map StickyMapName(rule, family) source -> chosen address with a
// timeout (pf's "set timeout src.track", DefaultStickyTimeout when unset or
// 0): a first rule looks the source up and refreshes its entry, a second
// chooses from the pool and records the choice. The maps are named so pfsync
// can replicate them. An rdr to a port range maps each port as pf does (its
// offset from the rule's first port, modulo the target range): a range onto
// itself keeps the port; otherwise each matched port is a kernel rule of its
// own, at most maxRdrPortRules (translate.go, rdrPortVariants).
//
// # State limits and source tracking
//
// keep state (max N, max-src-states N, max-src-nodes N, max-src-conn N,
// max-src-conn-rate N/S, overload <t> [flush [global]], source-track):
//
//   - max N: "ct count N" in the rule: the kernel keeps the list of
//     connections that passed this kernel rule and are alive; the
//     (N+1)th is dropped by the next kernel rule, as pf drops a packet
//     when the rule's state limit is reached.
//   - max-src-states N, max-src-nodes N: a dynamic set of sources
//     (SourceSetName "src") whose elements carry "ct count N"; an element
//     goes when its source's last connection does (pf's source node with
//     src.track 0). The set holds at most max-src-nodes sources
//     (default: pf.conf's "set limit src-nodes", which bounds each set here and
//     all source nodes together in pf, else DefaultSrcNodes).
//   - max-src-conn N: the same in a second set ("conn"). pf counts TCP
//     connections that completed the handshake, until their states are
//     purged; conntrack counts connections from their first packet until
//     they close (TIME_WAIT and CLOSE do not count), so a half-open
//     connection counts here and a closing one does not.
//   - max-src-conn-rate N/S: a set of sources ("rate") whose elements
//     carry "limit rate N/S burst N" (a token bucket: N connections at
//     once, then N per S seconds) and expire after S seconds unused. pf
//     averages established connections over S seconds; here first
//     packets are counted.
//   - overload <t>: a source that exceeds max-src-conn or
//     max-src-conn-rate is added to t (its overload set: the kernel cannot
//     add to t's interval set from a rule, see nft.OverloadSetName) and
//     the packet is dropped. pf lets the handshake complete and then
//     kills the state; here the connection's first packet is dropped.
//   - flush [global]: pf kills the source's states of this rule (global:
//     all its states) once, when it is overloaded. Deleting conntrack
//     entries needs user space; instead the base chains drop, before the
//     state shortcut, every packet of an established connection of this
//     rule (global: of any rule) whose original source is in t. The
//     entries stay until they time out; while the source stays in t its
//     established connections cannot pass (new ones meet the rules, where
//     the usual "block quick from <t>" stops them).
//   - source-track rule|global: rule (pf's default with limits) gives
//     each rule its own sets; global shares one set per kind among the
//     rules with "source-track global", which must then have the same
//     limits (each set element carries one limit). source-track without
//     limits only names pf's bookkeeping and changes nothing here.
//
// Counting is per kernel rule: a pf rule without direction is compiled
// into filter_in and filter_out, whose "max" counts are kept apart (the
// per-source sets are shared).
//
// A reload starts these counters afresh (the sets are new; the connections
// that exist go on but no longer count), and it empties the overload sets
// (every table gets the file's addresses).
//
// pfsync replicates connections, not these counters: on the node that takes
// over, the lists behind ct count and the source sets hold only the
// connections its own rules passed (the replicated ones do not count against
// the limits), and a table's overload set is the node's own, as pf's tables
// are not synced either.
//
// max-pkt-rate N/S ends the rule's match with a kernel packet limit (a
// token bucket of N packets refilled at N/S per second), loaded with a
// warning naming what differs from pf's decaying counter (pktrate.go).
//
// # Scrub
//
// FreeBSD's scrub rules are stateless and first match: every packet
// (fragments are reassembled by conntrack before any rule sees them) is
// checked against them in file order, and the first that matches applies
// its options; "no scrub" stops the search. "scrub in" rules are in chain
// scrub_in (hook_scrub_pre, prerouting after conntrack and before rdr),
// "scrub out" rules in scrub_out (hook_scrub_post, postrouting before nat:
// pf normalises before it translates),
// rules without direction in both.
//
// The scrub chains skip "set skip" interfaces, as pf does.
//
// OpenBSD's scrub options on match and pass rules ("match in all scrub
// (max-mss 1440)") belong to the state: pf applies them to every packet of
// the connection, both directions. Here each distinct set of such options
// is a profile (at most 7 per ruleset) whose number the rule writes into
// the connection mark (CtMarkScrubMask; pfsync carries it); hook_scrub_post
// (postrouting) and hook_scrub_input (input) apply the profile to every
// packet of the connection that leaves or is delivered locally. When
// several rules with scrub options match one connection, the last one's
// options apply (pf merges them option by option).
//
// The options:
//
//   - max-mss N: a TCP SYN (or SYN+ACK) whose MSS option is larger gets N
//     ("tcp option maxseg size set", checksum updated).
//   - min-ttl N: an IPv4 TTL or IPv6 hop limit below N is raised to N.
//   - set-tos N (and OpenBSD's set tos): the DSCP bits of the IPv4 TOS or
//     IPv6 traffic class become N's, the ECN bits stay (as in pf).
//   - no-df: the IPv4 don't-fragment bit is cleared.
//   - random-id: an unfragmented IPv4 packet gets a random ID (numgen
//     random), as pf's random-id.
//   - reassemble tcp: pf's TCP normalisation (timestamp modulation, TTL
//     kept from going down within a connection, ...) has no Linux
//     equivalent; the rule loads without it and the compiler warns.
//     conntrack's window tracking (always on) still drops segments
//     outside the window.
//   - fragment reassemble is what the kernel does anyway; "fragment no
//     reassemble" cannot be had and is refused.
//
// # Tags and priorities
//
// A pf tag is a name a rule gives the packets it matches (tag NAME); a
// later rule can match it (tagged NAME), in the same evaluation or when
// the packet is filtered again on the way out, and a state keeps its tag
// for all its packets, both directions. Here a tag is a number (1..63,
// given in order of first use in the ruleset) in the connection mark
// (CtMarkTagMask): it stays with the connection as pf's stays with the
// state, replies included, and pfsync carries it to the peer with the
// mark (the numbers follow the ruleset: both nodes must load the same one,
// as pfsync needs anyway). tagged compares it. A connection that no rule passed with state
// keeps its tag too (conntrack tracks every connection): where pf would
// evaluate a later packet of a stateless connection untagged, here it
// still has the tag its first packet got.
//
// pf sets the tag of every rule that matches, in file order, also of a
// non-quick rule that a later rule overrides. The filter chains evaluate
// non-quick rules last to first, so a non-quick rule with a tag is also
// compiled, in file order with the match and quick rules, into a rule
// that only sets the tag. A non-quick rule's tagged therefore sees the tag
// as it is at the end of the file-order part; that is pf's tag at the
// rule's own place unless a match rule after it retags, or the rule
// retags itself: both are refused.
//
// prio N matches the packet's priority (skb priority, "meta priority"):
// pf's default priority is 3, Linux's 0 for a packet nobody set one for.
// set prio N sets it (the default qdisc's bands follow the Linux meaning:
// 6 and 7 first, 0 best effort), for the packet and, through the
// connection mark (CtMarkPrioMask), for all later packets of the
// connection in both directions, as pf keeps it with the state. set prio
// with two values, (a, b), gives b to TCP segments with ACK and no data
// and to packets with the lowdelay TOS bit, a to the others, as pf does:
// each distinct pair is a CtMarkPrioMask value above the single
// priorities (at most 7 pairs per ruleset), and hook_prio (filter
// postrouting 40) chooses per packet (see prio.go); the pair needs a
// state (pass or match rules that keep one).
//
// # SYN proxy
//
// synproxy state is the kernel's synproxy (nft_synproxy, SYN cookies), in
// the input and forward hooks where it works; pf.conf's rules still decide
// which SYNs it gets. Only inbound rules proxy (pfctl ignores synproxy on
// outbound ones, and so does this compiler, with a warning). The chains:
//
//	hook_synproxy_raw  filter prerouting  -300  a synproxy rule's SYNs: notrack
//	hook_synproxy_in   filter input        -10  packets with MetaMarkSynproxy: synproxy
//	hook_synproxy_fwd  filter forward      -10  the same for forwarded connections
//
// The synproxy rule in filter_in passes an untracked SYN with the packet
// mark bit MetaMarkSynproxy; hook_in passes a bare ACK matching a synproxy
// rule with no established connection (the client's answer to the
// cookie) to the proxy, marked too, before the invalid drop; hook_out
// lets the proxy's SYN+ACK through and gives the connection the proxy
// opens to the server (its SYN) the rule's state bits, tag, prio and
// CtMarkPass, so it passes as a kept state. No conntrack entry exists
// until the client's ACK carries a valid cookie: a SYN flood fills no
// table. Differences from pf: the proxy announces MSS 1460 (IPv4) or 1440
// (IPv6), pf the route's MTU minus headers; like pf's, it offers no
// window scaling, timestamps or SACK. The raw chain sees packets before
// rdr, so a synproxy rule with its own rdr-to or nat-to is refused; state
// limits of a synproxy rule are not applied (warning). A bare ACK matching
// a synproxy rule without a connection goes to the proxy, which drops it
// unless it carries a cookie (pf would evaluate the rules for it).
//
// # Divert
//
// divert-to ADDR port PORT (inbound pass rules, TCP or UDP) is the
// kernel's tproxy: the rule assigns the packet to the transparent local
// socket bound to ADDR:PORT (tproxy finds the connection's own socket
// first) and sets the packet mark bit MetaMarkDivert; the later packets
// of its state (original direction) get the same in hook_in's first
// rules. Program.Routes asks nft.Conn.Load for the policy routing that
// delivers marked packets locally ("fwmark MetaMarkDivert lookup
// nft.PolicyTableBase", whose default route is local via lo); Load
// replaces pfcarp's routing rules and tables with the program's and
// Delete removes them (see package nft). The socket keeps the original
// destination as its local address, as with pf. Linux delivers only to
// sockets with IP_TRANSPARENT (pf needs nothing of the program); when
// none listens, the rule's packets are dropped (a second kernel rule with
// the same match) rather than forwarded. divert-reply (outbound rules)
// marks the replies of the rule's connections that belong to a
// transparent local socket (socket transparent 1), so a proxy's
// connections from a client's address get their answers. divert-packet
// (a divert(4) socket) would be NFQUEUE and is refused.
//
// # Routing
//
// route-to (IF GW) on an inbound pass rule and reply-to (IF GW) on a
// pass rule that keeps state are policy routing: each distinct target is
// a number 1-255 in the packet mark field MetaMarkRouteMask and a routing
// table nft.PolicyTableBase+N whose default route is via GW on IF
// (Program.Routes; "route-to IF" is "default dev IF"). The rule sets the
// mark of the packet it passes (route-to) and writes the target into the
// connection's labels (byte 0 route-to, byte 1 reply-to: the connection
// mark is full, and its rule number is overwritten by outbound rules);
// hook_in's first rules mark the state's later packets before the routing
// decision: the original direction for route-to, the replies for
// reply-to; hook_route_out (type route, output -150) marks the replies
// this host sends, which the kernel then routes again. Differences from
// pf: packets to this host's own addresses are still delivered (the
// kernel's local table comes first); route-to on outbound rules is
// refused, because Linux routes a forwarded packet once, before outbound
// rules see it (write it on the inbound rule); pools of several targets
// are refused; dup-to is refused (the kernel's dup statement exists in the
// ip and ip6 families, not in the inet table); pfsync does not carry the
// labels, so a taken-over connection is routed by the tables.
//
// # Queues
//
// ALTQ's "altq on IF ... queue { ... }" with "queue NAME ..." (cbq, priq,
// hfsc) and OpenBSD's "queue NAME on IF|parent P bandwidth ..." become
// Linux qdisc trees, planned by package tc (its doc has the mapping and
// the differences) and installed by tc.Apply after the rules load. What
// needs a qdisc the kernel lacks (Options.Queues, tc.Probe) is refused
// with the statement's position and the kernel option, e.g. "hfsc queue
// needs the Linux HFSC qdisc (CONFIG_NET_SCH_HFSC), not in this kernel";
// fairq, codelq and queues that cannot be leaves of the default are
// refused too.
//
// Every queue name has one class id, tc.Major:minor, for the ruleset. A
// rule with "queue NAME" or "set queue NAME" (match and pass rules) sets
// the packet's priority to it ("meta priority set"), which HTB and HFSC
// take as the class without tc filters; a packet with no queue (or one
// with a set prio, 0:N) goes to the interface's default queue. The rule
// that keeps the state writes the priority its packet ends with into the
// conntrack labels (the connection mark is full): word CtLabelReplyWord
// from an inbound rule, for the replies, word CtLabelOrigWord from an
// outbound rule, for the original direction, as pf's in-state queues the
// replies and its out-state the packets it passes out. hook_fwd and
// hook_out give the later packets of the connection, on the interfaces
// with queues, the class of their direction before the state shortcut
// (after set prio, which the queue overrides there). Differences from pf:
// the labels are written once (nftables can only add label bits), so a
// state keeps the queue of the ruleset that created it across reloads, as
// pf does; pfsync does not carry labels, so a connection that moves to the
// peer goes to the default queue there; IPv4 forwarding resets a packet's
// priority from its TOS, so an inbound rule's queue does not follow the
// forwarded packet to the outbound interface (pf's qid would); "queue (q,
// pq)" puts empty ACKs and lowdelay packets into pq as pf does (pqueue.go:
// the second queue's number rides in the class id, and hook_pqueue
// resolves it by the packet's content before the qdisc); a queue on a block rule is ignored with a
// warning (the returned RST or ICMP is not queued).
//
// # Dynamic interface addresses
//
// "(if)", "(if:network)", "(if:broadcast)", "(if:peer)", "(if:0)" and with a
// netmask "(if)/24".
//
// As a rule's address, each (interface, modifiers, netmask, family) is an
// interval set, nft.DynIfSetName, that nft.Conn.Load fills from the
// interface's addresses at load time and nft.Conn.RefreshDynIf rewrites in
// one transaction when they change (the daemon's link watcher calls it).
// Options.Host, when given, fills them in the compiled program too (for
// pfctl -nvvv and the golden tests).
//
// As a translation target, "nat on X ... -> (X)" (no modifiers, or :0) is
// masquerade: the kernel picks X's primary address for the destination's
// route when the connection starts, follows address changes without a
// reload and forgets the connections of an address X loses (pf keeps such
// states, which then cannot work anyway). pf would round-robin over X's
// addresses for "(X)" without :0; masquerade uses one. Any other "-> (if)"
// (nat to another interface's address, rdr to (if)) is a map
// nft.DynIfSetName(..., pool) holding the interface's first address of the
// family, which RefreshDynIf keeps current: translation uses the first
// address (pf's "(if:0)"; pf round-robins over all of them without :0).
// With no address of the family the map is empty and the rule translates
// nothing. binat to (if) and pool options with (if) (sticky-address,
// bitmask, random, source-hash) are refused.
//
// # Refusals and warnings
//
// Compile refuses what the kernel cannot enforce with the rule's
// file:line:col and the feature, every unsupported feature of a rule (not
// only the first) and each once per statement (not once per rule the
// statement expands to). What loads with a weaker effect than pf's, where
// Linux has no equivalent of a hardening (reassemble tcp, modulate state),
// loads with a warning in Program.Warnings naming the rule and the
// difference; pfctl -f prints them and the daemon logs them. af-to
// (NAT64) is refused: netfilter has no stateful NAT64.
//
// if-bound states ("keep state (if-bound)", "set state-policy if-bound"):
// conntrack does not bind a connection to an interface, so a keep-state
// rule with if-bound, a direction and one interface writes the
// interface's number (1-255) into the connection's labels (byte 2 for an
// inbound rule, byte 3 for an outbound one), and hook_in, hook_fwd and
// hook_out first send a packet of such a connection that crosses the
// hook in the state's sense on another interface (inbound rule: the
// original direction entering, replies leaving; outbound rule: the
// reverse) to the filter rules (goto filter_in or filter_out), as pf
// evaluates rules for a packet its if-bound state does not match.
// Packets of the connection crossing the other way (a forward's leg out,
// the replies coming in) pass by the state as with floating states: pf
// would have one state per interface there, conntrack has one per
// connection. if-bound rules without a direction or single interface load
// floating, with a warning (see ifbound.go).
// Features the compiled rules need beyond plain matching (synproxy) are
// named in nft.Rule.Needs, so a kernel without them refuses the load
// with the feature's name.
//
// # Counters and records
//
// Each kernel rule starts with a counter (evaluations: packets that reached
// it in the compiled order) and has a counter before its verdict (packets it
// matched). Only the first connection packet meets the rules (later packets
// pass by state), so per-rule packet and byte counts are pf's counts of
// connections' first packets, not whole connections. See package nft for
// how pf rule text, number and labels are kept with the rules.
package compile
