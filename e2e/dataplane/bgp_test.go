package dataplane

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

// bgpLab is a router namespace running BIRD or FRR with the configuration
// of docs/dataplane.md (AS 65000, three DCs) and n DC namespaces, each
// linked to the router by its own veth: router side to-dcI 10.0.I.1/24 and
// 2001:db8:I::1/64, DC side eth0 10.0.I.2/24 and 2001:db8:I::2/64, default
// routes via the router, which forwards (the DCs' federation traffic goes
// through it). DC I runs vipsmart with the BGP announcer in AS 6500I, one
// IPv4 and one IPv6 session to the router.
type bgpLab struct {
	t    testing.TB
	kind routerKind
	l    *lab
	r    string
	rt   router
	dcs  []*dc
}

func dcIP(i int) string      { return fmt.Sprintf("10.0.%d.2", i) }
func dcIP6(i int) string     { return fmt.Sprintf("2001:db8:%d::2", i) }
func routerIP(i int) string  { return fmt.Sprintf("10.0.%d.1", i) }
func routerIP6(i int) string { return fmt.Sprintf("2001:db8:%d::1", i) }
func dcASN(i int) uint32     { return uint32(65000 + i) }

const routerASN = 65000

// bgpFlags are the BGP flags of DC i: the same settings as the documented
// vipsmart.yaml, but the daemon does not listen (the routers connect to
// it in vain and accept its connections).
func bgpFlags(i int) []string {
	return []string{"--announcer", "bgp", "--bgp-asn", strconv.Itoa(int(dcASN(i))), "--bgp-router-id", dcIP(i),
		"--bgp-peer", routerIP(i) + "," + strconv.Itoa(routerASN), "--bgp-peer", routerIP6(i) + "," + strconv.Itoa(routerASN),
		"--bgp-listen-port", "-1"}
}

// newBGPLab builds the namespaces and the router, and prepares (does not
// start) the daemons, each with bgpFlags plus extra.
func newBGPLab(t testing.TB, k routerKind, n int, extra ...string) *bgpLab {
	t.Helper()
	b := &bgpLab{t: t, kind: k, l: newLab(t)}
	b.r = b.l.ns("r")
	nsExec(t, b.r, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward; echo 1 > /proc/sys/net/ipv6/conf/all/forwarding")
	for i := 1; i <= n; i++ {
		ns := b.l.ns("dc" + strconv.Itoa(i))
		// Keep the IPv6 address when the link goes down (as IPv4 does),
		// for the link-cut tests.
		nsExec(t, ns, "sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/keep_addr_on_down")
		b.l.veth(b.r, "to-dc"+strconv.Itoa(i), routerIP(i)+"/24", ns, "eth0", dcIP(i)+"/24")
		sh(t, "ip", "-n", b.r, "addr", "add", routerIP6(i)+"/64", "dev", "to-dc"+strconv.Itoa(i), "nodad")
		sh(t, "ip", "-n", ns, "addr", "add", dcIP6(i)+"/64", "dev", "eth0", "nodad")
		sh(t, "ip", "-n", ns, "route", "add", "default", "via", routerIP(i))
		sh(t, "ip", "-n", ns, "-6", "route", "add", "default", "via", routerIP6(i))
		flags := append(bgpFlags(i), extra...)
		b.dcs = append(b.dcs, newDC(t, "dc-"+strconv.Itoa(i), ns, dcIP(i), flags...))
	}
	b.rt = startRouter(t, k, b.r)
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
// loses carrier and drops the sessions at once. heal sets it up again.
func (b *bgpLab) cut(i int) {
	sh(b.t, "ip", "-n", b.dcs[i-1].ns, "link", "set", "eth0", "down")
}

func (b *bgpLab) heal(i int) {
	ns := b.dcs[i-1].ns
	sh(b.t, "ip", "-n", ns, "link", "set", "eth0", "up")
	// The routes come back once the link is up (carrier and the prefix
	// routes take a moment).
	eventually(b.t, 10*time.Second, "default routes back", func() error {
		for _, args := range [][]string{{"route", "replace", "default", "via", routerIP(i)}, {"-6", "route", "replace", "default", "via", routerIP6(i)}} {
			if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
				return fmt.Errorf("ip %v: %v %s", args, err, out)
			}
		}
		return nil
	})
}

// drop makes DC i drop every packet it sends or receives on its uplink,
// links up: a path filtered somewhere, as the router and the other DCs see
// it (no FIN, no RST, no link event). undrop lets them through again.
func (b *bgpLab) drop(i int)   { dropAll(b.t, b.dcs[i-1].ns, "-A") }
func (b *bgpLab) undrop(i int) { dropAll(b.t, b.dcs[i-1].ns, "-D") }

// dropAll adds (op -A) or deletes (-D) the rules that drop everything in
// and out of eth0 in ns: IPv4 first, in one iptables-restore each (one
// process: the failure starts within milliseconds of the call).
func dropAll(t testing.TB, ns, op string) {
	t.Helper()
	rules := "*filter\n" + op + " OUTPUT -o eth0 -j DROP\n" + op + " INPUT -i eth0 -j DROP\nCOMMIT\n"
	for _, tool := range []string{"iptables-restore", "ip6tables-restore"} {
		cmd := exec.Command("ip", "netns", "exec", ns, tool, "--noflush")
		cmd.Stdin = strings.NewReader(rules)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s in %s: %v\n%s", tool, op, ns, err, out)
		}
	}
}

// freeze stops DC i's daemon with SIGSTOP (a hung host: its kernel still
// answers TCP, the process sends nothing); thaw resumes it.
func (b *bgpLab) freeze(i int) { _ = b.dcs[i-1].p.cmd.Process.Signal(syscall.SIGSTOP) }
func (b *bgpLab) thaw(i int)   { _ = b.dcs[i-1].p.cmd.Process.Signal(syscall.SIGCONT) }

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

// waitRoute polls the router until prefix matches w and returns how long
// it took.
func (b *bgpLab) waitRoute(timeout time.Duration, prefix string, w want) time.Duration {
	b.t.Helper()
	return eventually(b.t, timeout, string(b.kind)+" route "+prefix, func() error {
		ps, err := b.rt.paths(prefix)
		if err != nil {
			return err
		}
		return w.check(ps)
	})
}

// waitMoved polls the router every millisecond until the best path of
// prefix is via next hop nh, and returns how long after start that was.
func (b *bgpLab) waitMoved(start time.Time, timeout time.Duration, prefix, nh string) time.Duration {
	b.t.Helper()
	for {
		ps, err := b.rt.paths(prefix)
		if err != nil {
			b.t.Fatal(err)
		}
		for _, p := range ps {
			if p.best && p.via == nh {
				return time.Since(start)
			}
		}
		if time.Since(start) > timeout {
			b.t.Fatalf("%s: best path of %s not via %s within %s: %v", b.kind, prefix, nh, timeout, ps)
		}
		time.Sleep(time.Millisecond)
	}
}

func (b *bgpLab) mustPaths(prefix string) []bgpPath {
	b.t.Helper()
	ps, err := b.rt.paths(prefix)
	if err != nil {
		b.t.Fatal(err)
	}
	return ps
}

// waitBFD waits until the router's BFD session with neighbor is up.
func (b *bgpLab) waitBFD(neighbor string) {
	b.t.Helper()
	eventually(b.t, 20*time.Second, string(b.kind)+" BFD with "+neighbor+" up", func() error {
		st, err := b.rt.bfd(neighbor)
		if err == nil && st != "up" {
			err = fmt.Errorf("BFD state %q", st)
		}
		return err
	})
}

// peers returns `vipsmart bgp peers -o json` of d.
func peers(t testing.TB, d *dc) []vipsmart.BGPPeer {
	t.Helper()
	var ps []vipsmart.BGPPeer
	if err := json.Unmarshal([]byte(d.cli("-o", "json", "bgp", "peers")), &ps); err != nil {
		t.Fatal(err)
	}
	return ps
}

func peerOf(ps []vipsmart.BGPPeer, addr string) vipsmart.BGPPeer {
	for _, p := range ps {
		if p.Address.String() == addr {
			return p
		}
	}
	return vipsmart.BGPPeer{}
}

const (
	gipPreempt   = "203.0.113.1"
	gipNoPreempt = "203.0.113.2"
	gip6         = "2001:db8:100::1"
	vipAddr      = "198.18.0.20"
	// bfdBound is what the tests allow for the router's best path to move
	// after a DC falls silent with BFD at its defaults (detection 300 ms):
	// a generous margin, yet far below the 9 s hold time that moves it
	// without BFD.
	bfdBound = 2 * time.Second
)

// TestBGP runs two DCs with BFD announcing to a real router (BIRD, then
// FRR, each with the documented configuration) and checks the router's
// table: a VIP route; IPv4 and IPv6 failover GIPs whose best path is the
// active DC and whose alternate (the standby DC, AS path prepended 3
// times) is already there; BFD up at the router and in `bgp peers`; a peer
// that never comes up shown as such; kill -9 and a link cut of the active
// DC moving the best path; recovery moving it back with preempt and not
// without; and a silent failure of the active DC (packets dropped with
// links up, then SIGSTOP) moving the best path within the BFD bound.
func TestBGP(t *testing.T) {
	forEachRouter(t, func(t *testing.T, k routerKind) {
		need(t, "iptables", "ip6tables")
		// dc-1 runs with the documented vipsmart.yaml as written (BGP and
		// BFD from the config file; the harness's --listen and --data-dir
		// flags take precedence); dc-2 with flags, and a third peer that
		// never comes up.
		b := newBGPLab(t, k, 2, "--bgp-bfd")
		conf := filepath.Join(t.TempDir(), "vipsmart.yaml")
		if err := os.WriteFile(conf, []byte(docConfig(t, "vipsmart.yaml")), 0o644); err != nil {
			t.Fatal(err)
		}
		b.dcs[0].extra = []string{"--config", conf}
		b.dcs[1].extra = append(b.dcs[1].extra, "--bgp-peer", "10.0.2.99,65000")
		b.federate()
		d1, d2 := b.dcs[0], b.dcs[1]
		nh1, nh2, nh61, nh62 := dcIP(1), dcIP(2), dcIP6(1), dcIP6(2)

		d2.cli("vip", "add", "web", vipAddr)
		d1.cli("gip", "add", "g1", gipPreempt, "--placement", "dc-1:200", "--placement", "dc-2:100")
		d1.cli("gip", "add", "g2", gipNoPreempt, "--placement", "dc-1:200", "--placement", "dc-2:100", "--preempt=false")
		d1.cli("gip", "add", "g6", gip6, "--placement", "dc-1:200", "--placement", "dc-2:100")

		// dc-2's VIP: one path, from AS 65002. The GIPs: best via dc-1
		// (AS path 65001), dc-2's standby present with 65002 four times
		// (its own AS plus the 3 prepended); the IPv6 GIP likewise, with
		// the DCs' IPv6 addresses as next hops.
		b.waitRoute(20*time.Second, vipAddr+"/32", want{best: nh2, bestLen: 1, other: nh1, otherLen: -1})
		for _, g := range []string{gipPreempt, gipNoPreempt} {
			b.waitRoute(20*time.Second, g+"/32", want{best: nh1, bestLen: 1, other: nh2, otherLen: 4})
		}
		b.waitRoute(20*time.Second, gip6+"/128", want{best: nh61, bestLen: 1, other: nh62, otherLen: 4})
		t.Logf("%s: %s %v; %s %v", k, gipPreempt, b.mustPaths(gipPreempt+"/32"), gip6, b.mustPaths(gip6+"/128"))

		// BFD is up at the router for every session, and vipsmart says so.
		for _, n := range []string{nh1, nh2, nh61, nh62} {
			b.waitBFD(n)
		}
		eventually(t, 10*time.Second, "dc-1's bgp peers: both established with BFD up, routes sent", func() error {
			ps := peers(t, d1)
			for _, a := range []string{routerIP(1), routerIP6(1)} {
				p := peerOf(ps, a)
				if p.State != "established" || p.BFD != "up" || p.RoutesSent < 1 || p.Uptime == nil {
					return fmt.Errorf("peer %s: %+v", a, p)
				}
			}
			return nil
		})
		// dc-2's third peer never came up: shown as such, and the VIP
		// is announced, though not to it.
		never := peerOf(peers(t, d2), "10.0.2.99")
		if never.State == "established" || never.LastError != "never established" || never.RoutesSent != 0 {
			t.Errorf("the peer that never comes up: %+v", never)
		}
		st, err := d2.status()
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range st.Announced {
			if a.Addr.String() == vipAddr && (a.State != vipsmart.AnnounceUp || !strings.Contains(a.Reason, "not sent to 10.0.2.99")) {
				t.Errorf("dc-2's VIP in status: %+v", a)
			}
		}
		if out := d2.cli("status"); !strings.Contains(out, "10.0.2.99") || !strings.Contains(out, "never established") {
			t.Errorf("dc-2's status does not show the peer that never came up:\n%s", out)
		}

		// kill -9 of dc-1's daemon. The kernel closes its TCP sessions
		// (FIN), so the router withdraws dc-1's routes at once and the
		// best path moves to dc-2's standby path, which it already held;
		// then dc-2's heartbeats declare dc-1 dead and it re-announces the
		// GIPs as active (no prepending).
		start := time.Now()
		d1.p.kill()
		moved := b.waitMoved(start, 10*time.Second, gipPreempt+"/32", nh2)
		moved6 := b.waitMoved(start, 10*time.Second, gip6+"/128", nh62)
		t.Logf("%s: kill -9 of dc-1: best path of %s moved to dc-2 after %s, of %s after %s", k, gipPreempt, moved.Round(time.Millisecond), gip6, moved6.Round(time.Millisecond))
		b.waitRoute(10*time.Second, gipPreempt+"/32", want{best: nh2, bestLen: 1})
		b.waitRoute(10*time.Second, gipNoPreempt+"/32", want{best: nh2, bestLen: 1, other: nh1, otherLen: -1})
		b.waitRoute(10*time.Second, gip6+"/128", want{best: nh62, bestLen: 1, other: nh61, otherLen: -1})
		t.Logf("%s: kill -9 of dc-1: dc-2 announces the GIPs as active after %s", k, time.Since(start).Round(time.Millisecond))

		// dc-1 comes back (same data directory: still a member). g1 and
		// g6 (preempt) move back to it and dc-2 goes back to standby; g2
		// (preempt off) stays on dc-2 and dc-1 pre-announces its standby
		// path.
		start = time.Now()
		d1.start()
		back := b.waitRoute(30*time.Second, gipPreempt+"/32", want{best: nh1, bestLen: 1, other: nh2, otherLen: 4})
		b.waitRoute(10*time.Second, gip6+"/128", want{best: nh61, bestLen: 1, other: nh62, otherLen: 4})
		b.waitRoute(10*time.Second, gipNoPreempt+"/32", want{best: nh2, bestLen: 1, other: nh1, otherLen: 4})
		t.Logf("%s: dc-1 restarted: %s back on dc-1 after %s; %s stays on dc-2 (preempt off)", k, gipPreempt, back.Round(time.Millisecond), gipNoPreempt)
		time.Sleep(time.Second) // and it stays: a second look after dc-1's detection window
		if err := (want{best: nh2, bestLen: 1, other: nh1, otherLen: 4}).check(b.mustPaths(gipNoPreempt + "/32")); err != nil {
			t.Errorf("%s (preempt off) after dc-1 came back: %v", gipNoPreempt, err)
		}

		// Cut dc-1's uplink. The router sees its veth lose carrier and
		// drops the sessions at once: the best path moves to dc-2's
		// standby path, and dc-2 announces the GIP as active once its
		// heartbeats declare dc-1 dead. dc-1, cut off, says its addresses
		// are pending (no established session) and why, at warn level.
		start = time.Now()
		b.cut(1)
		moved = b.waitMoved(start, 15*time.Second, gipPreempt+"/32", nh2)
		b.waitRoute(15*time.Second, gipPreempt+"/32", want{best: nh2, bestLen: 1, other: nh1, otherLen: -1})
		t.Logf("%s: dc-1's link cut: best path of %s moved to dc-2 after %s, active on dc-2 after %s", k, gipPreempt,
			moved.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		eventually(t, 15*time.Second, "dc-1 takes g2 on its side of the partition and shows its addresses pending", func() error {
			var gi vipsmart.GIPInfo
			if err := d1.get("/v1/gips/g2", &gi); err != nil || !slices.Equal(gi.Active, []string{"dc-1"}) {
				return fmt.Errorf("g2 active on %v (%v)", gi.Active, err)
			}
			st, err := d1.status()
			if err != nil {
				return err
			}
			for _, a := range st.Announced {
				if a.Addr.String() == gipPreempt && a.State == vipsmart.AnnouncePending && strings.HasPrefix(a.Reason, "no established BGP session") {
					return nil
				}
			}
			return fmt.Errorf("dc-1's announced: %+v", st.Announced)
		})
		if out := d1.cli("status"); !strings.Contains(out, "pending: no established BGP session") {
			t.Errorf("dc-1's status table does not say its GIP is pending:\n%s", out)
		}
		if ok, log := hasEvent(t, d1, "announce", vipsmart.LevelWarn, "BGP session to "+routerIP(1)+" (AS 65000) down"); !ok {
			t.Errorf("dc-1's events have no warning of the session going down:\n%s", log)
		}

		// Heal. g1 goes back to dc-1 (preempt). g2: during the cut both
		// DCs held it and, preempt off, "the best of the previously
		// active placements stays" (docs/gips.md): it moves to dc-1.
		b.heal(1)
		back = b.waitRoute(30*time.Second, gipPreempt+"/32", want{best: nh1, bestLen: 1, other: nh2, otherLen: 4})
		t.Logf("%s: dc-1's link healed: %s back on dc-1 after %s", k, gipPreempt, back.Round(time.Millisecond))
		b.waitRoute(10*time.Second, gipNoPreempt+"/32", want{best: nh1, bestLen: 1, other: nh2, otherLen: 4})
		b.waitRoute(10*time.Second, gip6+"/128", want{best: nh61, bestLen: 1, other: nh62, otherLen: 4})

		// Silent failures: dc-1 drops every packet on its uplink (links
		// up), then its daemon is frozen (SIGSTOP). No FIN, no link event
		// reaches the router: without BFD it would keep dc-1's routes for
		// the 9 s hold time. With BFD it drops dc-1's sessions after 3
		// missed packets, and the best path moves within the BFD bound.
		for _, how := range []struct {
			name       string
			fail, heal func(int)
		}{{"packets dropped", b.drop, b.undrop}, {"SIGSTOP", b.freeze, b.thaw}} {
			b.waitBFD(nh1)
			b.waitBFD(nh61)
			start = time.Now()
			how.fail(1)
			moved = b.waitMoved(start, 15*time.Second, gipPreempt+"/32", nh2)
			moved6 = b.waitMoved(start, 15*time.Second, gip6+"/128", nh62)
			t.Logf("%s: dc-1 silent (%s): best path of %s moved to dc-2 after %s, of %s after %s (BFD)", k, how.name,
				gipPreempt, moved.Round(time.Millisecond), gip6, moved6.Round(time.Millisecond))
			if moved > bfdBound || moved6 > bfdBound {
				t.Errorf("%s: the best path moved %s / %s after dc-1 fell silent (%s): want within %s with BFD", k, moved, moved6, how.name, bfdBound)
			}
			b.waitRoute(15*time.Second, gipPreempt+"/32", want{best: nh2, bestLen: 1, other: nh1, otherLen: -1})
			how.heal(1)
			b.waitRoute(30*time.Second, gipPreempt+"/32", want{best: nh1, bestLen: 1, other: nh2, otherLen: 4})
		}
	})
}
