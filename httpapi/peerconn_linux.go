package httpapi

import (
	"net"
	"syscall"
)

// alive reports whether a kept connection is still open and quiet: a
// non-blocking peek at its socket finds nothing to read. The peer having
// closed it (end of file), a TLS alert waiting, or an error all mean the
// connection is not reused.
func alive(c *peerConn) bool {
	if c.br.Buffered() > 0 {
		return false
	}
	tcp, ok := c.tc.NetConn().(*net.TCPConn)
	if !ok {
		return false
	}
	rc, err := tcp.SyscallConn()
	if err != nil {
		return false
	}
	quiet := false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		quiet = rerr == syscall.EAGAIN
		return true
	})
	return err == nil && quiet
}
