package pflog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// ReaderConfig tunes a Reader. The zero value is ready to use.
type ReaderConfig struct {
	// QueueLen bounds the packets waiting for the consumer; more are
	// dropped and counted. 0 means 1024.
	QueueLen int
	// CopyRange is how many bytes of each packet the kernel copies; 0 means
	// 0xffff (whole packets).
	CopyRange uint16
	// QThreshold is how many packets the kernel batches into one netlink
	// datagram before sending; 0 means 16. FlushTimeout is how long it
	// holds a partial batch; 0 means 10ms (the kernel counts in 10ms
	// steps). The kernel's own defaults (a larger batch, one second) would
	// make every quiet-time packet a second late.
	QThreshold   uint32
	FlushTimeout time.Duration
	// ReadBuffer is the socket receive buffer in bytes; 0 means 4 MiB. The
	// kernel drops what does not fit (counted as Overruns).
	ReadBuffer int
	// NetNS, if not 0, is a file descriptor of the network namespace to
	// listen in; 0 means the calling thread's.
	NetNS int
}

// ReaderStats counts what a Reader saw. All counts only grow.
type ReaderStats struct {
	Received   uint64 // packets parsed and queued or dropped
	QueueDrops uint64 // packets dropped because the queue was full
	Overruns   uint64 // times the kernel reported lost messages (ENOBUFS)
	Malformed  uint64 // messages that did not parse
}

// Reader receives the packets of one NFLOG group. Its goroutine, started by
// Listen and stopped by Close, owns the socket's read side.
type Reader struct {
	conn  *netlink.Conn
	group uint16
	c     chan Packet
	stop  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once

	received, queueDrops, overruns, malformed atomic.Uint64

	// err holds the error that ended the receive loop.
	err atomic.Pointer[error]
}

// Listen binds NFLOG group and starts receiving its packets with the copy
// mode "packet". Only one socket can bind a group: a group bound elsewhere
// (another pfcarp, ulogd) is an error saying so.
func Listen(group uint16, cfg ReaderConfig) (*Reader, error) {
	qlen := cfg.QueueLen
	if qlen <= 0 {
		qlen = 1024
	}
	copyRange := uint32(cfg.CopyRange)
	if copyRange == 0 {
		copyRange = 0xffff
	}
	qthresh := cfg.QThreshold
	if qthresh == 0 {
		qthresh = 16
	}
	timeout := cfg.FlushTimeout
	if timeout <= 0 {
		timeout = 10 * time.Millisecond
	}
	rbuf := cfg.ReadBuffer
	if rbuf <= 0 {
		rbuf = 4 << 20
	}
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: cfg.NetNS})
	if err != nil {
		return nil, fmt.Errorf("nflog: opening netfilter netlink socket: %w", err)
	}
	if err := conn.SetReadBuffer(rbuf); err != nil {
		conn.Close()
		return nil, fmt.Errorf("nflog: setting receive buffer: %w", err)
	}
	bind := netlink.AttributeEncoder{ByteOrder: binary.BigEndian}
	bind.Bytes(nfulaCfgCmd, []byte{nfulnlCfgCmdBind})
	if err := configure(conn, group, &bind); err != nil {
		conn.Close()
		if errors.Is(err, unix.EPERM) {
			// The kernel answers EPERM both to a group bound by another
			// socket and to a process without CAP_NET_ADMIN.
			return nil, fmt.Errorf("nflog: binding group %d: permission denied: the group is already bound by another socket (another pfcarp or ulogd?) or the process lacks CAP_NET_ADMIN: %w", group, err)
		}
		return nil, fmt.Errorf("nflog: binding group %d: %w", group, err)
	}
	mode := netlink.AttributeEncoder{ByteOrder: binary.BigEndian}
	// struct nfulnl_msg_config_mode { __be32 copy_range; __u8 copy_mode; __u8 _pad; } (packed)
	m := make([]byte, 6)
	binary.BigEndian.PutUint32(m, copyRange)
	m[4] = nfulnlCopyPacket
	mode.Bytes(nfulaCfgMode, m)
	mode.Uint32(nfulaCfgQThresh, qthresh)
	mode.Uint32(nfulaCfgTimeout, uint32(max((timeout+5*time.Millisecond)/(10*time.Millisecond), 1)))
	if err := configure(conn, group, &mode); err != nil {
		conn.Close()
		return nil, fmt.Errorf("nflog: setting copy mode of group %d: %w", group, err)
	}
	r := &Reader{conn: conn, group: group, c: make(chan Packet, qlen), stop: make(chan struct{})}
	r.wg.Add(1)
	go r.loop()
	return r, nil
}

// configure sends one NFULNL_MSG_CONFIG message for group and waits for the
// kernel's acknowledgement.
func configure(conn *netlink.Conn, group uint16, ae *netlink.AttributeEncoder) error {
	attrs, err := ae.Encode()
	if err != nil {
		return err
	}
	data := make([]byte, nfgenmsgLen, nfgenmsgLen+len(attrs))
	data[0] = unix.AF_UNSPEC
	data[1] = 0 // NFNETLINK_V0
	binary.BigEndian.PutUint16(data[2:], group)
	_, err = conn.Execute(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(nfulnlConfigType),
			Flags: netlink.Request | netlink.Acknowledge,
		},
		Data: append(data, attrs...),
	})
	return err
}

func (r *Reader) loop() {
	defer r.wg.Done()
	defer close(r.c)
	for {
		msgs, err := r.conn.Receive()
		if err != nil {
			select {
			case <-r.stop:
				return
			default:
			}
			if errors.Is(err, unix.ENOBUFS) {
				r.overruns.Add(1)
				continue
			}
			err = fmt.Errorf("nflog: receiving from group %d: %w", r.group, err)
			r.err.Store(&err)
			return
		}
		for _, m := range msgs {
			if m.Header.Type != nfulnlPacketType {
				continue
			}
			p, err := ParsePacketMessage(m.Data)
			if err != nil {
				r.malformed.Add(1)
				continue
			}
			r.received.Add(1)
			select {
			case r.c <- p:
			default:
				r.queueDrops.Add(1)
			}
		}
	}
}

// Packets returns the queue of received packets. It is closed after Close,
// or when receiving failed (see Err).
func (r *Reader) Packets() <-chan Packet { return r.c }

// Err returns the error that ended receiving: nil while receiving and after
// Close.
func (r *Reader) Err() error {
	if p := r.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Stats returns the counters so far; safe to call at any time.
func (r *Reader) Stats() ReaderStats {
	return ReaderStats{
		Received:   r.received.Load(),
		QueueDrops: r.queueDrops.Load(),
		Overruns:   r.overruns.Load(),
		Malformed:  r.malformed.Load(),
	}
}

// Close stops receiving, closes the socket (the kernel unbinds the group
// with it) and waits for the goroutine. Packets still queued stay readable
// until the channel is drained. Close is idempotent.
func (r *Reader) Close() error {
	var err error
	r.once.Do(func() {
		close(r.stop)
		err = r.conn.Close()
		r.wg.Wait()
	})
	return err
}
