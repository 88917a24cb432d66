package dataplane

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// pinger sends ICMP (or ICMPv6) echo requests from inside a namespace: its
// raw socket is opened there (inNS) and then used from the test's
// goroutine.
type pinger struct {
	c   *net.IPConn
	id  uint16
	seq uint16
	v6  bool
}

func newPinger(t testing.TB, ns string) *pinger { return openPinger(t, ns, false) }

// newPinger6 returns an ICMPv6 pinger (the kernel fills in the checksum).
func newPinger6(t testing.TB, ns string) *pinger { return openPinger(t, ns, true) }

func openPinger(t testing.TB, ns string, v6 bool) *pinger {
	t.Helper()
	p := &pinger{id: uint16(time.Now().UnixNano()), v6: v6}
	network, laddr := "ip4:icmp", "0.0.0.0"
	if v6 {
		network, laddr = "ip6:ipv6-icmp", "::"
	}
	err := inNS(ns, func() error {
		c, err := net.ListenPacket(network, laddr)
		if err != nil {
			return err
		}
		p.c = c.(*net.IPConn)
		return nil
	})
	if err != nil {
		t.Fatalf("ICMP socket in %s: %v", ns, err)
	}
	t.Cleanup(func() { p.c.Close() })
	return p
}

func icmpChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

func (p *pinger) send(dst *net.IPAddr) (uint16, error) {
	p.seq++
	m := make([]byte, 16)
	m[0] = 8 // echo request
	if p.v6 {
		m[0] = 128
	}
	binary.BigEndian.PutUint16(m[4:], p.id)
	binary.BigEndian.PutUint16(m[6:], p.seq)
	copy(m[8:], "vipsmart")
	if !p.v6 {
		binary.BigEndian.PutUint16(m[2:], icmpChecksum(m))
	}
	_, err := p.c.WriteTo(m, dst)
	return p.seq, err
}

// waitAnswer sends an echo request to dst every interval until one of
// them (any sent during this call) is answered, and returns when the
// first answer arrived. It gives up after timeout.
func (p *pinger) waitAnswer(dst string, interval, timeout time.Duration) (time.Time, error) {
	ip := &net.IPAddr{IP: net.ParseIP(dst)}
	deadline := time.Now().Add(timeout)
	first := p.seq + 1
	buf := make([]byte, 1500)
	for time.Now().Before(deadline) {
		if _, err := p.send(ip); err != nil && !errors.Is(err, net.ErrClosed) {
			// "no route"/"unreachable" while an address moves: keep trying
			_ = err
		}
		until := time.Now().Add(interval)
		if until.After(deadline) {
			until = deadline
		}
		for {
			_ = p.c.SetReadDeadline(until)
			n, from, err := p.c.ReadFrom(buf)
			if err != nil {
				break // deadline: send the next one
			}
			reply := byte(0)
			if p.v6 {
				reply = 129
			}
			if n < 8 || buf[0] != reply || from.String() != dst {
				continue
			}
			id, seq := binary.BigEndian.Uint16(buf[4:]), binary.BigEndian.Uint16(buf[6:])
			if id == p.id && seq-first <= p.seq-first { // one of ours, sent during this call
				return time.Now(), nil
			}
		}
	}
	return time.Time{}, fmt.Errorf("no ICMP echo reply from %s within %s", dst, timeout)
}

// neighMAC returns the MAC address namespace ns's ARP cache (or IPv6
// neighbour cache) holds for ip ("" when none): what its packets to ip are
// sent to.
func neighMAC(t testing.TB, ns, ip string) string {
	t.Helper()
	f := strings.Fields(sh(t, "ip", "-n", ns, "neigh", "show", ip))
	for i := range f {
		if f[i] == "lladdr" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}

// hasAddr reports whether ip is bound on ifc in ns.
func hasAddr(t testing.TB, ns, ifc, ip string) bool {
	t.Helper()
	out := sh(t, "ip", "-n", ns, "-o", "addr", "show", "dev", ifc)
	return strings.Contains(out, " "+ip+"/")
}
