// Package pfsync replicates connection state between the two nodes of a
// pfcarp pair, as BSD pfsync does for pf: the kernel's conntrack entries
// (tuples, and so the NAT mapping; status bits; TCP state, window scales
// and flags; mark; zone; timeout) and sticky-address bindings, so that after
// a CARP failover the new master's kernel carries existing flows on, to the
// same backends with the same translations.
//
// pfsync owns the sync protocol (wire format, authentication, anti-replay),
// the Engine (batching, bulk update, conflict handling), its Runner, the
// raw IP protocol 240 transport and the conntrack adapter (dump, events,
// inject, delete). It does not own CARP (it only asks for demotion through
// a hook), nftables (the no-sync mark is set by package compile) or the
// daemon's wiring (package daemon).
//
// # Kernel facts this package rests on (each pinned by a root test)
//
//   - NAT: an entry created over ctnetlink with its translated reply tuple
//     but no NAT bindings gets no IPS_SRC_NAT/IPS_DST_NAT bits (the kernel
//     ignores those bits in CTA_STATUS), so its packets would not be
//     translated (TestPlainCreateCarriesNoNAT). Conntrack.Inject therefore
//     sends the untranslated reply tuple plus CTA_NAT_DST / CTA_NAT_SRC
//     ranges of exactly one address and port, and the kernel's NAT core
//     derives the same translated reply tuple and sets the NAT and NAT_DONE
//     bits itself. TestInjectedNATFlowSurvivesFailover copies a redirected
//     and source-NATed TCP flow from router A to an identical router B,
//     moves the routes mid-stream and checks the flow carries on (same
//     backend, same translated port, no reset, clean close).
//   - TCP window tracking: ctnetlink exposes only the state, window scales
//     and per-direction flags, not td_end/td_maxwin (FreeBSD pfsync copies
//     seqlo/seqhi). An injected entry starts with td_maxwin 0, which the
//     kernel treats as a mid-stream pickup and initialises from the next
//     packet of each direction. Inject also sets IP_CT_TCP_FLAG_BE_LIBERAL
//     on both directions of injected entries, as the kernel itself does for
//     connections picked up mid-stream, so that segments already in flight
//     at failover (retransmissions below the freshly initialised window)
//     are not dropped as INVALID. This is per entry: the global
//     nf_conntrack_tcp_be_liberal stays off and locally created flows keep
//     full window checking. (Without the flag the failover test passes
//     too; the flag is for the in-flight edge cases the test cannot force.)
//   - Only SEEN_REPLY and ASSURED can be set on an existing entry, and
//     CONFIRMED must be present on create; tuples and NAT are fixed once
//     created. Counters cannot be set, so a node's -v counters restart.
//
// # Wire protocol
//
// IP protocol 240 as pfsync, TTL 255 (a message with another TTL is
// dropped: it crossed a router), multicast 224.0.0.240 on syncdev or
// unicast to syncpeer. The format (see wire.go) is pfcarp's own, not BSD
// pfsync's: a versioned, length-checked header with a sender id, an epoch
// (the sender's start time) and a sequence number; length-delimited
// records; and, with pfsync_key, an HMAC-SHA256 over the whole message.
// A receiver drops and counts, by reason, messages that are short, of
// another magic or version, of a wrong length, unauthenticated or wrongly
// signed (a signed message without a local key too), replayed (an older
// epoch, a sequence already seen or older than a 64-message window), or
// with any malformed record (the whole message is dropped before any record
// is applied). The decoder does not allocate (TestDecodeAllocs) and is
// fuzzed (FuzzDecode).
//
// # Engine
//
// Every node sends its own kernel events and applies the peer's, so
// whichever node is MASTER is the source and flows begun on a backup while
// it was master reach the old master on failback. Changes are queued per
// state. A state the peer does not hold yet and a TCP handshake step
// (SYN_RECV, ESTABLISHED) are prompt: they are sent as soon as the events
// queued with them have been taken in (Options.PromptDelay; under load
// the batches grow by themselves), since a connection whose handshake
// completed on the master survives a failover only once the peer holds it
// past SYN_SENT (a SYN_SENT entry takes the client's ACK for INVALID;
// TestHandshakeStateOnPeer). For the same reason a receiver writes a
// peer's SYN_SENT state as SYN_RECV: from SYN_RECV the kernel carries the
// connection on whether the server's SYN/ACK or the client's completing
// ACK comes next (TestSynSentAsSynRecvOnPeer), so a takeover at any moment
// after the SYN was synced keeps the connection, the handshake's later
// steps synced or not. A state updated maxupd times (default 128,
// pfsync(4)'s maxupd) is sent at once, every other change after the flush
// interval (100 ms; FreeBSD waits up to 1 s). BenchmarkSyncLag measures
// the lag from a change in one kernel to the peer's kernel. The receiver
// writes the states of one message into its kernel with one netlink
// write (BatchTable), updating the entries it knows and creating the
// others, and redoes alone a request whose guess was wrong.
//
// Injected entries come back as kernel events: the first event for an
// entry after a peer's version was written is that write's echo, whatever
// it shows (the kernel leaves out window scales until both directions
// have the flag, and can only set status bits and flags), and
// later events that change nothing replicated are not sent (no echo). On
// a conflict the newer version (the sender's wall-clock time of the
// change, carried in each record) wins; the nodes' clocks are assumed
// NTP-synchronised. An echo stamped with the receiver's clock would beat
// the sender's next change, stamped earlier, for good: hence the echo rule.
// A change whose event was lost without a report is found by a periodic
// comparison of the kernel's table with the Engine's view
// (Options.ResyncInterval; the daemon's costs one conntrack dump per 30 s).
// A client that reuses a source port while the old connection's entry
// lingers (TIME_WAIT) makes a new kernel entry with the same original
// tuple: the kernel's entry id tells the two apart (the old one's DESTROY
// may come after the new one's NEW), and the peer gets a delete before the
// create, since an entry's tuples and NAT bindings cannot be updated.
// Entries found in the kernel at Start are stamped oldest, so the peer's
// versions (its bulk update above all) win over them.
// Entries whose mark has NoSyncMark (compile.CtMarkNoSync, set by rules
// with no-sync) are neither sent nor accepted; CARP and pfsync packets are
// not tracked at all (the daemon's notrack table).
//
// Bulk update (FreeBSD facts: the bulk-fail timer is 5 s, a request is
// tried PFSYNC_MAX_BULKTRIES = 12 times, then pfsync "pretends the
// transfer was ok" and lifts the CARP demotion): on start and when the
// sync link's carrier returns, the Engine demotes CARP by 1, requests the
// peer's table and waits for BULK START, the states and BULK END. Each
// message of a bulk update in progress restarts the 5 s timer; without an
// answer the request is repeated every 5 s (after a carrier return the
// first two repeats come 1 s apart: both nodes request at once, and both
// requests are lost while the path between them passes no traffic yet;
// Linux acts on most carrier changes up to a second late); after 12
// requests, or after
// 5 minutes in all even with progress, it gives up, logs at error level and
// lifts the demotion, so a node never stays demoted for ever. The serving
// side sends its whole view (its own and the peer's entries) in bursts of
// 64 messages between other work, then the sticky bindings.
//
// # Defer
//
// pf's `defer` holds a new state's first packet until the peer has
// acknowledged the state, so that a failover right after cannot lose it.
// FreeBSD's pfsync_defer bounds the hold by PFSYNC_DEFER_TIMEOUT (20 ms),
// after which the packet goes anyway, and by 128 held packets (per bucket),
// beyond which the oldest goes at once; Engine.Defer does the same
// (Options.DeferTimeout, DeferMax). The state goes out at once with
// RecFlagAck; the peer answers with a RecStateAck once the state is in its
// kernel (both additions to wire version 1 that older readers skip: a
// peer that does not ack costs each held packet the timeout).
//
// On Linux a new entry is in no table and has no event until its first
// packet has passed every hook (conntrack confirms it last), so the packet
// is held in an NFQUEUE queue (NFQueue, ServeDefer) by a rule after NAT,
// and the state read from the queued packet's conntrack information. That
// needs three kernel features, which DeferSupported probes at run time and
// names when missing: nfnetlink_queue, its conntrack glue
// (CONFIG_NETFILTER_NETLINK_GLUE_CT) and nft_queue (the queue statement,
// with bypass so that packets pass when pfsync is not running). The test
// machine's kernel has nfnetlink_queue but neither of the others, so the
// kernel path (TestDeferOverNFQueue) skips there; the protocol is tested
// in memory (TestDefer) and the queued-packet decoding on a built message
// (TestDecodeQueued). The queue rule belongs to the compiled ruleset and
// is not written yet.
//
// # Sticky-address bindings
//
// BSD pfsync does not replicate pf's source-tracking nodes, so after a
// failover a sticky client may be sent to another server; pfcarp does
// replicate them. The bindings live in compile's sticky maps (nftables
// dynamic maps source -> backend with a timeout, read and written through
// package nft; KernelSticky). The kernel's packet path adds and renews
// them without any netlink notification, so the Engine reads the maps
// every StickyPoll (200 ms) and sends the bindings that are new, moved to
// another backend, or renewed by at least a quarter of their lifetime; the
// peer installs each with the remaining lifetime (replacing its own). A
// binding made less than a poll interval before a failover can be lost.
// Bindings that expire are not deleted on the peer: its copy expires too.
// A bulk update carries every binding.
package pfsync
