// Package relayd is the redirection part of OpenBSD's relayd(8) for pfcarp:
// the relayd.conf(5) language (Parse) restricted to global options, macros,
// include, table definitions and redirect blocks, and the host checks that
// keep the server pools' state (NewChecker): icmp, tcp, tls, http/https
// status code or page digest, send/expect and script, with relayd's retry,
// interval and timeout rules (hce.c, check_*.c).
//
// The package owns the parsed configuration (positions, relayd's error
// wording with file:line:col) and the per-host state machine with its
// counters (checks, ups, availability as relayctl(8) prints them), reported
// through a callback. It must not touch pf, nftables, CARP demotion or any
// daemon state: it knows nothing of anchors or tables in the kernel, and
// host state changes leave it only as Status values. Wiring redirections to
// pf anchors, demoting CARP groups (a table's "demote" option is parsed and
// exposed) and control-socket commands belong to the daemon.
//
// Layer-7 relays ("relay", "protocol", "http protocol", ...), "router",
// "route to", agentx/snmp and binary send/expect are refused by name.
package relayd
