package dataplane

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
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

// host adds namespace role with eth0 = 10.77.0.n/24 on the bridge and
// returns its name.
func (x *lanLab) host(role string, n int) string {
	x.t.Helper()
	ns := x.l.ns(role)
	port := "p-" + role
	x.l.veth(x.lan, port, "", ns, "eth0", "10.77.0."+strconv.Itoa(n)+"/24")
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
