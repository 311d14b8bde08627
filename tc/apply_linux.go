package tc

import (
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Apply installs p in the network namespace of the calling thread: each
// interface of p gets pfcarp's tree as its root qdisc (changed in place
// when the root already is pfcarp's of the same kind, else replacing the
// kernel's default root qdisc), and interfaces whose root qdisc is
// pfcarp's and that p does not name get their default back. An interface
// whose root qdisc pfcarp did not create is an error, and nothing of it is
// changed. Apply(nil) removes every qdisc of pfcarp.
func Apply(p *Plan) error {
	want := map[string]*Iface{}
	if p != nil {
		for _, ifc := range p.Ifaces {
			want[ifc.Name] = ifc
		}
	}
	links, err := netlink.LinkList()
	if err != nil {
		return fmt.Errorf("queues: listing interfaces: %w", err)
	}
	byName := map[string]netlink.Link{}
	for _, l := range links {
		byName[l.Attrs().Name] = l
	}
	var names []string
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	var errs []error
	for _, n := range names {
		l := byName[n]
		if l == nil {
			errs = append(errs, fmt.Errorf("queues on %s: no such interface", n))
			continue
		}
		if err := applyIface(l, want[n]); err != nil {
			errs = append(errs, fmt.Errorf("queues on %s: %w", n, err))
		}
	}
	for _, l := range links {
		if want[l.Attrs().Name] != nil {
			continue
		}
		if root, _ := rootQdisc(l); root != nil && ours(root) {
			if err := netlink.QdiscDel(root); err != nil {
				errs = append(errs, fmt.Errorf("queues: removing pfcarp's qdisc of %s: %w", l.Attrs().Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Remove removes every qdisc pfcarp created (pfctl -F all, cleanup).
func Remove() error { return Apply(nil) }

func ours(q netlink.Qdisc) bool { return q.Attrs().Handle>>16 == uint32(Major) }

func rootQdisc(l netlink.Link) (netlink.Qdisc, error) {
	qs, err := netlink.QdiscList(l)
	if err != nil {
		return nil, err
	}
	for _, q := range qs {
		if q.Attrs().Parent == netlink.HANDLE_ROOT {
			return q, nil
		}
	}
	return nil, nil
}

func applyIface(l netlink.Link, ifc *Iface) error {
	root, err := rootQdisc(l)
	if err != nil {
		return err
	}
	if root != nil && !ours(root) && root.Attrs().Handle != 0 {
		return fmt.Errorf("the root qdisc %s %s was not created by pfcarp; remove it (tc qdisc del dev %s root) to use pf queues here",
			root.Type(), netlink.HandleStr(root.Attrs().Handle), l.Attrs().Name)
	}
	q := rootFor(l.Attrs().Index, ifc)
	inPlace := root != nil && ours(root) && sameRoot(root, q)
	switch {
	case inPlace: // the classes change in place, traffic keeps flowing
	case root != nil && ours(root):
		// HTB cannot change its default class: a new tree (packets
		// sent meanwhile go out unshaped, through the kernel's default)
		if err := netlink.QdiscDel(root); err != nil {
			return fmt.Errorf("removing the old root qdisc: %w", err)
		}
		fallthrough
	default:
		if err := netlink.QdiscReplace(q); err != nil {
			return fmt.Errorf("%s root qdisc: %w", ifc.Kind, err)
		}
	}
	if ifc.Kind == FqCodel {
		return nil
	}
	keep := map[uint32]bool{}
	for _, c := range ifc.Classes {
		keep[Handle(c.Minor)] = true
		if err := netlink.ClassReplace(classFor(l.Attrs().Index, ifc.Kind, c)); err != nil {
			return fmt.Errorf("class %s (%s): %w", netlink.HandleStr(Handle(c.Minor)), c.Name, err)
		}
	}
	if inPlace {
		if err := removeStale(l, keep); err != nil {
			return err
		}
	}
	for _, c := range ifc.Classes {
		if c.Leaf == nil {
			continue
		}
		if err := replaceLeaf(l.Attrs().Index, c); err != nil {
			return fmt.Errorf("queue %s: %w", c.Name, err)
		}
	}
	return nil
}

// sameRoot reports whether the root qdisc have can stay for want: same
// kind and options (HTB cannot change them in place).
func sameRoot(have, want netlink.Qdisc) bool {
	switch w := want.(type) {
	case *netlink.Htb:
		h, ok := have.(*netlink.Htb)
		return ok && h.Defcls == w.Defcls
	case *netlink.Hfsc:
		h, ok := have.(*netlink.Hfsc)
		return ok && h.Defcls == w.Defcls
	case *netlink.FqCodel:
		h, ok := have.(*netlink.FqCodel)
		return ok && h.Flows == w.Flows && (w.Limit == 0 || h.Limit == w.Limit) && (w.Quantum == 0 || h.Quantum == w.Quantum)
	}
	return false
}

func rootFor(index int, ifc *Iface) netlink.Qdisc {
	attrs := netlink.QdiscAttrs{LinkIndex: index, Handle: Handle(0), Parent: netlink.HANDLE_ROOT}
	switch ifc.Kind {
	case HFSC:
		q := netlink.NewHfsc(attrs)
		q.Defcls = ifc.Default
		return q
	case FqCodel:
		q := netlink.NewFqCodel(attrs)
		q.Limit, q.Flows, q.Quantum = ifc.Leaf.Limit, ifc.Leaf.Flows, ifc.Leaf.Quantum
		return q
	}
	q := netlink.NewHtb(attrs)
	q.Defcls = uint32(ifc.Default)
	return q
}

func classFor(index int, kind string, c *Class) netlink.Class {
	parent := Handle(0)
	if c.Parent != 0 {
		parent = Handle(c.Parent)
	}
	attrs := netlink.ClassAttrs{LinkIndex: index, Handle: Handle(c.Minor), Parent: parent}
	if kind == HFSC {
		h := netlink.NewHfscClass(attrs)
		// the library takes bits per second and passes d on: the
		// kernel's is in microseconds
		h.SetRsc(u32(c.RT.M1), c.RT.D*1000, u32(c.RT.M2))
		h.SetFsc(u32(c.LS.M1), c.LS.D*1000, u32(c.LS.M2))
		h.SetUsc(u32(c.UL.M1), c.UL.D*1000, u32(c.UL.M2))
		return h
	}
	return netlink.NewHtbClass(attrs, netlink.HtbClassAttrs{Rate: c.Rate, Ceil: c.Ceil, Buffer: c.Burst, Cbuffer: c.Cburst, Prio: c.Prio, Quantum: c.Quantum})
}

func u32(v uint64) uint32 { return uint32(min(v, 0xffffffff)) }

// removeStale deletes pfcarp's classes that keep does not hold, children
// before their parents.
func removeStale(l netlink.Link, keep map[uint32]bool) error {
	cs, err := netlink.ClassList(l, 0)
	if err != nil {
		return err
	}
	for len(cs) > 0 {
		parents := map[uint32]bool{}
		for _, c := range cs {
			parents[c.Attrs().Parent] = true
		}
		deleted := 0
		for _, c := range cs {
			if keep[c.Attrs().Handle] || c.Attrs().Handle>>16 != uint32(Major) || parents[c.Attrs().Handle] {
				continue
			}
			if err := netlink.ClassDel(c); err != nil {
				return fmt.Errorf("removing class %s: %w", netlink.HandleStr(c.Attrs().Handle), err)
			}
			deleted++
		}
		if deleted == 0 {
			break // what is left is kept, or parents of kept classes
		}
		if cs, err = netlink.ClassList(l, 0); err != nil {
			return err
		}
	}
	return nil
}

// replaceLeaf gives leaf class c its qdisc, changed in place when it has
// one of the same kind.
func replaceLeaf(index int, c *Class) error {
	h := uint32(leafMajor(c.Minor)) << 16
	add := func(flags int) error {
		if c.Leaf.Kind == FqCodel {
			q := netlink.NewFqCodel(netlink.QdiscAttrs{LinkIndex: index, Handle: h, Parent: Handle(c.Minor)})
			q.Limit, q.Flows, q.Quantum = c.Leaf.Limit, c.Leaf.Flows, c.Leaf.Quantum
			if flags&unix.NLM_F_EXCL != 0 {
				return netlink.QdiscAdd(q)
			}
			return netlink.QdiscReplace(q)
		}
		return pfifo(index, h, Handle(c.Minor), c.Leaf.Limit, flags)
	}
	err := add(unix.NLM_F_CREATE | unix.NLM_F_REPLACE)
	if errors.Is(err, unix.EINVAL) {
		// another kind under the same handle: delete it and add anew
		if derr := netlink.QdiscDel(&netlink.GenericQdisc{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: index, Handle: h, Parent: Handle(c.Minor)}}); derr == nil {
			err = add(unix.NLM_F_CREATE | unix.NLM_F_EXCL)
		}
	}
	return err
}

// pfifo creates or replaces a pfifo qdisc with a packet limit (the library
// has no type for it): TCA_OPTIONS is struct tc_fifo_qopt.
func pfifo(index int, handle, parent, limit uint32, flags int) error {
	req := nl.NewNetlinkRequest(unix.RTM_NEWQDISC, flags|unix.NLM_F_ACK)
	req.AddData(&nl.TcMsg{Family: nl.FAMILY_ALL, Ifindex: int32(index), Handle: handle, Parent: parent})
	req.AddData(nl.NewRtAttr(nl.TCA_KIND, nl.ZeroTerminated(Pfifo)))
	opt := make([]byte, 4)
	nl.NativeEndian().PutUint32(opt, limit)
	req.AddData(nl.NewRtAttr(nl.TCA_OPTIONS, opt))
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

var probeOnce = sync.OnceValues(probe)

// Probe returns the qdisc kinds this kernel has: it creates each on the
// loopback interface of a network namespace of its own, which it then
// drops (the host's interfaces are not touched). It probes once per
// process.
func Probe() (Features, error) { return probeOnce() }

func probe() (f Features, err error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("probing qdiscs: %w", err)
	}
	defer orig.Close()
	// netns.New moves the thread into the new namespace: move it back.
	// If that fails the thread stays locked, so the runtime ends it with
	// this goroutine rather than run others in the probe's namespace.
	defer func() {
		if serr := netns.Set(orig); serr != nil {
			err = errors.Join(err, fmt.Errorf("probing qdiscs: returning to the original namespace: %w", serr))
			return
		}
		runtime.UnlockOSThread()
	}()
	ns, err := netns.New()
	if err != nil {
		return nil, fmt.Errorf("probing qdiscs: new network namespace: %w", err)
	}
	defer ns.Close()
	has := map[string]bool{}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return nil, fmt.Errorf("probing qdiscs: %w", err)
	}
	attrs := netlink.QdiscAttrs{LinkIndex: lo.Attrs().Index, Handle: Handle(0), Parent: netlink.HANDLE_ROOT}
	for _, kind := range []string{HTB, HFSC, FqCodel, Pfifo} {
		var err error
		switch kind {
		case HTB:
			err = netlink.QdiscAdd(netlink.NewHtb(attrs))
		case HFSC:
			err = netlink.QdiscAdd(netlink.NewHfsc(attrs))
		case FqCodel:
			err = netlink.QdiscAdd(netlink.NewFqCodel(attrs))
		case Pfifo:
			err = pfifo(attrs.LinkIndex, attrs.Handle, attrs.Parent, 10, unix.NLM_F_CREATE|unix.NLM_F_EXCL)
		}
		has[kind] = err == nil
		if err == nil {
			// The next kind is added at the same place.
			if err := netlink.QdiscDel(&netlink.GenericQdisc{QdiscAttrs: attrs}); err != nil {
				return nil, fmt.Errorf("probing qdiscs: removing the %s qdisc: %w", kind, err)
			}
		} else if !errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("probing the %s qdisc: %w", kind, err)
		}
	}
	return func(kind string) bool { return has[kind] }, nil
}

// Kernel is the Features of the running kernel, probed on first use (a
// ruleset without queues never probes). When the probe itself fails (no
// privilege for a namespace), it reports every kind present, and Apply
// reports what the kernel refuses.
func Kernel(kind string) bool {
	has, err := Probe()
	if err != nil {
		return true
	}
	return has(kind)
}
