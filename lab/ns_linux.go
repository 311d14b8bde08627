package lab

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netnsDir is where named namespaces live, the iproute2 way: one bind mount
// of an nsfs inode per name, so `ip netns exec NAME` works too.
const netnsDir = "/run/netns"

// inNS runs fn on a fresh goroutine locked to an OS thread that has entered
// the namespace at path. The thread returns to its original namespace
// afterwards; if it cannot, the goroutine exits still locked and the runtime
// discards the thread rather than reuse it in the wrong namespace.
func inNS(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		origin, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current namespace: %w", err)
			return
		}
		defer origin.Close()
		target, err := netns.GetFromPath(path)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open namespace %s: %w", path, err)
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter namespace %s: %w", path, err)
			return
		}
		ferr := fn()
		if err := netns.Set(origin); err != nil {
			// Leave the thread locked: it dies with this goroutine.
			errc <- errors.Join(ferr, fmt.Errorf("return from namespace %s: %w", path, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// createNS creates the named namespace name under netnsDir.
func createNS(name string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		origin, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer origin.Close()
		h, cerr := netns.NewNamed(name)
		if cerr == nil {
			h.Close()
		} else if !errors.Is(cerr, fs.ErrExist) {
			// NewNamed leaves its placeholder file behind when the mount fails.
			_ = os.Remove(filepath.Join(netnsDir, name)) // the mount error below is the one to report
		}
		if err := netns.Set(origin); err != nil {
			errc <- errors.Join(cerr, fmt.Errorf("return to original namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- cerr
	}()
	if err := <-errc; err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("namespace %s: name clash: %s already exists", name, filepath.Join(netnsDir, name))
		}
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}

// deleteNS unmounts and removes the named namespace; a missing one is not an
// error. The kernel frees the namespace, and with it its links, once no
// process holds it.
func deleteNS(name string) error {
	p := filepath.Join(netnsDir, name)
	for i := 0; i < 8; i++ { // a crashed tool may have stacked mounts
		err := unix.Unmount(p, unix.MNT_DETACH)
		if err == unix.EINVAL || err == unix.ENOENT {
			break
		}
		if err != nil {
			return fmt.Errorf("unmount %s: %w", p, err)
		}
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	return nil
}

// listNS lists the named namespaces whose names start with prefix.
func listNS(prefix string) ([]string, error) {
	ents, err := os.ReadDir(netnsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// nsID identifies a namespace by its nsfs device and inode.
type nsID struct{ dev, ino uint64 }

func statNS(path string) (nsID, bool) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nsID{}, false
	}
	return nsID{uint64(st.Dev), st.Ino}, true
}

// procsIn returns the pids (other than this process) whose network namespace
// is one of ids.
func procsIn(ids map[nsID]bool) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if id, ok := statNS(filepath.Join("/proc", e.Name(), "ns", "net")); ok && ids[id] {
			out = append(out, pid)
		}
	}
	return out
}

// procRef names a process by pid and start time, so a recycled pid is never
// mistaken for the process the lab started. The zero value is "none".
type procRef struct {
	PID   int    `json:"pid,omitempty"`
	Start uint64 `json:"start,omitempty"` // /proc/PID/stat field 22
}

// procStat reads the state letter and start time of pid.
func procStat(pid int) (state byte, start uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil || len(f[0]) != 1 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	return f[0][0], start, nil
}

func refOf(pid int) procRef {
	_, start, err := procStat(pid)
	if err != nil {
		return procRef{PID: pid}
	}
	return procRef{PID: pid, Start: start}
}

// alive reports whether the referenced process still runs (a zombie does not).
func (r procRef) alive() bool {
	if r.PID <= 0 {
		return false
	}
	st, start, err := procStat(r.PID)
	return err == nil && start == r.Start && st != 'Z' && st != 'X'
}

// kill sends SIGKILL if the referenced process is still the one started.
func (r procRef) kill() error {
	if !r.alive() {
		return nil
	}
	if err := syscall.Kill(r.PID, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
		return fmt.Errorf("kill %d: %w", r.PID, err)
	}
	return nil
}

// startIn starts cmd with its network namespace set to the named one. The
// child inherits the namespace of the locked thread that forks it.
func startIn(nsName string, cmd *exec.Cmd) error {
	return inNS(filepath.Join(netnsDir, nsName), cmd.Start)
}

// writeSysctlIn writes a /proc/sys/net value inside a namespace (the net
// sysctls resolve against the opening thread's namespace).
func writeSysctlIn(nsName, key, value string) error {
	p := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
	return inNS(filepath.Join(netnsDir, nsName), func() error {
		if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
		}
		return nil
	})
}
