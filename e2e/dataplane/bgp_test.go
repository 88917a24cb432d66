package dataplane

import (
	"fmt"
	"github.com/vipsmart/vipsmart"
	"strconv"
	"testing"
	"time"
)

// bgpLab is a router namespace running BIRD (AS 65000) and n DC namespaces,
// each linked to the router by its own veth (router side to-dcI
// 10.77.I.1/24, DC side eth0 10.77.I.2/24, default route via the router,
// which forwards, so the DCs' federation traffic goes through it). DC I
// runs vipsmart with the BGP announcer in AS 6500I, one eBGP session to the
// router; BIRD protocol dcI.
type bgpLab struct {
	t    testing.TB
	l    *lab
	r    string
	bird *birdClient
	dcs  []*dc
}

func dcIP(i int) string     { return fmt.Sprintf("10.77.%d.2", i) }
func routerIP(i int) string { return fmt.Sprintf("10.77.%d.1", i) }
func dcASN(i int) uint32    { return uint32(65000 + i) }

// newBGPLab builds the namespaces and BIRD, and prepares (does not start)
// the daemons, each with the BGP flags plus extra.
func newBGPLab(t testing.TB, n int, extra ...string) *bgpLab {
	t.Helper()
	b := &bgpLab{t: t, l: newLab(t)}
	b.r = b.l.ns("r")
	nsExec(t, b.r, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
	var peers []birdPeer
	for i := 1; i <= n; i++ {
		ns := b.l.ns("dc" + strconv.Itoa(i))
		b.l.veth(b.r, "to-dc"+strconv.Itoa(i), routerIP(i)+"/24", ns, "eth0", dcIP(i)+"/24")
		sh(t, "ip", "-n", ns, "route", "add", "default", "via", routerIP(i))
		peers = append(peers, birdPeer{name: "dc" + strconv.Itoa(i), local: routerIP(i), neighbor: dcIP(i), asn: dcASN(i)})
		flags := append([]string{"--announcer", "bgp", "--bgp-asn", strconv.Itoa(int(dcASN(i))), "--bgp-router-id", dcIP(i),
			"--bgp-peer", routerIP(i) + "," + strconv.Itoa(routerASN), "--bgp-listen-port", "-1", "--bgp-hold-time", "3s"}, extra...)
		b.dcs = append(b.dcs, newDC(t, "dc-"+strconv.Itoa(i), ns, dcIP(i), flags...))
	}
	b.bird = startBIRD(t, b.r, routerIP(1), peers)
	return b
}

// federate starts every daemon and adds them all to dc-1's federation.
func (b *bgpLab) federate() {
	b.t.Helper()
	for _, d := range b.dcs {
		d.start()
	}
	for _, d := range b.dcs[1:] {
		b.dcs[0].dcAdd(d)
	}
	waitMembers(b.t, b.dcs...)
}

// cut sets DC i's uplink down inside the DC namespace: the router's veth
// loses carrier, BIRD sees the link go down and drops the session at once
// (BIRD 2 logs "Link down" for a direct session). heal sets it up again.
func (b *bgpLab) cut(i int) {
	sh(b.t, "ip", "-n", b.dcs[i-1].ns, "link", "set", "eth0", "down")
}

func (b *bgpLab) heal(i int) {
	sh(b.t, "ip", "-n", b.dcs[i-1].ns, "link", "set", "eth0", "up")
	sh(b.t, "ip", "-n", b.dcs[i-1].ns, "route", "replace", "default", "via", routerIP(i))
}

// silence makes DC i fall silent without any link event the router could
// see (as when something between them fails): its address is removed, so
// it neither sends nor answers, and the router learns only from its BGP
// hold timer (3 s). unsilence puts the address and route back.
func (b *bgpLab) silence(i int) {
	sh(b.t, "ip", "-n", b.dcs[i-1].ns, "addr", "del", dcIP(i)+"/24", "dev", "eth0")
}

func (b *bgpLab) unsilence(i int) {
	sh(b.t, "ip", "-n", b.dcs[i-1].ns, "addr", "add", dcIP(i)+"/24", "dev", "eth0")
	sh(b.t, "ip", "-n", b.dcs[i-1].ns, "route", "replace", "default", "via", routerIP(i))
}

// want describes the expected paths of a prefix: the best path's next hop
// and AS path length, and optionally another path (from next hop other,
// AS path length otherLen) that must be present too, or that must be
// absent when otherLen is -1.
type want struct {
	best     string
	bestLen  int
	other    string
	otherLen int
}

func (w want) check(ps []bgpPath) error {
	var best *bgpPath
	for i := range ps {
		if ps[i].best {
			best = &ps[i]
		}
	}
	if best == nil {
		return fmt.Errorf("no best path: %v", ps)
	}
	if best.via != w.best || (w.bestLen > 0 && len(best.asPath) != w.bestLen) {
		return fmt.Errorf("best path %v, want via %s with an AS path of %d: %v", *best, w.best, w.bestLen, ps)
	}
	if w.other == "" {
		return nil
	}
	for _, p := range ps {
		if p.via == w.other {
			if w.otherLen < 0 {
				return fmt.Errorf("a path via %s is still there: %v", w.other, ps)
			}
			if len(p.asPath) != w.otherLen {
				return fmt.Errorf("path via %s has AS path %v, want %d long: %v", w.other, p.asPath, w.otherLen, ps)
			}
			return nil
		}
	}
	if w.otherLen < 0 {
		return nil
	}
	return fmt.Errorf("no path via %s: %v", w.other, ps)
}

// waitRoute polls BIRD until prefix matches w and returns how long it took.
func (b *bgpLab) waitRoute(timeout time.Duration, prefix string, w want) time.Duration {
	b.t.Helper()
	return eventually(b.t, timeout, "BIRD route "+prefix, func() error {
		ps, err := b.bird.paths(prefix)
		if err != nil {
			return err
		}
		return w.check(ps)
	})
}

const (
	gipPreempt   = "198.51.100.1"
	gipNoPreempt = "198.51.100.2"
	vipAddr      = "198.51.100.20"
)

// TestBGPWithBIRD runs two DCs announcing to a real BIRD router and checks
// the router's table: a VIP route; failover GIPs whose best path is the
// active DC and whose alternate (the standby DC, AS path prepended 3 times)
// is already there; kill -9 and a link cut of the active DC moving the best
// path; recovery moving it back with preempt and not without.
func TestBGPWithBIRD(t *testing.T) {
	need(t, "bird")
	b := newBGPLab(t, 2)
	b.federate()
	d1, d2 := b.dcs[0], b.dcs[1]
	nh1, nh2 := dcIP(1), dcIP(2)

	d2.cli("vip", "add", "web", vipAddr)
	d1.cli("gip", "add", "g1", gipPreempt, "--placement", "dc-1:200", "--placement", "dc-2:100")
	d1.cli("gip", "add", "g2", gipNoPreempt, "--placement", "dc-1:200", "--placement", "dc-2:100", "--preempt=false")

	// dc-2's VIP: one path, from AS 65002.
	b.waitRoute(15*time.Second, vipAddr+"/32", want{best: nh2, bestLen: 1, other: nh1, otherLen: -1})
	// Both GIPs: best via dc-1 (AS path 65001), dc-2's standby present with
	// 65002 four times (its own AS plus the 3 prepended).
	for _, g := range []string{gipPreempt, gipNoPreempt} {
		b.waitRoute(15*time.Second, g+"/32", want{best: nh1, bestLen: 1, other: nh2, otherLen: 4})
	}
	ps, _ := b.bird.paths(gipPreempt + "/32")
	t.Logf("before: %s %v", gipPreempt, ps)

	// kill -9 of dc-1's daemon. The kernel closes its TCP session to BIRD
	// (FIN), so BIRD withdraws dc-1's routes at once and the best path
	// moves to dc-2's standby path, which it already held, long before
	// the 3 s hold time; then dc-2's heartbeats declare dc-1 dead and it
	// re-announces the GIP as active (no prepending).
	start := time.Now()
	d1.p.kill()
	moved := b.waitRoute(10*time.Second, gipPreempt+"/32", want{best: nh2, other: nh1, otherLen: -1})
	t.Logf("kill -9 of dc-1: best path of %s moved to dc-2 after %s", gipPreempt, moved.Round(time.Millisecond))
	if moved > 2500*time.Millisecond {
		t.Errorf("the best path moved %s after kill -9: expected the TCP close to withdraw the routes at once, well before BIRD's 3 s hold time", moved)
	}
	b.waitRoute(10*time.Second, gipPreempt+"/32", want{best: nh2, bestLen: 1})
	b.waitRoute(10*time.Second, gipNoPreempt+"/32", want{best: nh2, bestLen: 1, other: nh1, otherLen: -1})
	t.Logf("kill -9 of dc-1: dc-2 announces both GIPs as active after %s", time.Since(start).Round(time.Millisecond))
	b.waitRoute(5*time.Second, vipAddr+"/32", want{best: nh2, bestLen: 1})

	// dc-1 comes back (same data directory: still a member). g1 (preempt)
	// moves back to it and dc-2 goes back to standby; g2 (preempt off)
	// stays on dc-2 and dc-1 pre-announces its standby path.
	start = time.Now()
	d1.start()
	back := b.waitRoute(30*time.Second, gipPreempt+"/32", want{best: nh1, bestLen: 1, other: nh2, otherLen: 4})
	b.waitRoute(10*time.Second, gipNoPreempt+"/32", want{best: nh2, bestLen: 1, other: nh1, otherLen: 4})
	t.Logf("dc-1 restarted: %s back on dc-1 after %s; %s stays on dc-2 (preempt off)", gipPreempt, back.Round(time.Millisecond), gipNoPreempt)
	// And it stays there: a second look after dc-1's detection window.
	time.Sleep(time.Second)
	if err := (want{best: nh2, bestLen: 1, other: nh1, otherLen: 4}).check(mustPaths(t, b, gipNoPreempt+"/32")); err != nil {
		t.Errorf("%s (preempt off) after dc-1 came back: %v", gipNoPreempt, err)
	}

	// Cut dc-1's uplink. BIRD sees its veth lose carrier and drops the
	// session at once: the best path moves to dc-2's standby path, and
	// dc-2 announces the GIP as active once its heartbeats declare dc-1
	// dead.
	start = time.Now()
	b.cut(1)
	moved = b.waitRoute(15*time.Second, gipPreempt+"/32", want{best: nh2, other: nh1, otherLen: -1})
	b.waitRoute(15*time.Second, gipPreempt+"/32", want{best: nh2, bestLen: 1, other: nh1, otherLen: -1})
	t.Logf("dc-1's link cut: best path of %s moved to dc-2 after %s, active on dc-2 after %s", gipPreempt,
		moved.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	b.waitRoute(5*time.Second, gipNoPreempt+"/32", want{best: nh2, bestLen: 1, other: nh1, otherLen: -1})
	// Let dc-1's own heartbeats declare dc-2 dead too, so that dc-1 takes
	// g2 on its side of the partition (otherwise a heal faster than the
	// detection window leaves g2 on dc-2, which is also right).
	deadline := time.Now().Add(10 * time.Second)
	for {
		var gi vipsmart.GIPInfo
		if err := d1.get("/v1/gips/g2", &gi); err == nil && len(gi.Active) == 1 && gi.Active[0] == "dc-1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dc-1 did not take g2 on its side of the partition within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Heal. g1 goes back to dc-1 (preempt). g2: during the cut dc-1 saw
	// dc-2 dead and took g2 too, so when the partition heals both DCs
	// held it and, preempt off, "the best of the previously active
	// placements stays" (docs/gips.md, ActivePlacements): g2 moves to
	// dc-1 as well. Outside a partition (the kill -9 above) it stays.
	b.heal(1)
	back = b.waitRoute(30*time.Second, gipPreempt+"/32", want{best: nh1, bestLen: 1, other: nh2, otherLen: 4})
	t.Logf("dc-1's link healed: %s back on dc-1 after %s", gipPreempt, back.Round(time.Millisecond))
	b.waitRoute(10*time.Second, gipNoPreempt+"/32", want{best: nh1, bestLen: 1, other: nh2, otherLen: 4})
	b.waitRoute(5*time.Second, vipAddr+"/32", want{best: nh2, bestLen: 1})

	// dc-1 falls silent (no link event). dc-2's heartbeats declare it dead
	// within a second and dc-2 announces g1 as active, with an AS path as
	// long as dc-1's stale route, which BIRD still holds and which wins the
	// tie (lower router id, 10.77.1.2): the best path moves only when
	// BIRD's hold timer (3 s) expires and drops dc-1's routes.
	start = time.Now()
	b.silence(1)
	var tie time.Duration
	moved = eventually(t, 15*time.Second, "best path of "+gipPreempt+" moves to dc-2 after dc-1 fell silent", func() error {
		ps, err := b.bird.paths(gipPreempt + "/32")
		if err != nil {
			return err
		}
		if tie == 0 && (want{best: nh1, bestLen: 1, other: nh2, otherLen: 1}).check(ps) == nil {
			tie = time.Since(start)
		}
		return want{best: nh2, bestLen: 1, other: nh1, otherLen: -1}.check(ps)
	})
	t.Logf("dc-1 silent: dc-2 active next to dc-1's stale route (dc-1 still best) after %s; best path moved to dc-2 after %s (BIRD's hold timer)",
		tie.Round(time.Millisecond), moved.Round(time.Millisecond))
	if tie == 0 {
		t.Errorf("never saw dc-2's active route next to dc-1's stale one")
	}
	if moved < 1500*time.Millisecond {
		t.Errorf("best path moved after %s: expected it only when BIRD's 3 s hold timer expires", moved)
	}
	b.unsilence(1)
	b.waitRoute(30*time.Second, gipPreempt+"/32", want{best: nh1, bestLen: 1, other: nh2, otherLen: 4})
}

func mustPaths(t testing.TB, b *bgpLab, prefix string) []bgpPath {
	t.Helper()
	ps, err := b.bird.paths(prefix)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}
