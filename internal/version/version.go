// Package version says which pfcarp this is: the release set at link time
// (-ldflags "-X github.com/pfcarp/pfcarp/internal/version.Release=1.2.3",
// as scripts/package.sh does), else the VCS revision the go command
// recorded, else "(devel)".
package version

import "runtime/debug"

// Release is set at link time for packaged builds.
var Release string

// String returns the version.
func String() string {
	if Release != "" {
		return Release
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "(devel)"
}
