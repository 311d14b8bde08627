// Package integration holds pfcarp's end-to-end tests: they build the pfcarp
// binary, bring up the lab (package lab: network namespaces only, never
// connected to the host's own network) and drive real daemons through the
// seed's failover scenarios, and pfcarp against an independent CARP
// implementation (ucarp) on the same segment.
//
// The tests need root. They skip with a message when not root, and fail
// instead when PFCARP_REQUIRE_ROOT=1 (CI). The package has no non-test code
// besides this comment; it owns no behaviour, only checks it.
package integration
