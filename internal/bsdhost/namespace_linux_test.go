package bsdhost

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/pfcarp/pfcarp/netdb"
)

// inNamespace runs f on a locked OS thread inside the named namespace.
func inNamespace(t *testing.T, name string, f func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		defer orig.Close()
		ns, err := netns.GetFromName(name)
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		f()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		} // else: the locked thread is discarded when this goroutine ends
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatalf("entering namespace %s: %v", name, err)
	}
}

// describe renders a host's answers for the fixture's interfaces and groups
// as text, one line per interface, so two hosts compare with ==.
func describe(h netdb.Host) string {
	var b strings.Builder
	names := []string{"lo", "vlan", netdb.SelfName}
	for _, ifc := range Interfaces() {
		names = append(names, ifc.Name)
	}
	for _, n := range names {
		addrs, ok := h.InterfaceAddrs(n)
		fmt.Fprintf(&b, "%s %v:", n, ok)
		for _, a := range addrs {
			fmt.Fprintf(&b, " %s", a.Prefix)
			if a.Broadcast.IsValid() {
				fmt.Fprintf(&b, " brd %s", a.Broadcast)
			}
			if a.Peer.IsValid() {
				fmt.Fprintf(&b, " peer %s", a.Peer)
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func TestNamespaceLooksLikeStatic(t *testing.T) {
	name := Namespace(t)
	want := describe(Static())

	var got string
	var ifs []netdb.Interface
	var readErr error
	inNamespace(t, name, func() {
		got = describe(netdb.System())
		ifs, readErr = netdb.ReadInterfaces()
	})
	if readErr != nil {
		t.Fatalf("ReadInterfaces in %s: %v", name, readErr)
	}
	if got != want {
		t.Errorf("netdb.System() in %s differs from Static():\n--- System\n%s--- Static\n%s", name, got, want)
	}
	// Exactly the fixture's interfaces, in its order, with its groups.
	fixture := Interfaces()
	if len(ifs) != len(fixture) {
		t.Fatalf("namespace has %d interfaces, fixture %d: %+v", len(ifs), len(fixture), ifs)
	}
	for i := range ifs {
		if ifs[i].Name != fixture[i].Name || !slices.Equal(ifs[i].Groups, fixture[i].Groups) {
			t.Errorf("interface %d = %s %v, want %s %v", i, ifs[i].Name, ifs[i].Groups, fixture[i].Name, fixture[i].Groups)
		}
	}
}

// TestNamespaceExec runs this test binary inside the namespace with
// `ip netns exec`, the way tests run pfcarp there, and checks what it sees.
func TestNamespaceExec(t *testing.T) {
	if os.Getenv("PFCARP_BSDHOST_DUMP") == "1" {
		t.Skip("helper mode")
	}
	name := Namespace(t)
	ip, err := exec.LookPath("ip")
	if err != nil {
		t.Skipf("iproute2's ip is not installed: %v", err)
	}
	cmd := exec.Command(ip, "netns", "exec", name, os.Args[0], "-test.run=^TestHelperDumpSystem$", "-test.count=1")
	cmd.Env = append(os.Environ(), "PFCARP_BSDHOST_DUMP=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %v\n%s%s", cmd, err, out, stderr.Bytes())
	}
	got, _, ok := strings.Cut(string(out), "--- end\n")
	got, _ = strings.CutPrefix(got, "--- begin\n")
	if !ok {
		t.Fatalf("helper printed no dump:\n%s", out)
	}
	if want := describe(Static()); got != want {
		t.Errorf("System() under ip netns exec %s:\n%s\nwant (Static):\n%s", name, got, want)
	}
}

// TestHelperDumpSystem is not a test: TestNamespaceExec runs it inside the
// namespace to print what netdb.System sees there.
func TestHelperDumpSystem(t *testing.T) {
	if os.Getenv("PFCARP_BSDHOST_DUMP") != "1" {
		t.Skip("helper for TestNamespaceExec")
	}
	fmt.Print("--- begin\n" + describe(netdb.System()) + "--- end\n")
}

func TestNamespaceCleanup(t *testing.T) {
	var name string
	t.Run("create", func(t *testing.T) { name = Namespace(t) })
	if name == "" {
		t.Skip("namespace not created")
	}
	if _, err := os.Stat("/run/netns/" + name); !os.IsNotExist(err) {
		t.Errorf("namespace %s still exists after its test ended (stat: %v)", name, err)
	}
}
