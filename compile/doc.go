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
// filter chains therefore hold: match rules (no verdict: log and count) in
// file order, then quick rules in file order, then the other rules in
// reverse file order, each with a terminal verdict; a packet that matches
// none passes by the chain's policy (pf's default pass, without state).
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
// table entry with "!" (an exception) is refused at load time. A translation
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
// can replicate them.
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
