package tc

import (
	"testing"

	"github.com/pfcarp/pfcarp/pfconf"
)

// FuzzBuild plans whatever pfconf accepts: refusals, never a panic, and
// every planned class has a parent in the plan.
func FuzzBuild(f *testing.F) {
	for _, s := range []string{
		"queue r on eth0 bandwidth 10M max 10M\nqueue a parent r bandwidth 2M default\nqueue b parent r bandwidth 1M burst 2M for 10ms min 500K\n",
		"altq on eth0 cbq bandwidth 10Mb queue { a, b }\nqueue a bandwidth 10% cbq(default)\nqueue b bandwidth 90% priority 7 cbq(borrow red) { c }\nqueue c bandwidth 50%\n",
		"altq on eth1 priq bandwidth 1Mb queue { a b }\nqueue a priority 1 priq(default)\nqueue b priority 15\n",
		"altq on eth0 bandwidth 16Mb hfsc queue { a }\nqueue a hfsc(default realtime (1Mb 10 2Mb) upperlimit 50%)\n",
		"queue q on eth0 flows 1024 qlimit 300 default\nqueue r on { eth0 eth1 } bandwidth 1G\nqueue s parent r bandwidth 1M default\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		p, err := pfconf.Parse("pf.conf", []byte(src), pfconf.ParseOptions{})
		if err != nil {
			return
		}
		rs, err := pfconf.Expand(p, host)
		if err != nil {
			return
		}
		for _, has := range []Features{htbOnly, Mainline} {
			plan, _ := Build(rs, has)
			for _, ifc := range plan.Ifaces {
				minors := map[uint16]bool{0: true}
				for _, c := range ifc.Classes {
					if !minors[c.Parent] {
						t.Fatalf("%s: class %d before its parent %d", ifc.Name, c.Minor, c.Parent)
					}
					minors[c.Minor] = true
				}
			}
		}
	})
}
