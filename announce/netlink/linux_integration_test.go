//go:build linux

package netlink

import (
	"context"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	vnl "github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vipsmart/vipsmart"
)

// newNetns creates a network namespace of the test's own (unnamed: it goes
// away with its last reference) without moving the test into it.
func newNetns(t *testing.T) netns.NsHandle {
	t.Helper()
	type result struct {
		ns  netns.NsHandle
		err error
	}
	rc := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			rc <- result{err: err}
			return
		}
		defer orig.Close()
		ns, err := netns.New() // creates it and moves this thread into it
		if err != nil {
			runtime.UnlockOSThread()
			rc <- result{err: err}
			return
		}
		if err := netns.Set(orig); err != nil {
			rc <- result{ns: ns, err: err} // the thread dies locked
			return
		}
		runtime.UnlockOSThread()
		rc <- result{ns: ns}
	}()
	r := <-rc
	if r.err != nil {
		t.Fatalf("creating a network namespace: %v", r.err)
	}
	t.Cleanup(func() { r.ns.Close() })
	return r.ns
}

// frames captures the frames that arrive on an interface of the namespace.
type frames struct {
	c  *packet.Conn
	ch chan []byte
}

func capture(t *testing.T, ns netns.NsHandle, link string) *frames {
	t.Helper()
	var c *packet.Conn
	err := InNetns(ns, func() error {
		ifi, err := net.InterfaceByName(link)
		if err != nil {
			return err
		}
		c, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, nil)
		return err
	})
	if err != nil {
		t.Fatalf("capture on %s: %v", link, err)
	}
	f := &frames{c: c, ch: make(chan []byte, 256)}
	go func() {
		defer close(f.ch)
		for {
			b := make([]byte, 1600)
			n, _, err := c.ReadFrom(b)
			if err != nil {
				return
			}
			f.ch <- b[:n]
		}
	}()
	t.Cleanup(func() { c.Close() })
	return f
}

// waitFor returns the first frame match accepts, failing after timeout.
func (f *frames) waitFor(t *testing.T, what string, match func([]byte) bool) {
	t.Helper()
	deadline := time.After(3 * time.Second)
	for {
		select {
		case b, ok := <-f.ch:
			if !ok {
				t.Fatalf("capture closed before %s", what)
			}
			if match(b) {
				return
			}
		case <-deadline:
			t.Fatalf("no %s seen", what)
		}
	}
}

func TestLinuxNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	ns := newNetns(t)
	var mac net.HardwareAddr
	err := InNetns(ns, func() error {
		lo, err := vnl.LinkByName("lo")
		if err != nil {
			return err
		}
		if err := vnl.LinkSetUp(lo); err != nil {
			return err
		}
		if err := vnl.LinkAdd(&vnl.Veth{LinkAttrs: vnl.LinkAttrs{Name: "vs0"}, PeerName: "vs1"}); err != nil {
			return err
		}
		for _, n := range []string{"vs0", "vs1"} {
			l, err := vnl.LinkByName(n)
			if err != nil {
				return err
			}
			if err := vnl.LinkSetUp(l); err != nil {
				return err
			}
			if n == "vs0" {
				mac = l.Attrs().HardwareAddr
			}
		}
		// Foreign addresses, as an operator would add them.
		l, _ := vnl.LinkByName("vs0")
		for _, s := range []string{"192.0.2.1/24", "10.0.0.9/32"} {
			a, _ := vnl.ParseAddr(s)
			if err := vnl.AddrAdd(l, a); err != nil {
				return err
			}
		}
		a, _ := vnl.ParseAddr("2001:db8::99/64")
		a.Flags = unix.IFA_F_NODAD
		return vnl.AddrAdd(l, a)
	})
	if err != nil {
		t.Fatalf("setting up the namespace: %v", err)
	}
	rx := capture(t, ns, "vs1")

	real := NewLinuxOSAt(ns)
	a := New(real, Options{DefaultInterface: "vs0", GARPCount: 2, GARPInterval: 20 * time.Millisecond})
	ctx := context.Background()
	desired := []vipsmart.Announcement{
		{Addr: netip.MustParseAddr("10.0.0.1"), Kind: vipsmart.AnnounceVIP, Name: "web"},
		{Addr: netip.MustParseAddr("2001:db8::1"), Kind: vipsmart.AnnounceGIPActive, Name: "g6"},
		{Addr: netip.MustParseAddr("10.0.0.2"), Kind: vipsmart.AnnounceGIPStandby, Name: "g4"},
	}
	if err := a.Set(ctx, desired); err != nil {
		t.Fatalf("Set: %v", err)
	}

	// What the kernel holds, read by the plain netlink library.
	kernel := func() map[string]vnl.Addr {
		out := map[string]vnl.Addr{}
		err := InNetns(ns, func() error {
			l, err := vnl.LinkByName("vs0")
			if err != nil {
				return err
			}
			as, err := vnl.AddrList(l, vnl.FAMILY_ALL)
			for _, x := range as {
				out[x.IPNet.String()] = x
			}
			return err
		})
		if err != nil {
			t.Fatalf("listing vs0: %v", err)
		}
		return out
	}
	got := kernel()
	if x, ok := got["10.0.0.1/32"]; !ok || x.Label != "vs0:vs" {
		t.Fatalf("10.0.0.1/32 on vs0: %+v %v (all: %v)", x, ok, got)
	}
	if x, ok := got["2001:db8::1/128"]; !ok || x.Flags&unix.IFA_F_NODAD == 0 || x.Flags&unix.IFA_F_TENTATIVE != 0 {
		t.Fatalf("2001:db8::1/128 on vs0: %+v %v, want nodad and not tentative", x, ok)
	}
	if _, ok := got["10.0.0.2/32"]; ok {
		t.Fatal("a standby was bound")
	}
	ours, err := real.Addrs("vs0")
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range ours {
		if x.Prefix.Bits() == x.Prefix.Addr().BitLen() && (x.Prefix.Addr().String() == "10.0.0.1" || x.Prefix.Addr().String() == "2001:db8::1") && x.Proto != AddrProto {
			t.Errorf("%s: proto %#x, want %#x (kernel %s)", x, x.Proto, AddrProto, kernelRelease())
		}
	}

	// The takeover was told: gratuitous ARP and unsolicited NA on the wire.
	rx.waitFor(t, "gratuitous ARP for 10.0.0.1", func(b []byte) bool {
		if len(b) < 14 || b[12] != 0x08 || b[13] != 0x06 {
			return false
		}
		var p arp.Packet
		if err := p.UnmarshalBinary(b[14:]); err != nil {
			return false
		}
		return p.SenderIP.String() == "10.0.0.1" && p.TargetIP.String() == "10.0.0.1" &&
			p.SenderHardwareAddr.String() == mac.String() && net.HardwareAddr(b[0:6]).String() == "ff:ff:ff:ff:ff:ff"
	})
	rx.waitFor(t, "unsolicited NA for 2001:db8::1", func(b []byte) bool {
		if len(b) < 54 || b[12] != 0x86 || b[13] != 0xdd || b[14+6] != 58 {
			return false
		}
		dst, _ := netip.AddrFromSlice(b[14+24 : 14+40])
		m, err := ndp.ParseMessage(b[54:])
		if err != nil {
			return false
		}
		na, ok := m.(*ndp.NeighborAdvertisement)
		if !ok || na.TargetAddress.String() != "2001:db8::1" || !na.Override || na.Solicited || dst.String() != "ff02::1" || b[14+7] != 255 {
			return false
		}
		for _, o := range na.Options {
			if l, ok := o.(*ndp.LinkLayerAddress); ok && l.Direction == ndp.Target && l.Addr.String() == mac.String() {
				return true
			}
		}
		return false
	})

	// Set empty: ours gone, foreign untouched.
	if err := a.Set(ctx, nil); err != nil {
		t.Fatalf("Set(empty): %v", err)
	}
	got = kernel()
	for _, s := range []string{"10.0.0.1/32", "2001:db8::1/128"} {
		if _, ok := got[s]; ok {
			t.Errorf("%s still on vs0", s)
		}
	}
	for _, s := range []string{"192.0.2.1/24", "10.0.0.9/32", "2001:db8::99/64"} {
		if _, ok := got[s]; !ok {
			t.Errorf("foreign %s is gone", s)
		}
	}

	// A crashed run's leftovers: a new announcer's Reconcile removes them.
	crashed := New(real, Options{DefaultInterface: "vs0", GARPCount: -1})
	if err := crashed.Set(ctx, desired); err != nil {
		t.Fatal(err)
	}
	fresh := New(real, Options{DefaultInterface: "vs0", GARPCount: -1})
	if err := fresh.Reconcile(ctx); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	got = kernel()
	for _, s := range []string{"10.0.0.1/32", "2001:db8::1/128"} {
		if _, ok := got[s]; ok {
			t.Errorf("leftover %s survived Reconcile", s)
		}
	}

	// Close withdraws.
	if err := fresh.Set(ctx, desired[:1]); err != nil {
		t.Fatal(err)
	}
	if _, ok := kernel()["10.0.0.1/32"]; !ok {
		t.Fatal("10.0.0.1/32 not bound")
	}
	if err := fresh.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	got = kernel()
	if _, ok := got["10.0.0.1/32"]; ok {
		t.Error("10.0.0.1/32 survived Close")
	}
	if len(got) < 3 {
		t.Errorf("foreign addresses gone after Close: %v", got)
	}

	// A missing interface is an error naming the address.
	err = New(real, Options{DefaultInterface: "nosuch0"}).Set(ctx, desired[:1])
	if err == nil || !strings.Contains(err.Error(), "10.0.0.1") || !strings.Contains(err.Error(), "nosuch0") {
		t.Errorf("Set on a missing interface: %v", err)
	}
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "?"
	}
	return unix.ByteSliceToString(u.Release[:])
}
