package nft

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// errCaptured stops the library's Flush once it has handed over its batch:
// the library gives up at once on ENOBUFS (any other error it collects per
// message, joining them: quadratic in the batch size).
var errCaptured = unix.ENOBUFS

// batch builds one transaction with the library's encoders and sends it
// with send: the library cannot set table flags (it always sends 0, which
// would re-enable a disabled ruleset on every load), and it sizes neither
// socket buffer for large transactions.
type batch struct {
	*nftables.Conn
	msgs []netlink.Message
	// exclElems makes adding an element that exists already an error
	// (NLM_F_EXCL on NEWSETELEM).
	exclElems bool
	// genID, when not 0, makes the kernel refuse the batch with ERESTART
	// unless the ruleset generation is still genID (anchor_linux.go).
	genID uint32
}

func newBatch() (*batch, error) {
	b := &batch{}
	nc, err := nftables.New(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		b.msgs = append(b.msgs, req...)
		return nil, errCaptured
	}))
	if err != nil {
		return nil, err
	}
	b.Conn = nc
	return b, nil
}

// encode returns the batch's messages (batch begin and end included), or
// the library's first encoding error.
func (b *batch) encode() ([]netlink.Message, error) {
	b.msgs = nil
	if err := b.Flush(); err != nil && !errors.Is(err, errCaptured) {
		return nil, err
	}
	return b.msgs, nil
}

// setLastTableFlags sets the flags attribute of the last NEWTABLE message.
func setLastTableFlags(msgs []netlink.Message, flags uint32) error {
	for i := len(msgs) - 1; i >= 0; i-- {
		if isNewTable(msgs[i]) {
			return rewriteTableFlags(&msgs[i], func(uint32) uint32 { return flags })
		}
	}
	return errors.New("nft: no table in batch")
}

func isNewTable(m netlink.Message) bool {
	return m.Header.Type == netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWTABLE) && len(m.Data) >= 4
}

// rewriteTableFlags replaces the flags attribute of the NEWTABLE message m
// by f(flags).
func rewriteTableFlags(m *netlink.Message, f func(uint32) uint32) error {
	attrs, err := netlink.UnmarshalAttributes(m.Data[4:])
	if err != nil {
		return err
	}
	for j := range attrs {
		if attrs[j].Type == unix.NFTA_TABLE_FLAGS && len(attrs[j].Data) == 4 {
			attrs[j].Data = binary.BigEndian.AppendUint32(nil, f(binary.BigEndian.Uint32(attrs[j].Data)))
		}
	}
	data, err := netlink.MarshalAttributes(attrs)
	if err != nil {
		return err
	}
	m.Data = append(m.Data[:4:4], data...)
	return nil
}

// send commits b in one sendmsg and waits for every acknowledgement. The
// first error the kernel reports is returned (unwrapped to the errno and
// the kernel's extended message).
func (c *Conn) send(b *batch, tableFlags *uint32) error {
	msgs, err := b.encode()
	if err != nil {
		return err
	}
	if len(msgs) == 0 {
		return nil
	}
	if tableFlags != nil {
		if err := setLastTableFlags(msgs, *tableFlags); err != nil {
			return err
		}
	}
	if b.genID != 0 {
		setBatchGenID(msgs, b.genID)
	}
	cfg := &netlink.Config{}
	if c.netnsFD >= 0 {
		cfg.NetNS = c.netnsFD
	}
	nl, err := netlink.Dial(unix.NETLINK_NETFILTER, cfg)
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	defer nl.Close()
	return transact(nl, msgs, b.exclElems)
}

// transact sends msgs (a whole batch) on nl in one sendmsg and waits for
// the kernel's answer. Only one acknowledgement is asked for, on the last
// message before the batch end: the kernel reports every failing message
// anyway, in order, before that ack, and tens of thousands of acks would
// overflow any receive buffer. exclElems sets NLM_F_EXCL on every
// NEWSETELEM (adding an element that exists is then an error).
func transact(nl *netlink.Conn, msgs []netlink.Message, exclElems bool) error {
	size := 0
	newElem := netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWSETELEM)
	for i := range msgs {
		size += 16 + len(msgs[i].Data)
		msgs[i].Header.Flags &^= netlink.Acknowledge
		if exclElems && msgs[i].Header.Type == newElem {
			msgs[i].Header.Flags |= netlink.Excl
		}
	}
	acks := 1
	if len(msgs) >= 3 {
		msgs[len(msgs)-2].Header.Flags |= netlink.Acknowledge
	} else {
		msgs[len(msgs)-1].Header.Flags |= netlink.Acknowledge
	}
	if err := sizeSocket(nl, size+64*acks); err != nil {
		return err
	}
	if _, err := nl.SendMessages(msgs); err != nil {
		return fmt.Errorf("nftables: sending a %d-byte transaction: %w", size, err)
	}
	for got := 0; got < acks; {
		replies, err := nl.Receive()
		if err != nil {
			return unwrapKernel(err)
		}
		got += len(replies)
	}
	return nil
}

// sizeSocket makes both buffers of nl hold at least n bytes (root may
// exceed the sysctl limits).
func sizeSocket(nl *netlink.Conn, n int) error {
	_ = nl.SetOption(netlink.CapAcknowledge, true)
	_ = nl.SetOption(netlink.ExtendedAcknowledge, true)
	buf := max(n+n/4, 1<<20)
	rc, err := nl.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, buf)
		if serr == nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, buf)
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("nftables: sizing the netlink socket for a %d-byte transaction: %w", n, serr)
	}
	return nil
}
