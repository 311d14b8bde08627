package compile

import (
	"net"

	"golang.org/x/sys/unix"
)

// tcpMaxSeg returns c's TCP_MAXSEG (-1 on error).
func tcpMaxSeg(c net.Conn) int {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return -1
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return -1
	}
	v := -1
	rc.Control(func(fd uintptr) {
		if n, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_MAXSEG); err == nil {
			v = n
		}
	})
	return v
}
