package pfsync

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// batchConn is a NETLINK_NETFILTER socket that sends several requests in
// one sendmsg and reads their acks (each request asks for one) together.
// The kernel handles the requests of one write in order. Not safe for
// concurrent use (Conntrack serialises it).
type batchConn struct {
	fd   int
	seq  uint32
	wbuf []byte
	rbuf []byte
}

func dialBatch() (*batchConn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("netfilter socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netfilter socket: bind: %w", err)
	}
	// Acks without a copy of the request; the reply buffer stays small.
	if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netfilter socket: NETLINK_CAP_ACK (Linux 4.3): %w", err)
	}
	// The kernel acks at once; a missing ack must not block the Engine
	// for ever (the caller then retries the requests one by one).
	tv := unix.NsecToTimeval(int64(5 * time.Second))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netfilter socket: SO_RCVTIMEO: %w", err)
	}
	return &batchConn{fd: fd, rbuf: make([]byte, 64<<10)}, nil
}

func (b *batchConn) close() error { return unix.Close(b.fd) }

// batchMax bounds the requests of one write, so that their acks (36 bytes
// each without the request) never overrun the socket's receive buffer.
const batchMax = 256

// execute sends msgs (a zero Message is skipped, its code left 0) with
// NLM_F_ACK and returns each one's errno (0: done). An error means the
// socket failed and the codes are not known.
func (b *batchConn) execute(msgs []netlink.Message) ([]unix.Errno, error) {
	codes := make([]unix.Errno, len(msgs))
	for lo := 0; lo < len(msgs); lo += batchMax {
		hi := min(lo+batchMax, len(msgs))
		if err := b.executeChunk(msgs[lo:hi], codes[lo:hi]); err != nil {
			return nil, err
		}
	}
	return codes, nil
}

func (b *batchConn) executeChunk(msgs []netlink.Message, codes []unix.Errno) error {
	b.wbuf = b.wbuf[:0]
	want := 0
	idx := make(map[uint32]int, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		if m.Header.Type == 0 {
			continue
		}
		b.seq++
		if b.seq == 0 {
			b.seq = 1
		}
		idx[b.seq] = i
		n := unix.NLMSG_HDRLEN + len(m.Data)
		b.wbuf = binary.NativeEndian.AppendUint32(b.wbuf, uint32(n))
		b.wbuf = binary.NativeEndian.AppendUint16(b.wbuf, uint16(m.Header.Type))
		b.wbuf = binary.NativeEndian.AppendUint16(b.wbuf, uint16(m.Header.Flags|netlink.Acknowledge))
		b.wbuf = binary.NativeEndian.AppendUint32(b.wbuf, b.seq)
		b.wbuf = binary.NativeEndian.AppendUint32(b.wbuf, 0)
		b.wbuf = append(b.wbuf, m.Data...)
		for len(b.wbuf)%unix.NLMSG_ALIGNTO != 0 {
			b.wbuf = append(b.wbuf, 0)
		}
		want++
	}
	if want == 0 {
		return nil
	}
	if err := unix.Sendto(b.fd, b.wbuf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netfilter batch: send: %w", err)
	}
	for want > 0 {
		n, _, err := unix.Recvfrom(b.fd, b.rbuf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("netfilter batch: receive: %w", err)
		}
		for buf := b.rbuf[:n]; len(buf) >= unix.NLMSG_HDRLEN; {
			l := int(binary.NativeEndian.Uint32(buf))
			typ := binary.NativeEndian.Uint16(buf[4:])
			seq := binary.NativeEndian.Uint32(buf[8:])
			if l < unix.NLMSG_HDRLEN || l > len(buf) {
				return errors.New("netfilter batch: malformed reply")
			}
			data := buf[unix.NLMSG_HDRLEN:l]
			buf = buf[min(len(buf), (l+unix.NLMSG_ALIGNTO-1)&^(unix.NLMSG_ALIGNTO-1)):]
			i, ok := idx[seq]
			if !ok || typ != unix.NLMSG_ERROR {
				continue // a stale reply of an earlier, failed batch
			}
			if len(data) < 4 {
				return errors.New("netfilter batch: short ack")
			}
			if e := int32(binary.NativeEndian.Uint32(data)); e < 0 {
				codes[i] = unix.Errno(-e)
			}
			delete(idx, seq)
			want--
		}
	}
	return nil
}
