package e2e

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/internal/daemonenv"
)

// startFederation starts n daemons and federates them from the first one.
// reportLatencies reports median and p99 of ds as custom metrics.
func reportLatencies(b *testing.B, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	q := func(p float64) time.Duration { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
	b.ReportMetric(float64(q(0.5).Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(q(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkDCAdd measures `dc add` into federations of real daemons on
// loopback: each iteration adds one candidate (timed) to a federation of
// N members and lets it leave again (not timed).
//
//	go test ./e2e -run '^$' -bench BenchmarkDCAdd -benchtime 40x
func BenchmarkDCAdd(b *testing.B) {
	for _, n := range []int{2, 5, 10, 25} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			ds := startFederation(b, n, benchFlags()...)
			cand := newDaemon(b, "cand", benchFlags()...)
			cand.env = daemonenv.Env(n + 1) // as its members got from startFederation
			cand.start()
			coord := ds[0].client()
			cc := cand.client()
			ctx := context.Background()
			var lat []time.Duration
			var cpu time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				tok := apiJoinToken(b, cand) // a join token works once
				b.StartTimer()
				all := append(ds[:n:n], cand)
				cpu0 := daemonCPU(b, all)
				start := time.Now()
				if _, err := coord.AddDC(ctx, dcOf(cand), tok); err != nil {
					b.Fatalf("dc add: %v", err)
				}
				lat = append(lat, time.Since(start))
				b.StopTimer()
				time.Sleep(cpuWindow)
				cpu += daemonCPU(b, all) - cpu0
				waitSettled(b, append(ds[:n:n], cand))
				if _, err := cc.Leave(ctx); err != nil {
					b.Fatalf("dc leave: %v", err)
				}
				waitSettled(b, ds)
				b.StartTimer()
			}
			b.StopTimer()
			reportLatencies(b, lat)
			reportCPU(b, cpu, b.N)
		})
	}
}

// waitSettled waits until every daemon of ds is a member at one epoch with
// no operation in progress.
func waitSettled(b testing.TB, ds []*daemon) {
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var epoch uint64
		ok := true
		for i, d := range ds {
			st, err := d.client().Status(ctx)
			if err != nil || st.Status != vipsmart.StatusMember || (i > 0 && st.Epoch != epoch) {
				ok = false
				break
			}
			epoch = st.Epoch
		}
		if ok {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	b.Fatalf("federation did not settle within 30s")
}

// benchFlags are extra `vipsmart serve` flags for the benchmarks, from
// VIPSMART_BENCH_FLAGS (space-separated), e.g. "--heartbeat-interval 1s".
func benchFlags() []string { return strings.Fields(os.Getenv("VIPSMART_BENCH_FLAGS")) }
