// Package testenv holds small helpers that gate tests on the environment they
// run in. It owns the policy for root-only tests: skip with a message when not
// root, except in CI (PFCARP_REQUIRE_ROOT=1), where a missing privilege is a
// failure rather than a silent skip.
//
// testenv does not create namespaces or touch the host; see
// internal/bsdhost for a namespace fixture.
package testenv

import (
	"os"
	"testing"
)

// RequireRootEnv is the environment variable that turns RequireRoot's skip
// into a failure. CI sets it to "1" and runs as root.
const RequireRootEnv = "PFCARP_REQUIRE_ROOT"

// RequireRoot skips t when the process is not running as root (uid 0), with a
// message saying why. When the environment variable PFCARP_REQUIRE_ROOT is
// "1", a non-root process fails the test instead.
func RequireRoot(t testing.TB) {
	t.Helper()
	requireRoot(t, os.Geteuid(), os.Getenv(RequireRootEnv))
}

// skipFataler is the part of testing.TB requireRoot uses; tests substitute a
// recorder.
type skipFataler interface {
	Helper()
	Skipf(format string, args ...any)
	Fatalf(format string, args ...any)
}

func requireRoot(t skipFataler, euid int, env string) {
	t.Helper()
	if euid == 0 {
		return
	}
	if env == "1" {
		t.Fatalf("test needs root (euid is %d) and %s=1 forbids skipping", euid, RequireRootEnv)
		return
	}
	t.Skipf("test needs root (euid is %d); run as root, or set %s=1 to make this a failure", euid, RequireRootEnv)
}
