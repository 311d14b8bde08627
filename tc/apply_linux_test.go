package tc

import (
	"net/netip"
	"sort"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/pfcarp/pfcarp/internal/testenv"
)

// classes lists eth0's class handles and their parents.
func classes(t *testing.T) []string {
	t.Helper()
	l, err := netlink.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	cs, err := netlink.ClassList(l, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range cs {
		out = append(out, netlink.HandleStr(c.Attrs().Handle)+"<"+netlink.HandleStr(c.Attrs().Parent))
	}
	sort.Strings(out)
	return out
}

func root(t *testing.T) netlink.Qdisc {
	t.Helper()
	l, err := netlink.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	q, err := rootQdisc(l)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// TestApply installs a tree, changes it in place (a class less, one
// more), removes it, and leaves a qdisc pfcarp did not create alone.
func TestApply(t *testing.T) {
	testenv.RequireRoot(t)
	hs, _ := testenv.TwoHosts(t, "pfq", netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("192.0.2.2/24"))
	a := plan(t, "queue r on eth0 bandwidth 10M\nqueue a parent r bandwidth 1M default\nqueue b parent r bandwidth 2M\n", htbOnly)
	b := plan(t, "queue r on eth0 bandwidth 10M\nqueue a parent r bandwidth 1M default\nqueue c parent r bandwidth 3M\n", htbOnly)
	testenv.In(t, hs[0], func() {
		if err := Apply(a); err != nil {
			t.Fatal(err)
		}
		if q := root(t); q.Type() != HTB || q.Attrs().Handle != Handle(0) || q.(*netlink.Htb).Defcls != uint32(a.IDs["a"]) {
			t.Fatalf("root %v", q)
		}
		if got := strings.Join(classes(t), " "); got != "caf:2<root caf:3<caf:2 caf:4<caf:2" {
			t.Fatalf("classes %s", got)
		}
		// b: r a c; the ruleset's names get minors in order, so c is caf:4 too
		// here; give it another one to see the stale class go.
		b.IDs["c"] = 9
		for _, c := range b.Ifaces[0].Classes {
			if c.Name == "c" {
				c.Minor = 9
			}
		}
		if err := Apply(b); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(classes(t), " "); got != "caf:2<root caf:3<caf:2 caf:9<caf:2" {
			t.Fatalf("after the change: classes %s", got)
		}
		if err := Remove(); err != nil {
			t.Fatal(err)
		}
		if q := root(t); q != nil && ours(q) {
			t.Fatalf("root after Remove: %v", q)
		}
		// A qdisc of someone else's.
		l, _ := netlink.LinkByName("eth0")
		foreign := netlink.NewHtb(netlink.QdiscAttrs{LinkIndex: l.Attrs().Index, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT})
		if err := netlink.QdiscAdd(foreign); err != nil {
			t.Fatal(err)
		}
		err := Apply(a)
		if err == nil || !strings.Contains(err.Error(), "was not created by pfcarp") {
			t.Fatalf("Apply over a foreign qdisc: %v", err)
		}
		if q := root(t); q.Attrs().Handle != netlink.MakeHandle(1, 0) {
			t.Fatalf("foreign root replaced: %v", q)
		}
		if err := Remove(); err != nil {
			t.Fatal(err)
		}
		if q := root(t); q.Attrs().Handle != netlink.MakeHandle(1, 0) {
			t.Fatalf("Remove removed a foreign root: %v", q)
		}
	})
}
