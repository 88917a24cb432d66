package dataplane

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/etcd/etcdtest"
)

// haDocConfig returns the configuration marked `<!-- config: name -->` in
// docs/ha.md, as written.
func haDocConfig(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("../../docs/ha.md")
	if err != nil {
		t.Fatal(err)
	}
	marker := "<!-- config: " + name + " -->"
	i := bytes.Index(b, []byte(marker))
	if i < 0 {
		t.Fatalf("docs/ha.md has no %s", marker)
	}
	rest := string(b[i+len(marker):])
	rest = rest[strings.Index(rest, "```")+3:]
	rest = rest[strings.Index(rest, "\n")+1:]
	return rest[:strings.Index(rest, "```")]
}

// haNode is node i of dc-1 (namespace n<i>, address 10.0.i.2, peering
// with the router at 10.0.i.1 in AS 65001, etcd at 10.0.1.1:2379).
func haNode(t testing.TB, l *lab, r string, i int) *dc {
	ns := l.ns("n" + strconv.Itoa(i))
	l.veth(r, "to-n"+strconv.Itoa(i), routerIP(i)+"/24", ns, "eth0", dcIP(i)+"/24")
	sh(t, "ip", "-n", ns, "route", "add", "default", "via", routerIP(i))
	return newDC(t, "dc-1", ns, dcIP(i), "--store", "etcd", "--etcd-endpoints", "http://"+routerIP(1)+":2379",
		"--node", "n"+strconv.Itoa(i), "--announcer", "bgp", "--bgp-asn", "65001", "--bgp-router-id", dcIP(i),
		"--bgp-peer", routerIP(i)+",65000", "--bgp-listen-port", "-1")
}

// haLeader returns the leader's name as `node list` on d shows it ("" if
// none).
func haLeader(d *dc) (string, error) {
	var ns []vipsmart.NodeInfo
	if err := d.get("/v1/nodes", &ns); err != nil {
		return "", err
	}
	for _, n := range ns {
		if n.Role == vipsmart.RoleLeader {
			return n.Name, nil
		}
	}
	return "", nil
}

// vias returns the next hops of the router's paths of prefix, sorted, and
// checks that every path comes from dc-1 (AS path 65001 alone).
func vias(ps []bgpPath) ([]string, error) {
	var out []string
	for _, p := range ps {
		if !slices.Equal(p.asPath, []string{"65001"}) {
			return nil, fmt.Errorf("path %v is not dc-1's own (AS path 65001)", p)
		}
		out = append(out, p.via)
	}
	slices.Sort(out)
	return out, nil
}

// TestHABGPEveryNodeAnnounces: three nodes of dc-1 (on etcd, run in the
// router's namespace) each peer with a BIRD router and each announce the
// GIP dc-1 is active for; dc-2 (one node, bolt) holds the standby
// placement. kill -9 of a follower removes only its path; restarted, it
// announces again; kill -9 of the leader removes only its path while the
// other nodes' paths stay in the router throughout (sampled continuously)
// and one of them leads on; SIGTERM of a follower withdraws its path. A
// GIP added and removed through followers comes and goes on every node.
// dc-2 never takes the GIP.
func TestHABGPEveryNodeAnnounces(t *testing.T) {
	need(t, "bird")
	etcdBin := etcdtest.Need(t)
	l := newLab(t)
	r := l.ns("r")
	nsExec(t, r, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
	var nodes []*dc
	for i := 1; i <= 3; i++ {
		nodes = append(nodes, haNode(t, l, r, i))
	}
	ns2 := l.ns("dc2")
	l.veth(r, "to-dc2", routerIP(4)+"/24", ns2, "eth0", dcIP(4)+"/24")
	sh(t, "ip", "-n", ns2, "route", "add", "default", "via", routerIP(4))
	dc2 := newDC(t, "dc-2", ns2, dcIP(4))

	// One etcd member in the router's namespace, on the router's address
	// towards n1 (every node reaches it through its default route).
	etcdURL := "http://" + routerIP(1) + ":2379"
	startProc(t, r, "etcd", etcdBin, "--name", "m0", "--data-dir", filepath.Join(t.TempDir(), "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--initial-cluster", "m0=http://127.0.0.1:2380", "--log-level", "warn")
	hc := httpIn(r)
	eventually(t, 20*time.Second, "etcd healthy", func() error {
		resp, err := hc.Get(etcdURL + "/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("etcd /health: %s", resp.Status)
		}
		return nil
	})
	rt := startBIRD(t, r, haDocConfig(t, "bird-ha.conf"))

	nodes[0].start()
	eventually(t, 20*time.Second, "n1 leads", func() error {
		if l, err := haLeader(nodes[0]); err != nil || l != "n1" {
			return fmt.Errorf("leader %q, %v", l, err)
		}
		return nil
	})
	nodes[1].start()
	nodes[2].start()
	dc2.start()
	nodes[0].dcAdd(dc2)
	waitMembers(t, nodes[0], dc2)
	const gip = gipPreempt
	prefix := gip + "/32"
	nodes[0].cli("gip", "add", "g1", gip, "--placement", "dc-1:200", "--placement", "dc-2:100")

	all := []string{dcIP(1), dcIP(2), dcIP(3)}
	paths := func() []string {
		t.Helper()
		ps, err := rt.paths(prefix)
		if err != nil {
			t.Fatal(err)
		}
		v, err := vias(ps)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	waitPaths := func(what string, timeout time.Duration, want []string) time.Duration {
		t.Helper()
		return eventually(t, timeout, what, func() error {
			if got := paths(); !slices.Equal(got, want) {
				return fmt.Errorf("paths of %s via %v, want %v", prefix, got, want)
			}
			return nil
		})
	}
	took := waitPaths("every node announces the GIP", 30*time.Second, all)
	t.Logf("all three nodes' paths at the router %v after gip add", took)

	// A change through a follower: every node announces the new GIP, then
	// withdraws it when it is removed.
	g2 := "203.0.113.7/32"
	nodes[1].cli("gip", "add", "g2", "203.0.113.7", "--placement", "dc-1:200", "--placement", "dc-2:100")
	eventually(t, 15*time.Second, "every node announces g2", func() error {
		ps, err := rt.paths(g2)
		if err != nil {
			return err
		}
		if v, err := vias(ps); err != nil || !slices.Equal(v, all) {
			return fmt.Errorf("paths of %s via %v (%v), want %v", g2, v, err, all)
		}
		return nil
	})
	nodes[2].cli("gip", "remove", "g2")
	eventually(t, 15*time.Second, "every node withdraws g2", func() error {
		if ps, err := rt.paths(g2); err != nil || len(ps) != 0 {
			return fmt.Errorf("paths of %s: %v (%v)", g2, ps, err)
		}
		return nil
	})

	// sample reads the router's paths every few milliseconds from kill on:
	// the paths of keep must be there at every sample; it returns when
	// the paths are exactly keep and until() holds, and reports the
	// samples taken and when the killed node's path went.
	sample := func(what string, keep []string, timeout time.Duration, until func() bool) {
		t.Helper()
		start := time.Now()
		n, gone := 0, time.Duration(0)
		for {
			got := paths()
			n++
			for _, k := range keep {
				if !slices.Contains(got, k) {
					t.Fatalf("%s: sample %d, %v after the kill: the path via %s is missing (paths %v)", what, n, time.Since(start), k, got)
				}
			}
			if gone == 0 && slices.Equal(got, keep) {
				gone = time.Since(start)
			}
			if gone > 0 && slices.Equal(got, keep) && until() {
				t.Logf("%s: %d samples over %v; the killed node's path went %v after the kill; the paths via %v were there at every sample", what, n, time.Since(start).Round(time.Millisecond), gone.Round(time.Millisecond), keep)
				return
			}
			if time.Since(start) > timeout {
				t.Fatalf("%s: after %v paths %v, want %v", what, timeout, got, keep)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	// kill -9 of a follower: only its path goes.
	nodes[2].p.kill()
	sample("kill -9 of follower n3", all[:2], 15*time.Second, func() bool { return true })
	// Held for 2 s more: nothing else changes.
	hold := time.Now().Add(2 * time.Second)
	sample("after the follower's kill", all[:2], 5*time.Second, func() bool { return time.Now().After(hold) })
	nodes[2].start()
	took = waitPaths("n3 announces again after its restart", 30*time.Second, all)
	t.Logf("restarted n3's path back %v after it answered", took)

	// kill -9 of the leader: only its path goes, the others stay
	// throughout, and one of them leads on (and keeps announcing past
	// its hold-down and the inheritance).
	nodes[0].p.kill()
	var newLeader string
	var led time.Time
	killed := time.Now()
	sample("kill -9 of leader n1", all[1:], 30*time.Second, func() bool {
		if newLeader == "" {
			if l, err := haLeader(nodes[1]); err == nil && (l == "n2" || l == "n3") {
				newLeader, led = l, time.Now()
				t.Logf("node %s leads %v after the kill", l, led.Sub(killed).Round(time.Millisecond))
			}
			return false
		}
		return time.Since(led) > 3*time.Second
	})

	// The new leader serves, and nothing moved to dc-2.
	var g vipsmart.GIPInfo
	if err := json.Unmarshal([]byte(nodes[1].cli("-o", "json", "gip", "show", "g1")), &g); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(g.Active, []string{"dc-1"}) {
		t.Fatalf("g1 active on %v after the failover; want dc-1", g.Active)
	}
	if ev := dc2.cli("events"); strings.Contains(ev, "g1 "+gip+" active here") || strings.Contains(ev, "dc-1 is unreachable") {
		t.Fatalf("dc-2 took the GIP or lost dc-1:\n%s", ev)
	}

	// SIGTERM of a follower: it withdraws its routes; the leader's stay.
	rest := []string{dcIP(2), dcIP(3)}
	var term *dc
	for i, n := range nodes[1:] {
		if "n"+strconv.Itoa(i+2) != newLeader {
			term, rest = n, slices.DeleteFunc(rest, func(ip string) bool { return ip == n.ip })
		}
	}
	if err := term.p.term(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitPaths("the stopped follower's path withdrawn", 10*time.Second, rest)
}
