package daemon

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// SetPriority reaches every thread of the process. It runs in a child
// (this test binary again) so that the suite keeps its priority; raising
// nice needs no privilege.
func TestSetPriorityEveryThread(t *testing.T) {
	if os.Getenv("PFCARP_PRIORITY_CHILD") == "1" {
		if err := (&LinuxSystem{}).SetPriority(5); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		for _, e := range ents {
			tid, _ := strconv.Atoi(e.Name())
			// getpriority returns 20 - nice (the raw syscall's convention)
			p, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
			if err != nil {
				continue // the thread ended
			}
			if nice := 20 - p; nice != 5 {
				fmt.Printf("thread %d: nice %d\n", tid, nice)
				os.Exit(1)
			}
		}
		fmt.Printf("ok %d threads\n", len(ents))
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSetPriorityEveryThread$", "-test.count=1")
	cmd.Env = append(os.Environ(), "PFCARP_PRIORITY_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok ") {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("child: %s", strings.TrimSpace(string(out)))
}
