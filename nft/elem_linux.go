package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Element reads on a raw nfnetlink socket, for sets too large for the
// library's reader:
//
//   - getElems asks for single elements (NFT_MSG_GETSETELEM without
//     NLM_F_DUMP). For an interval set the kernel answers with the element
//     that starts the interval holding the key (the nearest element at or
//     below it, when that is a start), or with the end element after the
//     key when NFT_SET_ELEM_INTERVAL_END is asked for: O(log n) each.
//   - dumpElems dumps a set reading with a large buffer. The kernel sizes
//     each dump chunk by the largest buffer the socket has been read with,
//     capped at 32 KiB; the library reads with a page, so its chunks hold
//     ~190 elements (20 bytes each) and ours ~1,600. The rbtree behind an
//     interval set restarts its walk from the first element for every
//     chunk, so a dump stays quadratic in the set size: larger chunks
//     divide that cost by about eight (BenchmarkTableDump); nothing in
//     user space does better short of not dumping.

const (
	nfprotoInet = 1 // NFPROTO_INET
	// rawBufSize is the receive buffer for reads: the kernel records it
	// as the socket's largest read and sizes dump chunks by it (up to its
	// own 32 KiB cap).
	rawBufSize = 1 << 20
	// getWindow bounds the get requests in flight: each reply takes a
	// page-sized buffer in the socket until read.
	getWindow = 128
	// readTimeout bounds the wait for each reply.
	readTimeout = 30 * time.Second
)

var (
	typeGetSetElem = netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETSETELEM)
	typeNewSetElem = netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWSETELEM)
	typeGetGen     = netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | 16) // NFT_MSG_GETGEN
)

// rawConn is one netlink socket with a large read buffer. Not safe for
// concurrent use.
type rawConn struct {
	nl  *netlink.Conn
	buf []byte
}

func (c *Conn) dialRaw() (*rawConn, error) {
	cfg := &netlink.Config{}
	if c.netnsFD >= 0 {
		cfg.NetNS = c.netnsFD
	}
	nl, err := netlink.Dial(unix.NETLINK_NETFILTER, cfg)
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	if err := sizeSocket(nl, rawBufSize); err != nil {
		nl.Close()
		return nil, err
	}
	return &rawConn{nl: nl, buf: make([]byte, rawBufSize)}, nil
}

func (r *rawConn) Close() error { return r.nl.Close() }

// read receives one datagram and calls fn for each message in it. It
// fails on a truncated datagram or malformed headers.
func (r *rawConn) read(fn func(h netlink.Header, data []byte) error) error {
	rc, err := r.nl.SyscallConn()
	if err != nil {
		return err
	}
	var n, rflags int
	var rerr error
	// Without the deadline a lost answer would block the read for good.
	if err := r.nl.SetReadDeadline(time.Now().Add(readTimeout)); err != nil {
		return fmt.Errorf("netlink: read deadline: %w", err)
	}
	if err := rc.Read(func(fd uintptr) bool {
		n, _, rflags, _, rerr = unix.Recvmsg(int(fd), r.buf, nil, 0)
		return rerr != unix.EAGAIN && rerr != unix.EINTR
	}); err != nil {
		return err
	}
	if rerr != nil {
		return fmt.Errorf("nftables: receiving: %w", rerr)
	}
	if rflags&unix.MSG_TRUNC != 0 {
		return errors.New("nftables: a netlink reply did not fit the receive buffer")
	}
	b := r.buf[:n]
	for len(b) >= unix.SizeofNlMsghdr {
		l := int(binary.NativeEndian.Uint32(b))
		if l < unix.SizeofNlMsghdr || l > len(b) {
			return fmt.Errorf("nftables: malformed netlink message (length %d of %d)", l, len(b))
		}
		h := netlink.Header{
			Length:   uint32(l),
			Type:     netlink.HeaderType(binary.NativeEndian.Uint16(b[4:])),
			Flags:    netlink.HeaderFlags(binary.NativeEndian.Uint16(b[6:])),
			Sequence: binary.NativeEndian.Uint32(b[8:]),
			PID:      binary.NativeEndian.Uint32(b[12:]),
		}
		if err := fn(h, b[unix.SizeofNlMsghdr:l]); err != nil {
			return err
		}
		b = b[min(nlAlign(l), len(b)):]
	}
	return nil
}

func nlAlign(n int) int { return (n + 3) &^ 3 }

// errnoOf returns the error an NLMSG_ERROR or NLMSG_DONE payload carries
// (nil for 0).
func errnoOf(data []byte) error {
	if len(data) < 4 {
		return errors.New("nftables: short netlink error message")
	}
	if e := int32(binary.NativeEndian.Uint32(data)); e < 0 {
		return unix.Errno(-e)
	}
	return nil
}

// appendAttr appends a netlink attribute.
func appendAttr(b []byte, typ uint16, data []byte) []byte {
	l := 4 + len(data)
	b = binary.NativeEndian.AppendUint16(b, uint16(l))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for i := l; i%4 != 0; i++ {
		b = append(b, 0)
	}
	return b
}

// appendNested appends a nested attribute whose body fill appends.
func appendNested(b []byte, typ uint16, fill func([]byte) []byte) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	b = fill(b)
	binary.NativeEndian.PutUint16(b[start:], uint16(len(b)-start))
	binary.NativeEndian.PutUint16(b[start+2:], typ|unix.NLA_F_NESTED)
	return b
}

// eachAttr calls fn for each attribute in b (type without flag bits).
func eachAttr(b []byte, fn func(typ uint16, data []byte)) error {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b))
		if l < 4 || l > len(b) {
			return fmt.Errorf("nftables: malformed netlink attribute (length %d of %d)", l, len(b))
		}
		fn(binary.NativeEndian.Uint16(b[2:])&^(unix.NLA_F_NESTED|unix.NLA_F_NET_BYTEORDER), b[4:l])
		b = b[min(nlAlign(l), len(b)):]
	}
	return nil
}

// setElemHeader returns the nfgenmsg header and the table and set
// attributes of an element request.
func (c *Conn) setElemHeader(set string) []byte {
	b := []byte{nfprotoInet, unix.NFNETLINK_V0, 0, 0}
	b = appendAttr(b, unix.NFTA_SET_ELEM_LIST_TABLE, append([]byte(c.table), 0))
	return appendAttr(b, unix.NFTA_SET_ELEM_LIST_SET, append([]byte(set), 0))
}

// elem is a set element as read: its key and whether it ends an interval.
type elem struct {
	key []byte
	end bool
}

// decodeElems calls fn for each element of a NEWSETELEM message. The key
// aliases data.
func decodeElems(data []byte, fn func(elem)) error {
	if len(data) < 4 {
		return errors.New("nftables: short set element message")
	}
	var inner error
	err := eachAttr(data[4:], func(typ uint16, list []byte) {
		if typ != unix.NFTA_SET_ELEM_LIST_ELEMENTS || inner != nil {
			return
		}
		inner = eachAttr(list, func(_ uint16, el []byte) {
			var e elem
			if err := eachAttr(el, func(typ uint16, v []byte) {
				switch typ {
				case unix.NFTA_SET_ELEM_KEY:
					_ = eachAttr(v, func(typ uint16, k []byte) {
						if typ == unix.NFTA_DATA_VALUE {
							e.key = k
						}
					})
				case unix.NFTA_SET_ELEM_FLAGS:
					if len(v) >= 4 {
						e.end = binary.BigEndian.Uint32(v)&unix.NFT_SET_ELEM_INTERVAL_END != 0
					}
				}
			}); err != nil && inner == nil {
				inner = err
			}
			if e.key != nil {
				fn(e)
			}
		})
	})
	if err != nil {
		return err
	}
	return inner
}

// getElems asks the kernel, for each key, for the element of set that
// answers it (see the comment at the top of this file; end selects the
// interval-end query). An answer with a nil key means the kernel has none
// (ENOENT); answered[i] is false when the kernel did not answer at all,
// which this kernel does for the interval-end query in an interval that
// runs to the family's last address. Requests are pipelined, getWindow at
// a time, each window followed by a request that is always answered (the
// generation): the kernel handles a socket's requests in order, so its
// reply closes the window.
func (c *Conn) getElems(set string, keys [][]byte, end bool) (out []elem, answered []bool, err error) {
	rc, err := c.dialRaw()
	if err != nil {
		return nil, nil, err
	}
	defer rc.Close()
	out = make([]elem, len(keys))
	answered = make([]bool, len(keys))
	head := c.setElemHeader(set)
	for base := 0; base < len(keys); base += getWindow {
		win := keys[base:min(base+getWindow, len(keys))]
		msgs := make([]netlink.Message, len(win), len(win)+1)
		for i, k := range win {
			data := appendNested(append([]byte(nil), head...), unix.NFTA_SET_ELEM_LIST_ELEMENTS, func(b []byte) []byte {
				return appendNested(b, unix.NFTA_LIST_ELEM, func(b []byte) []byte {
					b = appendNested(b, unix.NFTA_SET_ELEM_KEY, func(b []byte) []byte {
						return appendAttr(b, unix.NFTA_DATA_VALUE, k)
					})
					if end {
						b = appendAttr(b, unix.NFTA_SET_ELEM_FLAGS, binary.BigEndian.AppendUint32(nil, unix.NFT_SET_ELEM_INTERVAL_END))
					}
					return b
				})
			})
			msgs[i] = netlink.Message{Header: netlink.Header{Type: typeGetSetElem, Flags: netlink.Request}, Data: data}
		}
		msgs = append(msgs, netlink.Message{
			Header: netlink.Header{Type: typeGetGen, Flags: netlink.Request},
			Data:   []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0},
		})
		sent, err := rc.nl.SendMessages(msgs)
		if err != nil {
			return nil, nil, fmt.Errorf("nftables: asking set %s for elements: %w", set, err)
		}
		barrier := sent[len(sent)-1].Header.Sequence
		bySeq := make(map[uint32]int, len(sent))
		for i, m := range sent[:len(sent)-1] {
			bySeq[m.Header.Sequence] = base + i
		}
		for closed := false; !closed; {
			if err := rc.read(func(h netlink.Header, data []byte) error {
				if h.Sequence == barrier {
					closed = true
					if h.Type == netlink.Error {
						return fmt.Errorf("nftables: reading the ruleset generation: %w", errnoOf(data))
					}
					return nil
				}
				i, ok := bySeq[h.Sequence]
				if !ok {
					return nil
				}
				delete(bySeq, h.Sequence)
				answered[i] = true
				switch h.Type {
				case netlink.Error:
					err := errnoOf(data)
					if err == nil || errors.Is(err, unix.ENOENT) {
						return nil
					}
					return fmt.Errorf("nftables: asking set %s for an element: %w", set, err)
				case typeNewSetElem:
					return decodeElems(data, func(e elem) {
						out[i] = elem{key: append([]byte(nil), e.key...), end: e.end}
					})
				}
				return fmt.Errorf("nftables: unexpected reply type %#x from set %s", h.Type, set)
			}); err != nil {
				return nil, nil, err
			}
		}
	}
	return out, answered, nil
}

// errDumpInterrupted says the set changed while it was dumped.
var errDumpInterrupted = errors.New("the set changed while it was read")

// errTooLarge says a dump was stopped at its limit.
var errTooLarge = errors.New("the set is larger than the limit")

// dumpElems calls fn with every element of set (keys alias a buffer that
// is reused: copy what you keep). A dump interrupted by a change of the
// ruleset is retried a few times, calling restart before each retry. With
// limit > 0 the dump stops with errTooLarge after limit elements.
func (c *Conn) dumpElems(set string, limit int, restart func(), fn func(elem)) error {
	var err error
	for try := 0; try < 3; try++ {
		if try > 0 {
			restart()
		}
		if err = c.dumpOnce(set, limit, fn); err == nil || !errors.Is(err, errDumpInterrupted) {
			break
		}
	}
	if err != nil && err != errTooLarge {
		return fmt.Errorf("nftables: reading set %s: %w", set, err)
	}
	return err
}

func (c *Conn) dumpOnce(set string, limit int, fn func(elem)) error {
	n := 0
	rc, err := c.dialRaw()
	if err != nil {
		return err
	}
	defer rc.Close()
	m := netlink.Message{
		Header: netlink.Header{Type: typeGetSetElem, Flags: netlink.Request | netlink.Dump},
		Data:   c.setElemHeader(set),
	}
	sent, err := rc.nl.Send(m)
	if err != nil {
		return err
	}
	for done := false; !done; {
		if err := rc.read(func(h netlink.Header, data []byte) error {
			if h.Sequence != sent.Header.Sequence {
				return nil
			}
			if h.Flags&netlink.DumpInterrupted != 0 {
				return errDumpInterrupted
			}
			switch h.Type {
			case netlink.Done:
				done = true
				return errnoOf(data)
			case netlink.Error:
				done = true
				return errnoOf(data)
			case typeNewSetElem:
				if err := decodeElems(data, func(e elem) { n++; fn(e) }); err != nil {
					return err
				}
				if limit > 0 && n > limit {
					return errTooLarge
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}
