//go:build !linux

package httpapi

// alive reports whether a kept connection may be reused. Without the
// non-blocking peek of Linux, a connection the peer closed is found out
// only by the next request on it (sent again on a new connection if its
// write fails).
func alive(c *peerConn) bool { return c.br.Buffered() == 0 }
