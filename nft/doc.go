// Package nft owns pfcarp's nftables table in the kernel: it installs a
// compiled Program atomically, in one netlink transaction, into the inet
// table "pfcarp" (TableName), and reads back what is there: the pf rule
// records kept with the rules, per-rule counters, and the contents of the
// address sets that implement pf tables. It also carries out the run-time
// operations pfctl has on a loaded ruleset: flushing rules, translation rules
// or tables (-F), enabling and disabling (-e/-d, through the table's dormant
// flag) and table edits (-t T -T add|delete|flush|replace|show|test).
//
// Program is plain data (sets, chains, rules made of
// github.com/google/nftables/expr values, and Records), so package compile
// can build it without touching the kernel and tests can print it
// (Program.String). nft never decides what a pf rule means; that is compile's
// job. It never runs the nft binary and never touches a table it does not
// own (daemon's pfcarp_ha table included).
//
// # Transactions
//
// Load buffers the whole program behind a delete of the old table and sends
// it with one Flush: the kernel applies all of it or none of it. When the
// kernel refuses the batch, Load finds the first refused rule by loading
// growing prefixes of the program into a scratch table that the same batch
// deletes again (so nothing ever stays behind), and returns a *LoadError that
// names the pf rule (Record: number, file:line, text) and the kernel feature
// it needed, when the rule says which (Rule.Needs).
//
// # Anchors
//
// An anchor is a set of chains @PATH:PART and sets @PATH:NAME in the same
// table (see anchor.go). LoadAnchor replaces one anchor in one transaction
// (flushing and refilling its chains, so the jumps to them and the rules
// that hold those jumps stay as they are) and rewrites the wildcard
// dispatch chains @PARENT/*:PART, one jump per child anchor in name order.
// Load keeps the anchors the main ruleset does not define, as pfctl does:
// once the table holds anchors it replaces the main ruleset's chains and
// sets without deleting the table. Anchors the previous main load
// installed (inline anchors, load anchor) are emptied when the new one no
// longer defines them. WithAnchor points Read, FlushKinds and the table
// operations at one anchor (pfctl -a).
//
// # What is stored with the rules
//
// Every kernel rule that implements a pf rule carries a short comment
// ("pf filter 3") naming it (Ref). The pf side of the ruleset (number, kind,
// source position, the rule as pfctl prints it, labels) is kept as Records
// in the chain "pf_meta", which no hook ever jumps to: one or more
// comment-only rules per record, because a rule's user data holds at most 256
// bytes. So `pfctl -s rules` rebuilds pfctl's view from the kernel alone.
//
// Counters: a rule that implements a pf rule starts with a counter (packets
// that reached it: pf's "evaluations", counted once per pf rule even when it
// is split over several kernel rules) and has a second counter right before
// its verdict (packets that matched). See Counters.
//
// # pf tables
//
// A pf table is two interval sets (TableSetName), IPv4 and IPv6, holding
// the union of its prefixes as merged ranges: a table loaded with
// 10.0.0.0/25 and 10.0.0.128/25 holds one interval, and -T show prints it
// as 10.0.0.0/24 (the fewest prefixes covering each range). Run-time edits
// avoid reading the set, because a dump of a large interval set is
// quadratic in the kernel (the rbtree walk restarts for every 32 KiB
// chunk; see elem_linux.go):
//
//   - test asks the kernel for each address (NFT_MSG_GETSETELEM without
//     NLM_F_DUMP): O(log n).
//   - add sends the new ranges with NLM_F_EXCL; only when one overlaps the
//     table is it read and rewritten. Added ranges are not merged with
//     their neighbours, so entries added one by one stay apart, as in pf.
//   - delete asks the kernel for the interval around each prefix and, in
//     one transaction, deletes that interval and adds back what is left of
//     it. It reads the table only when a prefix spans interval bounds (or
//     two prefixes fall in one interval). pf deletes exact entries only;
//     here deleting part of an entry splits it (the merged intervals do not
//     record which prefixes made them).
//   - replace rewrites the sets without reading; flush reads them only to
//     report the count, and reports none (Uncounted) past 50,000 ranges;
//     show dumps: 1,000,000 addresses take over a minute (see
//     BenchmarkTable1M).
//
// A table that rules overload (overload <t>) has two more sets,
// OverloadSetName: hash sets of single addresses that the packet path fills
// (the kernel cannot add to an interval set from a rule). -T show and test
// include their addresses, delete removes the overloaded addresses inside
// the deleted prefixes, flush and replace empty them; add goes to the
// interval sets as for any table.
//
// # Interface addresses
//
// Sets of kind SetDynIf and SetDynIfPool follow an interface's addresses
// ("(if)" in pf.conf). Load fills them from the interfaces as they are
// (the Conn's namespace, or WithHost's view); RefreshDynIf rewrites all of
// them in one transaction, for the daemon to call when addresses change.
// Their names (DynIfSetName) say which interface and modifiers they
// follow, so RefreshDynIf needs nothing but the kernel's table.
//
// # Policy routing
//
// A Program's Routes (divert-to's local delivery, route-to and
// reply-to's targets) are routing rules
// "fwmark M/M lookup T" of priority PolicyRulePriority and a default
// route in each table T; the tables PolicyTableBase to
// PolicyTableBase+PolicyTables-1 and the rules of that priority pointing
// to them are pfcarp's, marked with protocol PolicyProtocol. Load
// replaces them with the program's after the nftables transaction, Delete
// removes them; other rules and tables are never touched.
package nft
