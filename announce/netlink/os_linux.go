//go:build linux

package netlink

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
	vnl "github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ifaProto is IFA_PROTO (Linux 5.18), which golang.org/x/sys does not name.
const ifaProto = 11

var (
	broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	zeroMAC      = net.HardwareAddr{0, 0, 0, 0, 0, 0}
	allNodes     = netip.MustParseAddr("ff02::1")
)

// LinuxOS is the real OS: rtnetlink for the addresses (through
// github.com/vishvananda/netlink and its nl package, since IFA_PROTO is not
// in its Addr), a raw ARP socket (github.com/mdlayher/arp) and an ICMPv6
// socket (github.com/mdlayher/ndp) for the announcements. It needs
// CAP_NET_ADMIN and CAP_NET_RAW.
type LinuxOS struct {
	ns    netns.NsHandle
	hasNS bool
}

var _ OS = (*LinuxOS)(nil)

// NewLinuxOS returns the OS of the calling process's network namespace.
func NewLinuxOS() *LinuxOS { return &LinuxOS{} }

// NewLinuxOSAt returns an OS that does everything in the network namespace
// ns (each call runs on an OS thread of its own switched into ns); the
// caller keeps ns open while the OS is in use. Tests use it.
func NewLinuxOSAt(ns netns.NsHandle) *LinuxOS { return &LinuxOS{ns: ns, hasNS: true} }

// do runs f in the namespace of o.
func (o *LinuxOS) do(f func() error) error {
	if !o.hasNS {
		return f()
	}
	return InNetns(o.ns, f)
}

// InNetns runs f on a locked OS thread switched into ns, and waits for it.
// Sockets f opens stay in ns. If the thread cannot be switched back it is
// left locked, and Go ends it with its goroutine.
func InNetns(ns netns.NsHandle, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("reading the current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("entering network namespace: %w", err)
			return
		}
		err = f()
		if rerr := netns.Set(orig); rerr != nil {
			errc <- errors.Join(err, fmt.Errorf("leaving network namespace: %w", rerr))
			return // the thread stays locked and dies with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// Addrs implements OS.
func (o *LinuxOS) Addrs(link string) ([]Addr, error) {
	var out []Addr
	err := o.do(func() error {
		var err error
		out, err = listAddrs(link)
		return err
	})
	return out, err
}

func listAddrs(link string) ([]Addr, error) {
	links, err := vnl.LinkList()
	if err != nil && !errors.Is(err, vnl.ErrDumpInterrupted) {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	names := make(map[int32]string, len(links))
	for _, l := range links {
		names[int32(l.Attrs().Index)] = l.Attrs().Name
	}
	var msgs [][]byte
	for try := 0; ; try++ {
		req := nl.NewNetlinkRequest(unix.RTM_GETADDR, unix.NLM_F_DUMP)
		req.AddData(nl.NewIfAddrmsg(unix.AF_UNSPEC))
		msgs, err = req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWADDR)
		if err == nil {
			break
		}
		if !errors.Is(err, nl.ErrDumpInterrupted) || try == 4 {
			return nil, fmt.Errorf("listing addresses: %w", err)
		}
	}
	var out []Addr
	for _, m := range msgs {
		msg := nl.DeserializeIfAddrmsg(m)
		name, ok := names[int32(msg.Index)]
		if !ok {
			// A link created after the link dump: look it up.
			l, err := vnl.LinkByIndex(int(msg.Index))
			if err != nil {
				continue
			}
			name = l.Attrs().Name
		}
		if link != "" && name != link {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[msg.Len():])
		if err != nil {
			return nil, fmt.Errorf("parsing an address of %s: %w", name, err)
		}
		a := Addr{Link: name, Flags: uint32(msg.Flags)}
		var local, address []byte
		for _, at := range attrs {
			switch at.Attr.Type {
			case unix.IFA_LOCAL:
				local = at.Value
			case unix.IFA_ADDRESS:
				address = at.Value
			case unix.IFA_LABEL:
				a.Label = nl.BytesToString(at.Value)
			case unix.IFA_FLAGS:
				if len(at.Value) >= 4 {
					a.Flags = nl.NativeEndian().Uint32(at.Value)
				}
			case ifaProto:
				if len(at.Value) >= 1 {
					a.Proto = at.Value[0]
				}
			}
		}
		raw := local
		if raw == nil {
			raw = address
		}
		ip, ok := netip.AddrFromSlice(raw)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if int(msg.Prefixlen) > ip.BitLen() {
			continue
		}
		a.Prefix = netip.PrefixFrom(ip, int(msg.Prefixlen)) // the address itself, host bits kept
		out = append(out, a)
	}
	return out, nil
}

// AddAddr implements OS.
// HasLink implements OS.
func (o *LinuxOS) HasLink(link string) (bool, error) {
	found := false
	err := o.do(func() error {
		_, err := vnl.LinkByName(link)
		var nf vnl.LinkNotFoundError
		switch {
		case err == nil:
			found = true
		case errors.As(err, &nf):
		default:
			return fmt.Errorf("looking up interface %s: %w", link, err)
		}
		return nil
	})
	return found, err
}

// AddAddr implements OS.
func (o *LinuxOS) AddAddr(a Addr) error {
	return o.do(func() error {
		return addrRequest(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK, a)
	})
}

// ReplaceAddr implements Replacer: it adds a, or replaces the address
// already there (its lifetime restarts).
func (o *LinuxOS) ReplaceAddr(a Addr) error {
	return o.do(func() error {
		return addrRequest(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_REPLACE|unix.NLM_F_ACK, a)
	})
}

// DelAddr implements OS.
func (o *LinuxOS) DelAddr(a Addr) error {
	return o.do(func() error {
		return addrRequest(unix.RTM_DELADDR, unix.NLM_F_ACK, a)
	})
}

func addrRequest(op, flags int, a Addr) error {
	l, err := vnl.LinkByName(a.Link)
	if err != nil {
		return fmt.Errorf("interface %q: %w", a.Link, err)
	}
	ip := a.Prefix.Addr()
	family := unix.AF_INET6
	if ip.Is4() {
		family = unix.AF_INET
	}
	msg := nl.NewIfAddrmsg(family)
	msg.Index = uint32(l.Attrs().Index)
	msg.Prefixlen = uint8(a.Prefix.Bits())
	msg.Flags = uint8(a.Flags & 0xff)
	req := nl.NewNetlinkRequest(op, flags)
	req.AddData(msg)
	raw := ip.AsSlice()
	req.AddData(nl.NewRtAttr(unix.IFA_LOCAL, raw))
	req.AddData(nl.NewRtAttr(unix.IFA_ADDRESS, raw))
	if ip.Is4() && a.Label != "" {
		req.AddData(nl.NewRtAttr(unix.IFA_LABEL, nl.ZeroTerminated(a.Label)))
	}
	if op == unix.RTM_NEWADDR {
		if a.Flags > 0xff {
			req.AddData(nl.NewRtAttr(unix.IFA_FLAGS, nl.Uint32Attr(a.Flags)))
		}
		if a.Proto != 0 {
			req.AddData(nl.NewRtAttr(ifaProto, nl.Uint8Attr(a.Proto)))
		}
		if a.ValidLft != 0 {
			ci := nl.IfaCacheInfo{IfaCacheinfo: unix.IfaCacheinfo{Valid: a.ValidLft, Prefered: a.ValidLft}}
			req.AddData(nl.NewRtAttr(unix.IFA_CACHEINFO, ci.Serialize()))
		}
	}
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil {
		verb := "adding"
		if op == unix.RTM_DELADDR {
			verb = "deleting"
		}
		return fmt.Errorf("%s %s on %s: %w", verb, a.Prefix, a.Link, err)
	}
	return nil
}

// Announce implements OS. An interface without a link-layer address (a
// tunnel, loopback) has no neighbours to tell: Announce does nothing.
func (o *LinuxOS) Announce(link string, ip netip.Addr) error {
	return o.do(func() error {
		ifi, err := net.InterfaceByName(link)
		if err != nil {
			return fmt.Errorf("interface %q: %w", link, err)
		}
		if len(ifi.HardwareAddr) == 0 {
			return nil
		}
		if ip.Is4() {
			return garp(ifi, ip)
		}
		return unsolicitedNA(ifi, ip)
	})
}

// garp broadcasts an ARP request and an ARP reply whose sender and target
// IP are both ip.
func garp(ifi *net.Interface, ip netip.Addr) error {
	c, err := arp.Dial(ifi)
	if err != nil {
		return fmt.Errorf("opening an ARP socket on %s: %w", ifi.Name, err)
	}
	defer c.Close()
	if len(ifi.HardwareAddr) != len(zeroMAC) {
		return fmt.Errorf("interface %s: link-layer address %s is not Ethernet", ifi.Name, ifi.HardwareAddr)
	}
	for _, p := range []struct {
		op     arp.Operation
		target net.HardwareAddr
	}{{arp.OperationRequest, zeroMAC}, {arp.OperationReply, broadcastMAC}} {
		pkt, err := arp.NewPacket(p.op, ifi.HardwareAddr, ip, p.target, ip)
		if err != nil {
			return err
		}
		if err := c.WriteTo(pkt, broadcastMAC); err != nil {
			return fmt.Errorf("sending gratuitous ARP %s for %s on %s: %w", p.op, ip, ifi.Name, err)
		}
	}
	return nil
}

// unsolicitedNA sends a neighbour advertisement for ip, from ip, to all
// nodes, with the override flag and the target link-layer address.
func unsolicitedNA(ifi *net.Interface, ip netip.Addr) error {
	c, _, err := ndp.Listen(ifi, ndp.Addr(ip.String()))
	if err != nil {
		return fmt.Errorf("opening an ICMPv6 socket on %s from %s: %w", ifi.Name, ip, err)
	}
	defer c.Close()
	na := &ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: ip,
		Options: []ndp.Option{&ndp.LinkLayerAddress{
			Direction: ndp.Target,
			Addr:      ifi.HardwareAddr,
		}},
	}
	if err := c.WriteTo(na, nil, allNodes); err != nil {
		return fmt.Errorf("sending unsolicited NA for %s on %s: %w", ip, ifi.Name, err)
	}
	return nil
}
