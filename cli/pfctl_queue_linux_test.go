package cli

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/pfcarp/pfcarp/internal/testenv"
	"github.com/pfcarp/pfcarp/netdb"
	"github.com/pfcarp/pfcarp/tc"
)

// TestPfctlQueues loads queues with pfctl -f, checks eth0's root qdisc
// is pfcarp's HTB, removes it with -F all, and sees a queue whose qdisc
// the kernel lacks refused with its line.
func TestPfctlQueues(t *testing.T) {
	testenv.RequireRoot(t)
	hs, _ := testenv.TwoHosts(t, "pfq", netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("192.0.2.2/24"))
	run := func(h netns.NsHandle, stdin string, args ...string) (string, int) {
		var out, errb bytes.Buffer
		env := &Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb}
		code := 0
		testenv.In(t, h, func() {
			if err := runPfctl(env, args, &netdb.Fixed{}); err != nil {
				var ee *ExitError
				if !errors.As(err, &ee) {
					t.Fatalf("pfctl %v: %v", args, err)
				}
				code = ee.Code
			}
		})
		return errb.String(), code
	}
	rootKind := func() (string, uint32) {
		var kind string
		var handle uint32
		testenv.In(t, hs[0], func() {
			l, err := netlink.LinkByName("eth0")
			if err != nil {
				t.Fatal(err)
			}
			qs, err := netlink.QdiscList(l)
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range qs {
				if q.Attrs().Parent == netlink.HANDLE_ROOT {
					kind, handle = q.Type(), q.Attrs().Handle
				}
			}
		})
		return kind, handle
	}
	conf := "queue rootq on eth0 bandwidth 10M\nqueue std parent rootq bandwidth 2M default\nqueue ssh parent rootq bandwidth 1M\npass out proto tcp to port 22 set queue ssh\n"
	if serr, code := run(hs[0], conf, "-f", "-"); code != 0 {
		t.Fatalf("pfctl -f: exit %d: %s", code, serr)
	}
	if kind, h := rootKind(); kind != "htb" || h != tc.Handle(0) {
		t.Fatalf("root qdisc after load: %s %s", kind, netlink.HandleStr(h))
	}
	if serr, code := run(hs[0], "", "-F", "all"); code != 0 || !strings.Contains(serr, "altq cleared\n") {
		t.Fatalf("pfctl -F all: exit %d: %q", code, serr)
	}
	if kind, h := rootKind(); h>>16 == uint32(tc.Major) {
		t.Fatalf("root qdisc after -F all: %s %s", kind, netlink.HandleStr(h))
	}
	has, err := tc.Probe()
	if err != nil {
		t.Fatal(err)
	}
	if has(tc.HFSC) {
		t.Skip("this kernel has HFSC")
	}
	hfsc := "altq on eth0 bandwidth 10Mb hfsc queue { a }\nqueue a hfsc(default)\n"
	serr, code := run(hs[0], hfsc, "-f", "-")
	if code != 1 || !strings.Contains(serr, "stdin:1: hfsc queue needs the Linux HFSC qdisc (CONFIG_NET_SCH_HFSC), not in this kernel") {
		t.Fatalf("hfsc on a kernel without: exit %d: %q", code, serr)
	}
}
