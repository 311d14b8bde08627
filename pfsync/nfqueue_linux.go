package pfsync

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// NFQueue is one nfnetlink_queue queue of the calling thread's network
// namespace, bound in metadata-only mode with conntrack information: the
// kernel hands it the packets a rule queued (for `defer`: a new
// connection's first packet, queued after NAT so the entry's tuples are
// final, and before the entry is confirmed) together with their still
// unconfirmed conntrack entry, and holds each until Verdict. Receive and
// Verdict may be called concurrently (one goroutine each).
//
// The queue is bound fail-open: when it is full the kernel lets packets
// pass instead of dropping them.
type NFQueue struct {
	c   *netlink.Conn
	num uint16
}

// nfnetlink_queue numbers (linux/netfilter/nfnetlink_queue.h).
const (
	nfqnlMsgPacket  = 0
	nfqnlMsgVerdict = 1

	nfqaPacketHdr  = 1
	nfqaVerdictHdr = 2
	nfqaCT         = 11

	nfqaCfgParams = 2
	nfqaCfgMaxlen = 3
	nfqaCfgMask   = 4
	nfqaCfgFlags  = 5

	nfqnlCopyMeta     = 1
	nfqaCfgFFailOpen  = 1
	nfqaCfgFConntrack = 2

	nfAccept = 1
)

// nfQueueMaxLen is the kernel's queue length (fail-open beyond).
const nfQueueMaxLen = 4096

// ListenNFQueue binds queue num. It fails when another program holds the
// queue, or with an error wrapping ErrDeferUnsupported when the kernel
// lacks FeatureNFQueue or FeatureNFQueueCT.
func ListenNFQueue(num uint16) (*NFQueue, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, fmt.Errorf("nfqueue: netlink: %w", err)
	}
	q := &NFQueue{c: c, num: num}
	be32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	steps := []struct {
		what  string
		attrs []netfilter.Attribute
	}{
		{"bind", []netfilter.Attribute{{Type: nfqaCfgCmd, Data: []byte{nfqnlCfgCmdBind, 0, 0, 0}}}},
		// struct nfqnl_msg_config_params { be32 copy_range; u8 copy_mode; } packed
		{"metadata-only mode", []netfilter.Attribute{{Type: nfqaCfgParams, Data: append(be32(0), nfqnlCopyMeta)}}},
		{"queue length", []netfilter.Attribute{{Type: nfqaCfgMaxlen, Data: be32(nfQueueMaxLen)}}},
		{"conntrack and fail-open", []netfilter.Attribute{
			{Type: nfqaCfgFlags, Data: be32(nfqaCfgFConntrack | nfqaCfgFFailOpen)},
			{Type: nfqaCfgMask, Data: be32(nfqaCfgFConntrack | nfqaCfgFFailOpen)},
		}},
	}
	for _, s := range steps {
		m, err := netfilter.MarshalNetlink(netfilter.Header{
			SubsystemID: nfnlSubsysQueue, MessageType: nfqnlMsgConfig, Family: netfilter.ProtoUnspec,
			ResourceID: num, Flags: netlink.Request | netlink.Acknowledge,
		}, s.attrs)
		if err == nil {
			_, err = c.Execute(m)
		}
		if err != nil {
			c.Close()
			switch {
			case s.what == "bind" && !isErrno(err, unix.EBUSY) && !isErrno(err, unix.EPERM):
				return nil, fmt.Errorf("%w: it needs %s: nfqueue %d: bind: %v", ErrDeferUnsupported, FeatureNFQueue, num, err)
			case isErrno(err, unix.EOPNOTSUPP):
				return nil, fmt.Errorf("%w: it needs %s: nfqueue %d: %s: %v", ErrDeferUnsupported, FeatureNFQueueCT, num, s.what, err)
			}
			return nil, fmt.Errorf("nfqueue %d: %s: %w", num, s.what, err)
		}
	}
	return q, nil
}

// Close unbinds the queue (the kernel lets its held packets go) and
// unblocks Receive.
func (q *NFQueue) Close() error { return q.c.Close() }

// QueuedPacket is a packet the kernel holds for a verdict.
type QueuedPacket struct {
	ID uint32 // the kernel's packet id, for Verdict
	// State is the packet's conntrack entry; valid iff HasState (a packet
	// without an entry, or with one pfsync cannot read, has none).
	State    State
	HasState bool
}

// Receive blocks for the next queued packets.
func (q *NFQueue) Receive() ([]QueuedPacket, error) {
	msgs, err := q.c.Receive()
	if err != nil {
		return nil, err
	}
	out := make([]QueuedPacket, 0, len(msgs))
	for _, m := range msgs {
		p, ok, err := decodeQueued(m)
		if err != nil {
			return out, err
		}
		if ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// decodeQueued decodes an NFQNL_MSG_PACKET; ok is false for other
// messages.
func decodeQueued(m netlink.Message) (p QueuedPacket, ok bool, err error) {
	h, ad, err := netfilter.DecodeNetlink(m)
	if err != nil {
		return p, false, fmt.Errorf("nfqueue: %w", err)
	}
	if h.SubsystemID != nfnlSubsysQueue || h.MessageType != nfqnlMsgPacket {
		return p, false, nil
	}
	var ct []byte
	gotHdr := false
	for ad.Next() {
		switch ad.Type() {
		case nfqaPacketHdr:
			b := ad.Bytes()
			if len(b) < 4 {
				return p, false, errors.New("nfqueue: short packet header")
			}
			p.ID, gotHdr = binary.BigEndian.Uint32(b), true
		case nfqaCT:
			ct = ad.Bytes()
		}
	}
	if err := ad.Err(); err != nil {
		return p, false, fmt.Errorf("nfqueue: %w", err)
	}
	if !gotHdr {
		return p, false, errors.New("nfqueue: packet without a header")
	}
	if ct != nil {
		p.State, p.HasState = decodeCTAttrs(ct, h.Family)
	}
	return p, true, nil
}

// decodeCTAttrs decodes ctnetlink attributes (NFQA_CT's contents: those
// of a conntrack event) into a State.
func decodeCTAttrs(b []byte, fam netfilter.ProtoFamily) (State, bool) {
	data := make([]byte, 4, 4+len(b)) // struct nfgenmsg
	data[0] = byte(fam)
	data = append(data, b...)
	var ev conntrack.Event
	m := netlink.Message{Header: netlink.Header{
		Type:  netlink.HeaderType(netfilter.NFSubsysCTNetlink)<<8 | netlink.HeaderType(ipctnlMsgNew),
		Flags: netlink.Create,
	}, Data: data}
	if err := ev.Unmarshal(m); err != nil || ev.Flow == nil {
		return State{}, false
	}
	return fromFlow(ev.Flow)
}

// Verdict lets packet id pass.
func (q *NFQueue) Verdict(id uint32) error {
	hdr := binary.BigEndian.AppendUint32(nil, nfAccept)
	hdr = binary.BigEndian.AppendUint32(hdr, id)
	m, err := netfilter.MarshalNetlink(netfilter.Header{
		SubsystemID: nfnlSubsysQueue, MessageType: nfqnlMsgVerdict, Family: netfilter.ProtoUnspec,
		ResourceID: q.num, Flags: netlink.Request,
	}, []netfilter.Attribute{{Type: nfqaVerdictHdr, Data: hdr}})
	if err != nil {
		return err
	}
	_, err = q.c.Send(m)
	return err
}

// ServeDefer hands every packet q receives to r.Defer and lets it pass
// when the Runner releases it; a packet without a readable conntrack
// entry passes at once. It returns when q is closed (nil once stop is
// closed) or fails, a verdict included: a packet whose verdict was lost
// stays held in the kernel.
func ServeDefer(r *Runner, q *NFQueue, stop <-chan struct{}) error {
	// The first failed verdict of a released packet (from the Runner's
	// goroutine), reported by the loop.
	failed := make(chan error, 1)
	release := func(id uint32) {
		if err := q.Verdict(id); err != nil {
			select {
			case failed <- fmt.Errorf("pfsync defer: verdict for packet %d: %w", id, err):
			default:
			}
		}
	}
	for {
		ps, err := q.Receive()
		for _, p := range ps {
			id := p.ID
			if !p.HasState {
				if err := q.Verdict(id); err != nil {
					return fmt.Errorf("pfsync defer: verdict for packet %d: %w", id, err)
				}
				continue
			}
			r.Defer(p.State, func(bool) { release(id) })
		}
		select {
		case err := <-failed:
			return err
		default:
		}
		if err != nil {
			select {
			case <-stop:
				return nil
			default:
			}
			return fmt.Errorf("pfsync defer: %w", err)
		}
	}
}
