package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// stateVersion is the version of the state file's format.
const stateVersion = 1

// state is what the lab records in Dir/state.json so that later commands
// (other processes) can drive it.
type state struct {
	Version         int                   `json:"version"`
	Phase           string                `json:"phase"` // "building" or "up"
	Prefix          string                `json:"prefix"`
	Seed            bool                  `json:"seed"`
	Backends        int                   `json:"backends"`
	Bin             string                `json:"bin"`
	CreatedNetnsDir bool                  `json:"created_netns_dir,omitempty"`
	Nodes           map[string]*nodeState `json:"nodes"`
}

type nodeState struct {
	Daemon     []string `json:"daemon,omitempty"` // expanded command line
	DaemonProc procRef  `json:"daemon_proc"`
	Backend    procRef  `json:"backend"`
}

// Lab is a lab that is up (or being built). Its methods are safe for
// concurrent use. Methods of a Lab returned by Open coordinate with other
// processes through a lock file in the lab directory.
type Lab struct {
	dir  string
	plan *Plan
	logf func(string, ...any)

	mu sync.Mutex // guards st and children
	st state
	// children are processes this process started and must reap.
	children map[int]*exec.Cmd
}

// Plan returns the lab's topology (read-only).
func (l *Lab) Plan() *Plan { return l.plan }

// Dir returns the lab directory.
func (l *Lab) Dir() string { return l.dir }

// Namespace returns the namespace name of node.
func (l *Lab) Namespace(node string) string { return l.st.Prefix + node }

// NodeDir returns the directory of node's logs and sockets.
func (l *Lab) NodeDir(node string) string { return filepath.Join(l.dir, node) }

// SocketPath returns the control socket path of node's daemon.
func (l *Lab) SocketPath(node string) string { return filepath.Join(l.dir, node, "pfcarp.sock") }

func (l *Lab) nsPath(node string) string { return filepath.Join(netnsDir, l.Namespace(node)) }

func (l *Lab) node(name string) (*Node, error) {
	n, ok := l.plan.Node(name)
	if !ok {
		return nil, fmt.Errorf("no node %q in the lab (nodes: %s)", name, strings.Join(l.plan.NodeNames(), ", "))
	}
	return n, nil
}

func (l *Lab) log(format string, args ...any) {
	if l.logf != nil {
		l.logf(format, args...)
	}
}

// CheckRoot says clearly when the lab cannot work for lack of privilege.
func CheckRoot() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("the lab needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN to create namespaces); euid is %d", os.Geteuid())
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		return fmt.Errorf("kernel lacks network namespaces (CONFIG_NET_NS): %w", err)
	}
	return nil
}

// Up builds a lab. On failure it removes everything it created and returns
// why; it never leaves a half-built lab. An existing lab, or leftovers of a
// crashed one, make Up fail with a message that says to run Down first.
func Up(ctx context.Context, opts Options) (*Lab, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, fmt.Errorf("lab up: %w", err)
	}
	plan, err := NewPlan(opts.Seed, opts.Backends)
	if err != nil {
		return nil, fmt.Errorf("lab up: %w", err)
	}
	if err := CheckRoot(); err != nil {
		return nil, fmt.Errorf("lab up: %w", err)
	}
	if opts.Bin == "" {
		if opts.Bin, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("lab up: find the pfcarp binary: %w", err)
		}
	}
	if fi, err := os.Stat(opts.Bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("lab up: pfcarp binary %q is not an executable file", opts.Bin)
	}
	for name := range opts.Daemons {
		if _, ok := plan.Node(name); !ok {
			return nil, fmt.Errorf("lab up: daemon for unknown node %q", name)
		}
		if len(opts.Daemons[name]) == 0 {
			return nil, fmt.Errorf("lab up: empty daemon command line for node %q", name)
		}
	}
	if _, err := os.Stat(filepath.Join(opts.Dir, "state.json")); err == nil {
		return nil, fmt.Errorf("lab up: a lab is already up in %s; run `pfcarp lab down` first", opts.Dir)
	}
	if left, _ := listNS(opts.Prefix); len(left) > 0 {
		return nil, fmt.Errorf("lab up: name clash: namespaces %s exist (an earlier lab crashed or another tool uses the prefix %q); run `pfcarp lab down` first",
			strings.Join(left, ", "), opts.Prefix)
	}
	for name, files := range opts.NodeFiles {
		if _, ok := plan.Node(name); !ok {
			return nil, fmt.Errorf("lab up: files for unknown node %q", name)
		}
		for f := range files {
			if f == "" || f != filepath.Base(f) || f == "." || f == ".." {
				return nil, fmt.Errorf("lab up: node %s: file name %q must be a plain file name", name, f)
			}
		}
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("lab up: %w", err)
	}
	unlock, err := lockDir(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("lab up: %w", err)
	}
	defer unlock()
	// Check again under the lock: another `lab up` may have won the race.
	if _, err := os.Stat(filepath.Join(opts.Dir, "state.json")); err == nil {
		return nil, fmt.Errorf("lab up: a lab is already up in %s; run `pfcarp lab down` first", opts.Dir)
	}
	l := &Lab{
		dir:      opts.Dir,
		plan:     plan,
		logf:     opts.Logf,
		children: map[int]*exec.Cmd{},
		st: state{
			Version:  stateVersion,
			Phase:    "building",
			Prefix:   opts.Prefix,
			Seed:     opts.Seed,
			Backends: opts.Backends,
			Bin:      opts.Bin,
			Nodes:    map[string]*nodeState{},
		},
	}
	if _, err := os.Stat(netnsDir); errors.Is(err, fs.ErrNotExist) {
		l.st.CreatedNetnsDir = true
	}
	for _, n := range plan.Nodes {
		ns := &nodeState{}
		if argv := opts.Daemons[n.Name]; len(argv) > 0 {
			ns.Daemon = l.expand(argv, n.Name)
		}
		l.st.Nodes[n.Name] = ns
	}
	if err := l.build(ctx, opts.NodeFiles, opts.StartDaemons); err != nil {
		derr := l.downLocked()
		return nil, errors.Join(fmt.Errorf("lab up: %w", err), derr)
	}
	l.mu.Lock()
	l.st.Phase = "up"
	err = l.saveLocked()
	l.mu.Unlock()
	if err != nil {
		derr := l.downLocked()
		return nil, errors.Join(fmt.Errorf("lab up: %w", err), derr)
	}
	return l, nil
}

func (l *Lab) expand(argv []string, node string) []string {
	r := strings.NewReplacer("{bin}", l.st.Bin, "{dir}", l.NodeDir(node), "{node}", node)
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = r.Replace(a)
	}
	return out
}

// build does the work of Up; the caller rolls back on error.
func (l *Lab) build(ctx context.Context, files map[string]map[string][]byte, startDaemons bool) error {
	t0 := time.Now()
	l.mu.Lock()
	err := l.saveLocked()
	l.mu.Unlock()
	if err != nil {
		return err
	}
	for _, n := range l.plan.Nodes {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := os.MkdirAll(l.NodeDir(n.Name), 0o755); err != nil {
			return err
		}
		if err := createNS(l.Namespace(n.Name)); err != nil {
			return err
		}
		for f, b := range files[n.Name] {
			if err := os.WriteFile(filepath.Join(l.NodeDir(n.Name), f), b, 0o644); err != nil {
				return err
			}
		}
	}
	l.log("namespaces created (%d)", len(l.plan.Nodes))
	if err := l.wire(ctx); err != nil {
		return err
	}
	l.log("links, addresses and routes set")
	if err := l.startBackends(ctx); err != nil {
		return err
	}
	l.log("backends answering (%d)", len(l.plan.Servers()))
	if startDaemons {
		for _, n := range l.plan.Nodes {
			if len(l.st.Nodes[n.Name].Daemon) > 0 {
				if err := l.StartDaemon(n.Name); err != nil {
					return err
				}
			}
		}
	}
	l.log("lab up in %v", time.Since(t0).Round(time.Millisecond))
	return nil
}

// Open returns the lab that is up in dir (DefaultDir when empty). It wraps
// ErrNotUp when there is none.
func Open(dir string) (*Lab, error) {
	if dir == "" {
		dir = DefaultDir
	}
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s (start one with `pfcarp lab up`)", ErrNotUp, dir)
	}
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "state.json"), err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("%s: state version %d, this pfcarp reads %d; run `pfcarp lab down`", filepath.Join(dir, "state.json"), st.Version, stateVersion)
	}
	plan, err := NewPlan(st.Seed, st.Backends)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "state.json"), err)
	}
	if !prefixRE.MatchString(st.Prefix) {
		return nil, fmt.Errorf("%s: bad prefix %q", filepath.Join(dir, "state.json"), st.Prefix)
	}
	for _, n := range plan.Nodes {
		if st.Nodes[n.Name] == nil {
			if st.Nodes == nil {
				st.Nodes = map[string]*nodeState{}
			}
			st.Nodes[n.Name] = &nodeState{}
		}
	}
	if st.Phase != "up" {
		return nil, fmt.Errorf("lab in %s is half built (phase %q: its builder crashed or still runs); run `pfcarp lab down`", dir, st.Phase)
	}
	return &Lab{dir: dir, plan: plan, st: st, children: map[int]*exec.Cmd{}}, nil
}

// saveLocked writes the state file atomically.
func (l *Lab) saveLocked() error {
	b, err := json.MarshalIndent(&l.st, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(l.dir, ".state.json.tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(l.dir, "state.json"))
}

// lockDir takes an exclusive lock on dir/lock, serialising lab commands of
// different processes. The file lives in dir and goes away with it.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if err != unix.EWOULDBLOCK || time.Now().After(deadline) {
			_ = f.Close() // a lock file: nothing written
			return nil, fmt.Errorf("lock %s: another lab command holds it: %w", f.Name(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return func() { _ = f.Close() }, nil // closing releases the lock; nothing written
}

// Down removes the lab: every process in its namespaces, the namespaces (and
// with them their links and mounts) and the lab directory. It is what Cleanup
// does with the lab's own directory and prefix, plus reaping the processes
// this Lab started.
func (l *Lab) Down() error {
	unlock, err := lockDir(l.dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("lab down: %w", err)
	}
	if unlock != nil {
		defer unlock()
	}
	return l.downLocked()
}

func (l *Lab) downLocked() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	err := cleanup(l.dir, l.st.Prefix, l.st.CreatedNetnsDir, l.logf)
	for pid, c := range l.children {
		// cleanup killed every process in the namespaces; this reaps
		// them (Kill: ESRCH-like "process already finished"; Wait: the
		// status of a killed process).
		_ = c.Process.Kill()
		_ = c.Wait()
		delete(l.children, pid)
	}
	return err
}

// Cleanup removes a lab and anything a crashed one left behind: processes in
// namespaces named prefix*, those namespaces, and dir. Empty dir and prefix
// mean the defaults. Nothing to remove is not an error.
func Cleanup(dir, prefix string, logf func(string, ...any)) error {
	if dir == "" {
		dir = DefaultDir
	}
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !prefixRE.MatchString(prefix) {
		return fmt.Errorf("lab down: prefix %q: want 1 to 16 letters, digits or '-'", prefix)
	}
	if err := CheckRoot(); err != nil {
		return fmt.Errorf("lab down: %w", err)
	}
	createdNetnsDir := false
	if b, err := os.ReadFile(filepath.Join(dir, "state.json")); err == nil {
		var st state
		if json.Unmarshal(b, &st) == nil {
			createdNetnsDir = st.CreatedNetnsDir
			if st.Prefix != "" && st.Prefix != prefix && prefixRE.MatchString(st.Prefix) {
				if err := cleanup(dir, st.Prefix, false, logf); err != nil {
					return err
				}
			}
		}
	}
	var unlock func()
	if _, err := os.Stat(dir); err == nil {
		var lerr error
		if unlock, lerr = lockDir(dir); lerr != nil {
			return fmt.Errorf("lab down: %w", lerr)
		}
		defer unlock()
	}
	return cleanup(dir, prefix, createdNetnsDir, logf)
}

func cleanup(dir, prefix string, createdNetnsDir bool, logf func(string, ...any)) error {
	logp := func(format string, args ...any) {
		if logf != nil {
			logf(format, args...)
		}
	}
	names, err := listNS(prefix)
	if err != nil {
		return fmt.Errorf("lab down: %w", err)
	}
	var errs []error
	// Kill every process inside the lab's namespaces first: a namespace
	// with a process in it outlives its name and keeps its links.
	ids := map[nsID]bool{}
	for _, n := range names {
		if id, ok := statNS(filepath.Join(netnsDir, n)); ok && id.dev != 0 {
			ids[id] = true
		}
	}
	if len(ids) > 0 {
		deadline := time.Now().Add(3 * time.Second)
		killed := 0
		for {
			pids := procsIn(ids)
			if len(pids) == 0 {
				break
			}
			if time.Now().After(deadline) {
				errs = append(errs, fmt.Errorf("lab down: processes %v still run in the lab's namespaces", pids))
				break
			}
			for _, pid := range pids {
				if syscall.Kill(pid, syscall.SIGKILL) == nil {
					killed++
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		if killed > 0 {
			logp("killed %d processes", killed)
		}
	}
	for _, n := range names {
		if err := deleteNS(n); err != nil {
			errs = append(errs, fmt.Errorf("lab down: %w", err))
		}
	}
	if len(names) > 0 {
		logp("removed namespaces %s", strings.Join(names, " "))
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, fmt.Errorf("lab down: %w", err))
	}
	if createdNetnsDir {
		_ = os.Remove(netnsDir) // only succeeds while empty: others' namespaces stay
	}
	return errors.Join(errs...)
}

// Command returns a command that runs argv in node: its environment has
// SocketEnv set to the node's control socket and, when the node has a daemon
// config, ConfigEnv set to it (so `pfcarp pfctl` resolves carpN as the node
// does). Start it with Start or Run.
func (l *Lab) Command(ctx context.Context, node string, argv ...string) (*exec.Cmd, error) {
	if _, err := l.node(node); err != nil {
		return nil, err
	}
	if len(argv) == 0 {
		return nil, errors.New("no command to run")
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), SocketEnv+"="+l.SocketPath(node))
	if cfg := filepath.Join(l.NodeDir(node), "pfcarp.conf"); fileExists(cfg) {
		cmd.Env = append(cmd.Env, ConfigEnv+"="+cfg)
	}
	return cmd, nil
}

// Start starts cmd inside node's network namespace.
func (l *Lab) Start(node string, cmd *exec.Cmd) error {
	if _, err := l.node(node); err != nil {
		return err
	}
	if err := startIn(l.Namespace(node), cmd); err != nil {
		return fmt.Errorf("node %s: %w", node, err)
	}
	return nil
}

// Run runs cmd inside node's network namespace and waits for it.
func (l *Lab) Run(node string, cmd *exec.Cmd) error {
	if err := l.Start(node, cmd); err != nil {
		return err
	}
	return cmd.Wait()
}

// startDetached starts argv in node as a session leader whose output goes to
// logName in the node's directory, and records it as a child to reap.
func (l *Lab) startDetached(node, logName string, argv []string) (procRef, error) {
	logPath := filepath.Join(l.NodeDir(node), logName)
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return procRef{}, err
	}
	defer func() { _ = f.Close() }() // the child writes through its own copy
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), SocketEnv+"="+l.SocketPath(node))
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = l.NodeDir(node)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := startIn(l.Namespace(node), cmd); err != nil {
		return procRef{}, fmt.Errorf("node %s: start %s: %w", node, argv[0], err)
	}
	l.mu.Lock()
	l.children[cmd.Process.Pid] = cmd
	l.mu.Unlock()
	return refOf(cmd.Process.Pid), nil
}

// reap waits for pid if this process started it.
func (l *Lab) reap(pid int) {
	l.mu.Lock()
	c := l.children[pid]
	delete(l.children, pid)
	l.mu.Unlock()
	if c != nil {
		_ = c.Wait() // the exit status of a stopped or killed process
	}
}

func (l *Lab) startBackends(ctx context.Context) error {
	servers := l.plan.Servers()
	for _, n := range servers {
		ref, err := l.startDetached(n.Name, "backend.log", []string{
			l.st.Bin, "lab", "backend", "--index", strconv.Itoa(n.Index), "--listen", ":80", "--listen", ":443"})
		if err != nil {
			return err
		}
		l.mu.Lock()
		l.st.Nodes[n.Name].Backend = ref
		err = l.saveLocked()
		l.mu.Unlock()
		if err != nil {
			return err
		}
	}
	for _, n := range servers {
		if err := l.waitBackend(ctx, n.Name); err != nil {
			return err
		}
	}
	return nil
}

// waitBackend polls node's backend on port 80 from inside the node.
func (l *Lab) waitBackend(parent context.Context, node string) error {
	ctx, cancel := context.WithTimeout(parent, 5*time.Second)
	defer cancel()
	ref := l.st.Nodes[node].Backend
	for {
		c, err := l.Dial(ctx, node, "tcp", "127.0.0.1:80")
		if err == nil {
			_ = c.Close() // only the connect was the test
			return nil
		}
		if !ref.alive() {
			return fmt.Errorf("backend in %s exited: %s", node, tail(filepath.Join(l.NodeDir(node), "backend.log")))
		}
		select {
		case <-ctx.Done():
			if perr := parent.Err(); perr != nil {
				return fmt.Errorf("waiting for the backend in %s: %w", node, perr)
			}
			return fmt.Errorf("backend in %s does not answer on port 80: %w (log: %s)", node, err, tail(filepath.Join(l.NodeDir(node), "backend.log")))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// tail returns the last lines of a log file, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 600 {
		s = "..." + s[len(s)-600:]
	}
	if s == "" {
		return "(empty log " + path + ")"
	}
	return s
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
