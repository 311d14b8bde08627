// Package carp owns the Common Address Redundancy Protocol (CARPv2) as the
// FreeBSD and OpenBSD kernels speak it: the 36-byte advertisement codec and its
// HMAC-SHA1, and the per-VHID state machine INIT -> BACKUP <-> MASTER with
// BSD timing, preemption, bow-out and node-wide demotion.
//
// The core is event driven and does no I/O of its own. A Group is fed
// received advertisements (Receive), the passage of time (Tick, with an
// injected clock.Clock), parent link changes (SetParentUp) and shutdown
// (Shutdown); it answers through the Actions interface (send this
// advertisement, become master, release the addresses). A Node groups the
// VHIDs of one host and owns the demotion counter, so that when one parent
// interface fails every group is demoted and the virtual addresses move
// together. Runner is the one goroutine that drives a Node from a Transport
// and a timer; the raw IP protocol 112 transport for Linux lives in
// transport_linux.go.
//
// carp does not add or remove addresses, send gratuitous ARP or unsolicited
// neighbour advertisements, or parse configuration files: the daemon does that
// in its Actions. Facts taken from the BSD sources (sys/netinet/ip_carp.c of
// FreeBSD and OpenBSD) are cited where they are used; no BSD code is copied.
package carp
