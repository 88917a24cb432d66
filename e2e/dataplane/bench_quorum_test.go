package dataplane

import (
	"testing"
	"time"
)

// BenchmarkQuorumFailover times the failover of a GIP with each partition
// policy, side by side: three DCs announcing to BIRD, two GIPs placed
// dc-1:200, dc-2:100, dc-3:50, one available and one consistent, at
// default timers. Each iteration fails dc-1 (kill: kill -9 of its daemon;
// partition: its traffic to the other DCs dropped, its router link kept)
// and times, for each GIP, how long until BIRD holds an unprepended path
// via dc-2 (dc-2 active); then restores dc-1 (not timed) and waits until
// both GIPs are back on dc-1. Reported as p50-ms and p99-ms (with 20 runs,
// p99 is the slowest run).
//
//	flock /work/brief/bench.lock go test ./e2e/dataplane -run '^$' -bench BenchmarkQuorumFailover -benchtime 20x -timeout 60m
func BenchmarkQuorumFailover(b *testing.B) {
	for _, how := range []string{"kill", "partition"} {
		b.Run(how, func(b *testing.B) { benchQuorum(b, how) })
	}
}

func benchQuorum(b *testing.B, how string) {
	x := quorumLab(b, false)
	prefixes := map[string]string{"available": gipAvailable + "/32", "consistent": gipConsistent + "/32"}
	steady := want{best: dcIP(1), bestLen: 1, other: dcIP(2), otherLen: 4}
	took := map[string][]time.Duration{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if how == "kill" {
			x.dcs[0].p.kill()
		} else {
			x.partition(1, "-A")
		}
		pending := map[string]bool{"available": true, "consistent": true}
		for len(pending) > 0 {
			for policy := range pending {
				ps, err := x.rt.paths(prefixes[policy])
				if err != nil {
					b.Fatal(err)
				}
				for _, p := range ps {
					if p.via == dcIP(2) && len(p.asPath) == 1 {
						took[policy] = append(took[policy], time.Since(start))
						delete(pending, policy)
					}
				}
			}
			if time.Since(start) > 20*time.Second {
				b.Fatalf("run %d: %v not active on dc-2 within 20s", i, pending)
			}
			time.Sleep(time.Millisecond)
		}
		b.StopTimer()
		if how == "kill" {
			x.dcs[0].start()
		} else {
			x.partition(1, "-D")
		}
		for _, p := range prefixes {
			x.waitRoute(60*time.Second, p, steady)
		}
		b.StartTimer()
	}
	b.StopTimer()
	report(b, "available", took["available"])
	report(b, "consistent", took["consistent"])
}
