package dataplane

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

// lanLab is one L2 segment: a bridge br0 in namespace "lan" and hosts (DCs,
// keepalived nodes, a client), each a namespace whose eth0 (10.77.0.N/24)
// is a port of the bridge.
type lanLab struct {
	t   testing.TB
	l   *lab
	lan string
}

const lanVIP = "10.77.0.50"

func newLANLab(t testing.TB) *lanLab {
	t.Helper()
	x := &lanLab{t: t, l: newLab(t)}
	x.lan = x.l.ns("lan")
	sh(t, "ip", "-n", x.lan, "link", "add", "br0", "type", "bridge")
	sh(t, "ip", "-n", x.lan, "link", "set", "br0", "up")
	return x
}

// host adds namespace role with eth0 = 10.77.0.n/24 and
// 2001:db8:77::n/64 (dual stack, the IPv6 address kept when the link goes
// down, as IPv4's is) on the bridge and returns its name.
func (x *lanLab) host(role string, n int) string {
	x.t.Helper()
	ns := x.l.ns(role)
	nsExec(x.t, ns, "sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/keep_addr_on_down")
	port := "p-" + role
	x.l.veth(x.lan, port, "", ns, "eth0", "10.77.0."+strconv.Itoa(n)+"/24")
	sh(x.t, "ip", "-n", ns, "addr", "add", "2001:db8:77::"+strconv.Itoa(n)+"/64", "dev", "eth0", "nodad")
	sh(x.t, "ip", "-n", x.lan, "link", "set", port, "master", "br0")
	return ns
}

// netlinkDCs adds two DC hosts (10.77.0.1, 10.77.0.2) running vipsmart
// with the netlink announcer on eth0 and federates them.
func (x *lanLab) netlinkDCs(extra ...string) []*dc {
	x.t.Helper()
	var ds []*dc
	for i := 1; i <= 2; i++ {
		ns := x.host("dc"+strconv.Itoa(i), i)
		flags := append([]string{"--announcer", "netlink", "--netlink-interface", "eth0"}, extra...)
		d := newDC(x.t, "dc-"+strconv.Itoa(i), ns, "10.77.0."+strconv.Itoa(i), flags...)
		d.start()
		ds = append(ds, d)
	}
	ds[0].dcAdd(ds[1])
	waitMembers(x.t, ds...)
	return ds
}

// waitOwner pings lanVIP from the client every 10 ms until an echo
// request is answered while the client's ARP cache points at owner's MAC
// (before and after the answer: the owner answered). It returns when that
// first held. Its ARP entry moves by a gratuitous ARP, or by a fresh
// resolution once the old entry failed.
func waitOwner(t testing.TB, client string, p *pinger, ownerNS, what string, timeout time.Duration) time.Time {
	t.Helper()
	return waitOwnerOf(t, client, p, lanVIP, ownerNS, what, timeout)
}

// waitOwnerOf is waitOwner for any address (IPv4 with an ICMP pinger,
// IPv6 with an ICMPv6 one).
func waitOwnerOf(t testing.TB, client string, p *pinger, lanVIP, ownerNS, what string, timeout time.Duration) time.Time {
	t.Helper()
	wantMAC := mac(t, ownerNS, "eth0")
	deadline := time.Now().Add(timeout)
	var why error
	for time.Now().Before(deadline) {
		if got := neighMAC(t, client, lanVIP); got != wantMAC {
			// Keep traffic going (a failed entry is only resolved again
			// when there is something to send), then look again.
			p.waitAnswer(lanVIP, 5*time.Millisecond, 5*time.Millisecond)
			why = fmt.Errorf("client's ARP entry for %s is %q, want %s (%s): %s", lanVIP, got, wantMAC, ownerNS,
				strings.TrimSpace(sh(t, "ip", "-n", client, "neigh", "show", lanVIP)))
			continue
		}
		at, err := p.waitAnswer(lanVIP, 10*time.Millisecond, 200*time.Millisecond)
		if err != nil {
			why = err
			continue
		}
		if got := neighMAC(t, client, lanVIP); got != wantMAC {
			why = fmt.Errorf("client's ARP entry for %s moved to %q during the ping", lanVIP, got)
			continue
		}
		return at
	}
	t.Fatalf("%s: %s not answered by %s within %s: %v", what, lanVIP, ownerNS, timeout, why)
	return time.Time{}
}

// TestNetlinkVIPAnswersICMP runs two DCs with the netlink announcer and a
// client on one bridge. A failover GIP (dc-1:200, dc-2:100) is bound by
// dc-1 and answers the client's ICMP echo at dc-1's MAC.
//
// kill -9 of dc-1's daemon: the process cannot remove its address, so the
// stale address stays on dc-1's eth0 and dc-1's kernel still answers ARP
// and ICMP for it. What must change is where the client sends: dc-2 binds
// the GIP and its gratuitous ARPs move the client's existing ARP entry to
// dc-2's MAC, and the echo requests are answered from there (asserted).
// A client that resolves the GIP afresh while both hold it may get either
// MAC; that is the price of kill -9 without fencing, and a restarted
// daemon removes the stale address at once (asserted below).
//
// Link cut of dc-1 (its eth0 down): nothing stale can answer; the GIP
// answers again only from dc-2 (asserted with the ARP entry). Heal: dc-1
// takes it back (preempt); see the comment there for how long that takes.
func TestNetlinkVIPAnswersICMP(t *testing.T) {
	need(t)
	x := newLANLab(t)
	client := x.host("client", 100)
	ds := x.netlinkDCs()
	d1, d2 := ds[0], ds[1]
	p := newPinger(t, client)
	d1.cli("gip", "add", "g", lanVIP, "--placement", "dc-1:200", "--placement", "dc-2:100")

	waitOwner(t, client, p, d1.ns, "GIP bound by dc-1", 15*time.Second)
	if hasAddr(t, d2.ns, "eth0", lanVIP) {
		t.Fatalf("dc-2 (standby) has %s bound too", lanVIP)
	}

	// kill -9 of the active DC's daemon.
	start := time.Now()
	d1.p.kill()
	at := waitOwner(t, client, p, d2.ns, "after kill -9 of dc-1", 15*time.Second)
	t.Logf("kill -9 of dc-1: %s answered from dc-2's MAC %s after %s", lanVIP, mac(t, d2.ns, "eth0"), at.Sub(start).Round(time.Millisecond))
	if !hasAddr(t, d1.ns, "eth0", lanVIP) {
		t.Logf("note: dc-1's stale address is gone")
	} else {
		t.Logf("dc-1 still has %s on eth0 (left by kill -9), as expected", lanVIP)
	}

	// dc-1 restarts: it removes the stale address during its start-up
	// hold-down, then takes the GIP back (preempt) and dc-2 unbinds it.
	d1.start()
	waitOwner(t, client, p, d1.ns, "dc-1 restarted (preempt)", 15*time.Second)
	eventually(t, 10*time.Second, "dc-2 unbinds the GIP", func() error {
		if hasAddr(t, d2.ns, "eth0", lanVIP) {
			return fmt.Errorf("dc-2 still has %s", lanVIP)
		}
		return nil
	})

	// Cut dc-1's link.
	start = time.Now()
	sh(t, "ip", "-n", d1.ns, "link", "set", "eth0", "down")
	at = waitOwner(t, client, p, d2.ns, "after dc-1's link was cut", 15*time.Second)
	t.Logf("dc-1's link cut: %s answered from dc-2 after %s", lanVIP, at.Sub(start).Round(time.Millisecond))

	// Heal: dc-1 takes it back (preempt).
	sh(t, "ip", "-n", d1.ns, "link", "set", "eth0", "up")
	//
	// dc-1 kept the address bound through the cut, so it sends no
	// gratuitous ARP when the link heals, while the client's ARP entry
	// still points at dc-2 (whose gratuitous ARPs it followed), and dc-2
	// unbinds the address as soon as it hears dc-1 again. The client's
	// packets go to dc-2 and are dropped until its ARP entry fails (Linux:
	// 5 s delay + 3 unicast probes, about 8 s) and it resolves the address
	// again -- unless dc-1 re-sends its gratuitous ARPs when dc-2 becomes
	// reachable again, which it does. Asserted: the client reaches dc-1
	// within 2 s of the heal.
	start = time.Now()
	at = waitOwner(t, client, p, d1.ns, "dc-1's link healed (preempt)", 60*time.Second)
	healed := at.Sub(start)
	t.Logf("dc-1's link healed: %s answered from dc-1 again after %s", lanVIP, healed.Round(time.Millisecond))
	if healed > 2*time.Second {
		t.Errorf("after the partition healed the client reached the GIP again only after %s: dc-1, which kept the address, did not re-announce it", healed.Round(time.Millisecond))
	}
}

// TestNetlinkDualStack runs two dual-stack DCs with the netlink announcer
// and a client on one bridge, with an IPv4 and an IPv6 failover GIP. Each
// is bound by dc-1 (the IPv6 one as a /128) and answers the client's ICMP
// and ICMPv6 echo requests at dc-1's MAC; when dc-1's link is cut, dc-2
// binds both and its gratuitous ARPs and unsolicited neighbour
// advertisements move the client's ARP and neighbour entries: both answer
// from dc-2's MAC.
func TestNetlinkDualStack(t *testing.T) {
	need(t)
	const gip6 = "2001:db8:77::50"
	x := newLANLab(t)
	client := x.host("client", 100)
	ds := x.netlinkDCs()
	d1, d2 := ds[0], ds[1]
	p4, p6 := newPinger(t, client), newPinger6(t, client)
	d1.cli("gip", "add", "g4", lanVIP, "--placement", "dc-1:200", "--placement", "dc-2:100")
	d1.cli("gip", "add", "g6", gip6, "--placement", "dc-1:200", "--placement", "dc-2:100")

	waitOwnerOf(t, client, p4, lanVIP, d1.ns, "IPv4 GIP bound by dc-1", 15*time.Second)
	waitOwnerOf(t, client, p6, gip6, d1.ns, "IPv6 GIP bound by dc-1", 15*time.Second)
	if out := sh(t, "ip", "-n", d1.ns, "-6", "addr", "show", "dev", "eth0"); !strings.Contains(out, gip6+"/128") {
		t.Errorf("dc-1 does not hold %s/128:\n%s", gip6, out)
	}
	if hasAddr(t, d2.ns, "eth0", gip6) || hasAddr(t, d2.ns, "eth0", lanVIP) {
		t.Fatalf("dc-2 (standby) has a GIP bound too")
	}

	start := time.Now()
	sh(t, "ip", "-n", d1.ns, "link", "set", "eth0", "down")
	at4 := waitOwnerOf(t, client, p4, lanVIP, d2.ns, "IPv4 GIP after dc-1's link was cut", 15*time.Second)
	at6 := waitOwnerOf(t, client, p6, gip6, d2.ns, "IPv6 GIP after dc-1's link was cut", 15*time.Second)
	t.Logf("dc-1's link cut: %s answered from dc-2 after %s, %s (ICMPv6, neighbour entry moved by dc-2's unsolicited NA) after %s",
		lanVIP, at4.Sub(start).Round(time.Millisecond), gip6, at6.Sub(start).Round(time.Millisecond))
}

// TestNetlinkNoInterfaceWarns: with the netlink announcer and no
// --netlink-interface, `vip add` without --interface warns at once that
// the VIP cannot be announced; vip list, vip show and status say it
// failed and why (status never lists it as announced), and the events
// hold the failure at warn and error level.
func TestNetlinkNoInterfaceWarns(t *testing.T) {
	need(t)
	x := newLANLab(t)
	ns := x.host("dc1", 1)
	d := newDC(t, "dc-1", ns, "10.77.0.1", "--announcer", "netlink")
	d.start()
	const addr = "10.77.0.60"
	out := d.cli("vip", "add", "web", addr)
	if !strings.Contains(out, "warning: VIP web "+addr+": ") || !strings.Contains(out, "no interface for "+addr) {
		t.Fatalf("vip add did not warn:\n%s", out)
	}
	eventually(t, 10*time.Second, "status says the VIP failed", func() error {
		st, err := d.status()
		if err != nil {
			return err
		}
		if len(st.Announced) != 1 || st.Announced[0].State != vipsmart.AnnounceFailed || !strings.HasPrefix(st.Announced[0].Reason, "no interface for "+addr) {
			return fmt.Errorf("announced: %+v", st.Announced)
		}
		return nil
	})
	if out := d.cli("status"); !strings.Contains(out, "Announced:   0 of 1 wanted") || !strings.Contains(out, "failed: no interface for "+addr) {
		t.Errorf("status:\n%s", out)
	}
	if out := d.cli("vip", "list"); !strings.Contains(out, "netlink failed") {
		t.Errorf("vip list:\n%s", out)
	}
	if out := d.cli("vip", "show", "web"); !strings.Contains(out, "Warning:") || !strings.Contains(out, "no interface for "+addr) {
		t.Errorf("vip show:\n%s", out)
	}
	if ok, log := hasEvent(t, d, "announce", vipsmart.LevelWarn, "VIP web "+addr+" cannot be announced"); !ok {
		t.Errorf("no warning event that the VIP cannot be announced:\n%s", log)
	}
	if ok, log := hasEvent(t, d, "announce", vipsmart.LevelError, "announcing failed"); !ok {
		t.Errorf("no error event that announcing failed:\n%s", log)
	}
	// The table shows the level in front of the message.
	if evs := d.cli("events"); !strings.Contains(evs, "WARN: VIP web "+addr+" cannot be announced") {
		t.Errorf("events table:\n%s", evs)
	}
	if hasAddr(t, ns, "eth0", addr) {
		t.Errorf("%s was bound anyway", addr)
	}
}
