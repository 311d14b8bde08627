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
// through a callback. It also writes what relayd's pfe puts in pf
// (pfe.c pfe_sync, pfe_filter.c sync_table and sync_ruleset): for each
// redirection, anchor relayd/NAME with table <NAME> holding the up hosts
// of the active table (main, else backup) and one rdr-to pass rule per
// listen address (AnchorRules, as pf.conf text), and an Installer that
// compiles that text like any anchor file and loads it with
// nft.Conn.LoadAnchor only when it changed. It keeps no daemon state:
// running the Checker, calling Installer.Sync on host state changes and
// reloads, demoting CARP groups (a table's "demote" option is parsed and
// exposed) and control-socket commands belong to the daemon.
//
// Layer-7 relays ("relay", "protocol", "http protocol", ...), "router",
// "route to", agentx/snmp and binary send/expect are refused by name.
package relayd
