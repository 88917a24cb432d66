package bfd

import (
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// setTTL255 sets the TTL (IPv4) or hop limit (IPv6) of the socket to 255,
// as single-hop BFD requires (RFC 5881 5).
func setTTL255(network, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if strings.HasSuffix(network, "6") {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, 255)
			return
		}
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL, 255)
	})
	if err != nil {
		return err
	}
	return serr
}
