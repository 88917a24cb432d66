package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/etcd/etcdtest"
)

// BenchmarkHAFailover measures leader failover of a DC run by 3 nodes on
// a 3-member etcd, federated with a one-node DC: 20 times (whatever b.N),
// kill -9 of the leader, then the time until a new leader serves the
// federation (its log line "vipsmart serving", written once its
// federation listener answers as the leader, timestamped by the
// daemon). The killed node is restarted (as a supervisor would) before
// the next run. It also reports the RSS of each node.
//
//	VIPSMART_ETCD=/path/to/etcd go test ./e2e -run '^$' -bench BenchmarkHAFailover -benchtime 1x
func BenchmarkHAFailover(b *testing.B) {
	runs := 20
	if v, err := strconv.Atoi(os.Getenv("VIPSMART_HA_RUNS")); err == nil && v > 0 {
		runs = v
	}
	h := startHAB(b)
	var lat []time.Duration
	for i := 0; i < runs; i++ {
		l := h.waitLeaderB(b)
		marks := map[*daemon]int{}
		for _, d := range h.nodes {
			marks[d] = len(d.Logs())
		}
		start := time.Now()
		l.kill()
		var took time.Duration
		deadline := time.Now().Add(20 * time.Second)
		for took == 0 && time.Now().Before(deadline) {
			for _, d := range h.nodes {
				if d == l {
					continue
				}
				logs := d.Logs()[marks[d]:]
				if k := strings.Index(logs, `msg="vipsmart serving"`); k >= 0 {
					line := logs[strings.LastIndex(logs[:k], "\n")+1:]
					ts, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(strings.Fields(line)[0], "time="))
					if err != nil {
						b.Fatalf("log time of %q: %v", line, err)
					}
					took = ts.Sub(start)
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		if took == 0 {
			b.Fatalf("run %d: no new leader within 20s", i)
		}
		lat = append(lat, took)
		l.start()
	}
	reportLatencies(b, lat)
	var rss []string
	for _, d := range append(h.nodes, h.other) {
		rss = append(rss, fmt.Sprintf("%s/%d=%dKiB", d.name, d.cmd.Process.Pid, vmRSS(b, d.cmd.Process.Pid)))
	}
	b.Logf("failover (kill -9 to new leader serving), %d runs: %v", runs, lat)
	b.Logf("RSS: %s", strings.Join(rss, " "))
	var sum int
	for _, d := range h.nodes {
		sum += vmRSS(b, d.cmd.Process.Pid)
	}
	b.ReportMetric(float64(sum)/float64(len(h.nodes))/1024, "MiB-RSS/node")
}

func vmRSS(b testing.TB, pid int) int {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// startHAB is startHA for benchmarks: 3 nodes of dc-1 and dc-2,
// federated, one GIP.
func startHAB(b *testing.B) *haDC {
	c := etcdtest.Start(b, etcdtest.Options{Members: 3})
	h := &haDC{etcd: c}
	eps := strings.Join(c.Endpoints(), ",")
	for i := range 3 {
		h.nodes = append(h.nodes, startDaemon(b, "dc-1", append([]string{"--store", "etcd", "--etcd-endpoints", eps, "--node", fmt.Sprintf("n%d", i+1)}, haTimers...)...))
	}
	h.other = startDaemon(b, "dc-2", haTimers...)
	l := h.waitLeaderB(b)
	mustDCAdd(b, l, h.other)
	mustCLI(b, l.server(), "gip", "add", "www", "203.0.113.10", "--placement", "dc-1:200,dc-2:100")
	return h
}

// waitLeaderB waits until one running node leads and answers.
func (h *haDC) waitLeaderB(b *testing.B) *daemon {
	var leader *daemon
	eventually(b, 30*time.Second, "a leader", func() error {
		for _, d := range h.running() {
			ns, err := nodeList(b, d)
			if err != nil {
				return err
			}
			for _, n := range ns {
				if n.Role == vipsmart.RoleLeader {
					for i, x := range h.nodes {
						if fmt.Sprintf("n%d", i+1) == n.Name {
							leader = x
						}
					}
				}
			}
			if len(ns) != len(h.running()) {
				return fmt.Errorf("%d nodes listed", len(ns))
			}
		}
		if leader == nil {
			return fmt.Errorf("no leader")
		}
		_, err := leader.client().Status(context.Background())
		return err
	})
	return leader
}

// BenchmarkGIPAddStore measures `gip add` in federations of 2 and 5 DCs
// whose daemons keep their state on bolt or on one shared 3-member etcd
// (each DC under its own prefix), side by side.
//
//	VIPSMART_ETCD=/path/to/etcd go test ./e2e -run '^$' -bench BenchmarkGIPAddStore -benchtime 30x
func BenchmarkGIPAddStore(b *testing.B) {
	for _, store := range []string{"bolt", "etcd"} {
		for _, n := range []int{2, 5} {
			b.Run(fmt.Sprintf("store=%s/members=%d", store, n), func(b *testing.B) {
				var flags []string
				if store == "etcd" {
					c := etcdtest.Start(b, etcdtest.Options{Members: 3})
					flags = []string{"--store", "etcd", "--etcd-endpoints", strings.Join(c.Endpoints(), ","), "--node", "n1"}
				}
				ds := startFederation(b, n, flags...)
				waitSettled(b, ds)
				c := ds[0].client()
				ctx := context.Background()
				var lat []time.Duration
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					g := vipsmart.GIP{Name: "bench", Address: netip.MustParseAddr("203.0.113.7"), Mode: vipsmart.ModeFailover, Preempt: true,
						Placements: []vipsmart.Placement{{DC: "dc-1", Priority: 200}, {DC: ds[n-1].name, Priority: 100}}}
					start := time.Now()
					if _, err := c.AddGIP(ctx, g); err != nil {
						b.Fatalf("gip add: %v", err)
					}
					lat = append(lat, time.Since(start))
					b.StopTimer()
					waitSettled(b, ds)
					if err := c.RemoveGIP(ctx, "bench"); err != nil {
						b.Fatalf("gip remove: %v", err)
					}
					waitSettled(b, ds)
					b.StartTimer()
				}
				b.StopTimer()
				reportLatencies(b, lat)
			})
		}
	}
}
