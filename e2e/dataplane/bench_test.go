package dataplane

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// Failover benchmarks. Each iteration fails the active side (kill -9 of its
// process, or its link set down), times how long until the data plane has
// moved, then restores it (not timed) and waits until everything is back.
// The figures are reported as p50-ms and p99-ms (with 20 runs, p99 is the
// slowest run).
//
//	go test ./e2e/dataplane -run '^$' -bench BenchmarkFailover -benchtime 20x -timeout 60m
//
// Sub-benchmarks (select with -bench 'BenchmarkFailover/bgp'):
//
//   - bgp/{kill,cut}/hb={200ms,100ms}: two DCs announcing a failover GIP
//     to BIRD (the documented config); best-moved is the time until BIRD's
//     best path for the GIP is dc-2's, active the time until it is dc-2's
//     active route (no prepending). kill: kill -9 of dc-1's daemon; cut:
//     dc-1's link down (BIRD sees the carrier go). Silent failures (no
//     FIN, no link event) are BenchmarkSilentFailure's.
//   - netlink/{kill,cut}/hb={200ms,100ms}: two DCs with the netlink
//     announcer on a bridge with a client; the time until an ICMP echo from
//     the client is answered while its ARP entry points at dc-2 (for kill,
//     the dead DC's stale address still answers until dc-2's gratuitous
//     ARP moves the client's entry: that move is what is timed).
//   - keepalived/cut/advert={1,0.1}: Debian's keepalived (VRRPv3) moving
//     the same address between two namespaces, timed the same way.

// bestOf returns the best path of prefix at r (ok false when none).
func bestOf(r router, prefix string) (bgpPath, bool, error) {
	ps, err := r.paths(prefix)
	for _, p := range ps {
		if p.best {
			return p, true, err
		}
	}
	return bgpPath{}, false, err
}

// report adds p50/p99 of ds under unit prefix name.
func report(b *testing.B, name string, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	q := func(p float64) time.Duration { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
	b.ReportMetric(float64(q(0.5).Microseconds())/1000, name+"-p50-ms")
	b.ReportMetric(float64(q(0.99).Microseconds())/1000, name+"-p99-ms")
	b.ReportMetric(0, "ns/op")
}

var heartbeats = []struct{ name, flag string }{{"hb=200ms", "200ms"}, {"hb=100ms", "100ms"}}

func BenchmarkFailover(b *testing.B) {
	b.Run("bgp", func(b *testing.B) {
		for _, how := range []string{"kill", "cut"} {
			for _, hb := range heartbeats {
				b.Run(how+"/"+hb.name, func(b *testing.B) { benchBGP(b, how, hb.flag) })
			}
		}
	})
	b.Run("netlink", func(b *testing.B) {
		for _, how := range []string{"kill", "cut"} {
			for _, hb := range heartbeats {
				b.Run(how+"/"+hb.name, func(b *testing.B) { benchNetlink(b, how, hb.flag) })
			}
		}
	})
	b.Run("keepalived", func(b *testing.B) {
		for _, adv := range []string{"1", "0.1"} {
			b.Run("cut/advert="+adv, func(b *testing.B) { benchKeepalived(b, adv) })
		}
	})
}

func benchBGP(b *testing.B, how, hb string) {
	need(b, "bird")
	x := newBGPLab(b, birdRouter, 2, "--heartbeat-interval", hb)
	x.federate()
	x.dcs[0].cli("gip", "add", "g1", gipPreempt, "--placement", "dc-1:200", "--placement", "dc-2:100")
	prefix := gipPreempt + "/32"
	steady := want{best: dcIP(1), bestLen: 1, other: dcIP(2), otherLen: 4}
	x.waitRoute(30*time.Second, prefix, steady)
	var moved, active []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		switch how {
		case "kill":
			x.dcs[0].p.kill()
		default:
			x.cut(1)
		}
		var movedAt time.Duration
		deadline := start.Add(20 * time.Second)
		for {
			best, ok, err := bestOf(x.rt, prefix)
			if err != nil {
				b.Fatal(err)
			}
			if ok && best.via == dcIP(2) {
				if movedAt == 0 {
					movedAt = time.Since(start)
				}
				if len(best.asPath) == 1 {
					active = append(active, time.Since(start))
					break
				}
			}
			if time.Now().After(deadline) {
				b.Fatalf("run %d: best path of %s did not move to dc-2 within 20s", i, prefix)
			}
			time.Sleep(time.Millisecond)
		}
		moved = append(moved, movedAt)
		b.StopTimer()
		switch how {
		case "kill":
			x.dcs[0].start()
		default:
			x.heal(1)
		}
		x.waitRoute(60*time.Second, prefix, steady)
		b.StartTimer()
	}
	b.StopTimer()
	report(b, "best-moved", moved)
	report(b, "active", active)
}

func benchNetlink(b *testing.B, how, hb string) {
	need(b)
	x := newLANLab(b)
	client := x.host("client", 100)
	ds := x.netlinkDCs("--heartbeat-interval", hb)
	p := newPinger(b, client)
	ds[0].cli("gip", "add", "g", lanVIP, "--placement", "dc-1:200", "--placement", "dc-2:100")
	waitOwner(b, client, p, ds[0].ns, "steady", 30*time.Second)
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if how == "kill" {
			ds[0].p.kill()
		} else {
			sh(b, "ip", "-n", ds[0].ns, "link", "set", "eth0", "down")
		}
		at := waitOwner(b, client, p, ds[1].ns, fmt.Sprintf("run %d", i), 20*time.Second)
		lat = append(lat, at.Sub(start))
		b.StopTimer()
		if how == "kill" {
			ds[0].start() // removes the stale address, takes the GIP back with a gratuitous ARP
		} else {
			sh(b, "ip", "-n", ds[0].ns, "link", "set", "eth0", "up")
			// dc-1 kept the address through the cut and sends no gratuitous
			// ARP when it heals (see BENCHMARKS-dataplane.md): forget the
			// client's entry instead of waiting for it to fail.
			eventually(b, 20*time.Second, "dc-2 unbinds the GIP", func() error {
				if hasAddr(b, ds[1].ns, "eth0", lanVIP) {
					return fmt.Errorf("dc-2 still has it")
				}
				return nil
			})
			sh(b, "ip", "-n", client, "neigh", "flush", "to", lanVIP)
		}
		waitOwner(b, client, p, ds[0].ns, "restored", 30*time.Second)
		b.StartTimer()
	}
	b.StopTimer()
	report(b, "answers", lat)
}

// startKeepalived runs keepalived (VRRP only, VRRPv3, one instance holding
// lanVIP on eth0, preempting) in ns.
func startKeepalived(t testing.TB, ns, role string, prio int, advert string) *proc {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global_defs {
	router_id %s
	vrrp_version 3
	enable_script_security
}
vrrp_instance VI {
	state BACKUP
	interface eth0
	virtual_router_id 51
	priority %d
	advert_int %s
	virtual_ipaddress {
		%s/32 dev eth0
	}
}
`, role, prio, advert, lanVIP)
	conf := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return startProc(t, ns, "keepalived "+role, "keepalived", "--dont-fork", "--log-console", "--log-detail", "--vrrp",
		"--use-file", conf, "--pid", filepath.Join(dir, "k.pid"), "--vrrp_pid", filepath.Join(dir, "v.pid"),
		"--checkers_pid", filepath.Join(dir, "c.pid"))
}

func benchKeepalived(b *testing.B, advert string) {
	need(b, "keepalived")
	x := newLANLab(b)
	client := x.host("client", 100)
	ka := x.host("ka", 1)
	kb := x.host("kb", 2)
	startKeepalived(b, ka, "ka", 200, advert)
	kbp := startKeepalived(b, kb, "kb", 100, advert)
	p := newPinger(b, client)
	waitOwner(b, client, p, ka, "steady", 30*time.Second)
	if !strings.Contains(kbp.logs.String(), "BACKUP") {
		b.Logf("keepalived kb output:\n%s", kbp.logs.String())
	}
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		sh(b, "ip", "-n", ka, "link", "set", "eth0", "down")
		at := waitOwner(b, client, p, kb, fmt.Sprintf("run %d", i), 20*time.Second)
		lat = append(lat, at.Sub(start))
		b.StopTimer()
		sh(b, "ip", "-n", ka, "link", "set", "eth0", "up")
		eventually(b, 20*time.Second, "kb goes back to backup", func() error {
			if hasAddr(b, kb, "eth0", lanVIP) {
				return fmt.Errorf("kb still has it")
			}
			return nil
		})
		sh(b, "ip", "-n", client, "neigh", "flush", "to", lanVIP)
		waitOwner(b, client, p, ka, "restored", 30*time.Second)
		b.StartTimer()
	}
	b.StopTimer()
	report(b, "answers", lat)
}
