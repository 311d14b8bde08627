package testenv

import "testing"

type recorder struct{ skipped, failed bool }

func (r *recorder) Helper()               {}
func (r *recorder) Skipf(string, ...any)  { r.skipped = true }
func (r *recorder) Fatalf(string, ...any) { r.failed = true }

func TestRequireRoot(t *testing.T) {
	for _, tc := range []struct {
		name         string
		euid         int
		env          string
		skip, failed bool
	}{
		{"root", 0, "", false, false},
		{"root in CI", 0, "1", false, false},
		{"user", 1000, "", true, false},
		{"user, env not 1", 1000, "0", true, false},
		{"user in CI", 1000, "1", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r recorder
			requireRoot(&r, tc.euid, tc.env)
			if r.skipped != tc.skip || r.failed != tc.failed {
				t.Errorf("requireRoot(euid=%d, env=%q): skipped=%v failed=%v, want skipped=%v failed=%v",
					tc.euid, tc.env, r.skipped, r.failed, tc.skip, tc.failed)
			}
		})
	}
}
