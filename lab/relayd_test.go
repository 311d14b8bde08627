package lab

import (
	"strings"
	"testing"

	"github.com/pfcarp/pfcarp/relayd"
)

// The lab's relayd.conf parses, at the seed's and at the lab's
// addresses, and WithRelayd wires it into both balancers.
func TestWithRelayd(t *testing.T) {
	for _, seed := range []bool{true, false} {
		o, err := WithRelayd(Options{Dir: t.TempDir(), Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"lb1", "lb2"} {
			fs := o.NodeFiles[n]
			cfg, err := relayd.Parse("relayd.conf", fs["relayd.conf"], nil)
			if err != nil {
				t.Fatalf("seed %v: %v", seed, err)
			}
			if len(cfg.Redirects) != 1 || !cfg.Redirects[0].Sticky || cfg.Instances[0].Demote != "carp" ||
				cfg.Interval.Milliseconds() != RelaydInterval || cfg.Timeout.Milliseconds() != RelaydTimeout {
				t.Errorf("seed %v: %+v", seed, cfg)
			}
			want := "192.0.2.20"
			if seed {
				want = "192.168.10.20"
			}
			if got := cfg.Instances[0].Hosts[0].Addr.String(); got != want {
				t.Errorf("seed %v: first host %s, want %s", seed, got, want)
			}
			if !strings.Contains(string(fs["pf.conf"]), "anchor \"relayd/*\"") || strings.Contains(string(fs["pf.conf"]), seedRdr) {
				t.Errorf("%s pf.conf:\n%s", n, fs["pf.conf"])
			}
			if !strings.Contains(string(fs["pfcarp.conf"]), `relayd_enable="YES"`) {
				t.Errorf("%s pfcarp.conf has no relayd_enable", n)
			}
		}
	}
}
