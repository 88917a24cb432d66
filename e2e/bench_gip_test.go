package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/bolt"
)

// BenchmarkGIPAdd measures `gip add` (a federation change: every member
// locks, checks and commits) in federations of N real daemons: each
// iteration adds a GIP placed in two DCs (timed) and removes it (not timed).
//
//	go test ./e2e -run '^$' -bench BenchmarkGIPAdd -benchtime 60x
func BenchmarkGIPAdd(b *testing.B) {
	for _, n := range []int{2, 5, 10, 25} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			ds := startFederation(b, n, benchFlags()...)
			waitSettled(b, ds)
			c := ds[0].client()
			ctx := context.Background()
			var lat []time.Duration
			var cpu time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				g := vipsmart.GIP{Name: "bench", Address: netip.MustParseAddr("203.0.113.7"), Mode: vipsmart.ModeFailover, Preempt: true,
					Placements: []vipsmart.Placement{{DC: "dc-1", Priority: 200}, {DC: ds[n-1].name, Priority: 100}}}
				cpu0 := daemonCPU(b, ds)
				start := time.Now()
				if _, err := c.AddGIP(ctx, g); err != nil {
					b.Fatalf("gip add: %v", err)
				}
				lat = append(lat, time.Since(start))
				b.StopTimer()
				time.Sleep(cpuWindow)
				cpu += daemonCPU(b, ds) - cpu0
				waitSettled(b, ds)
				if err := c.RemoveGIP(ctx, "bench"); err != nil {
					b.Fatalf("gip remove: %v", err)
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

// seedGIPs writes count GIPs (placed in dc-1 and dc-2) into the stopped
// daemons' stores, the same set in each, as a federation change would have.
// Going through the API one GIP at a time would take minutes; the join
// and list measured below do not depend on how the GIPs got there.
func seedGIPs(t testing.TB, ds []*daemon, count int) {
	gips := make([]vipsmart.GIP, count)
	for i := range gips {
		gips[i] = vipsmart.GIP{Name: fmt.Sprintf("g%05d", i), Address: netip.AddrFrom4([4]byte{10, byte(100 + i>>16), byte(i >> 8), byte(i)}),
			Mode: vipsmart.ModeFailover, Preempt: true, Placements: []vipsmart.Placement{{DC: "dc-1", Priority: 200}, {DC: "dc-2", Priority: 100}}}
	}
	for _, d := range ds {
		if err := d.stop(); err != nil {
			t.Fatal(err)
		}
		st, err := bolt.Open(filepath.Join(d.dataDir, "vipsmart.db"), bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		rec, _, err := st.LoadFederation(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := st.SaveFederation(context.Background(), vipsmart.FederationUpdate{Record: rec, PutGIPs: gips}); err != nil {
			t.Fatal(err)
		}
		st.Close()
		d.start()
	}
}

// seedVIPs writes count VIPs into a stopped daemon's store.
func seedVIPs(t testing.TB, d *daemon, count int) {
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	st, err := bolt.Open(filepath.Join(d.dataDir, "vipsmart.db"), bolt.Options{UnsafeNoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < count; i++ {
		v := vipsmart.VIP{Name: fmt.Sprintf("v%05d", i), Address: netip.AddrFrom4([4]byte{172, 16 + byte(i>>16), byte(i >> 8), byte(i)}), Created: time.Now().UTC()}
		if err := st.CreateVIP(context.Background(), v); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	d.start()
}

// BenchmarkScale measures, with 10,000 GIPs in a federation of two: the
// time for a third DC to join (dc add until the candidate is a member with
// every GIP), `gip list` of all of them through the API, and the resident
// memory of a daemon that also holds 10,000 VIPs.
//
//	go test ./e2e -run '^$' -bench BenchmarkScale -benchtime 1x
func BenchmarkScale(b *testing.B) {
	const count = 10000
	ds := startFederation(b, 2, benchFlags()...)
	seedGIPs(b, ds, count)
	seedVIPs(b, ds[0], count)
	waitSettled(b, ds)
	ctx := context.Background()
	c := ds[0].client()

	b.Run("join-10000-gips", func(b *testing.B) {
		var lat []time.Duration
		for i := 0; i < b.N; i++ {
			cand := startDaemon(b, fmt.Sprintf("cand-%d", i), benchFlags()...)
			cc := cand.client()
			tok := apiJoinToken(b, cand)
			start := time.Now()
			if _, err := c.AddDC(ctx, dcOf(cand), tok); err != nil {
				b.Fatalf("dc add: %v", err)
			}
			for {
				st, err := cc.Status(ctx)
				if err == nil && st.Status == vipsmart.StatusMember && st.GIPs == count {
					break
				}
				if time.Since(start) > time.Minute {
					b.Fatalf("candidate not a member with %d GIPs after a minute: %+v %v", count, st, err)
				}
				time.Sleep(time.Millisecond)
			}
			lat = append(lat, time.Since(start))
			waitSettled(b, append(ds[:2:2], cand))
			if _, err := cc.Leave(ctx); err != nil {
				b.Fatal(err)
			}
			waitSettled(b, ds)
		}
		reportLatencies(b, lat)
	})
	b.Run("gip-list-10000", func(b *testing.B) {
		var lat []time.Duration
		for i := 0; i < max(b.N, 20); i++ {
			start := time.Now()
			gs, err := c.ListGIPs(ctx)
			if err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
			if len(gs) != count {
				b.Fatalf("gip list returned %d GIPs", len(gs))
			}
		}
		reportLatencies(b, lat)
	})
	b.Run("gip-list-cli-10000", func(b *testing.B) {
		var lat []time.Duration
		for i := 0; i < max(b.N, 20); i++ {
			start := time.Now()
			out := mustCLI(b, ds[0].server(), "gip", "list")
			lat = append(lat, time.Since(start))
			if n := strings.Count(out, "\n"); n != count+1 {
				b.Fatalf("gip list printed %d lines", n)
			}
		}
		reportLatencies(b, lat)
	})
	b.Run("rss-10000-gips-10000-vips", func(b *testing.B) {
		vs, err := c.ListVIPs(ctx)
		if err != nil || len(vs) != count {
			b.Fatalf("%d VIPs, %v", len(vs), err)
		}
		time.Sleep(2 * time.Second) // let heartbeats and GIP activation run
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", ds[0].cmd.Process.Pid))
		if err != nil {
			b.Skipf("no /proc: %v", err)
		}
		for _, l := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(l, "VmRSS:") {
				f := strings.Fields(l)
				kb, _ := strconv.Atoi(f[1])
				b.ReportMetric(float64(kb)/1024, "rss-MB")
				b.ReportMetric(0, "ns/op")
				return
			}
		}
		b.Fatal("no VmRSS line")
	})
}

// BenchmarkFailover measures, over b.N kills (at least 20), the time from
// kill -9 of the DC active for a failover GIP until the standby DC reports
// itself active, at the heartbeat settings given by VIPSMART_BENCH_FLAGS
// (default: 200ms x 3 misses).
//
//	go test ./e2e -run '^$' -bench BenchmarkFailover -benchtime 20x
//	VIPSMART_BENCH_FLAGS='--heartbeat-interval 100ms' go test ./e2e -run '^$' -bench BenchmarkFailover -benchtime 20x
func BenchmarkFailover(b *testing.B) {
	ds := startFederation(b, 3, benchFlags()...)
	ctx := context.Background()
	c2 := ds[1].client()
	g := vipsmart.GIP{Name: "www", Address: netip.MustParseAddr("203.0.113.10"), Mode: vipsmart.ModeFailover, Preempt: true,
		Placements: []vipsmart.Placement{{DC: "dc-1", Priority: 200}, {DC: "dc-2", Priority: 150}, {DC: "dc-3", Priority: 100}}}
	if _, err := c2.AddGIP(ctx, g); err != nil {
		b.Fatal(err)
	}
	activeIs := func(d *daemon, want string) bool {
		resp, err := d.http().Get(d.url("/v1/gips/www"))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var gi vipsmart.GIPInfo
		if err := jsonDecode(resp, &gi); err != nil {
			return false
		}
		return len(gi.Active) == 1 && gi.Active[0] == want
	}
	waitFor := func(what string, f func() bool) {
		deadline := time.Now().Add(30 * time.Second)
		for !f() {
			if time.Now().After(deadline) {
				b.Fatalf("%s: not within 30s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	n := max(b.N, 20)
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < n; i++ {
		waitFor("dc-1 active everywhere", func() bool { return activeIs(ds[0], "dc-1") && activeIs(ds[1], "dc-1") && activeIs(ds[2], "dc-1") })
		start := time.Now()
		ds[0].kill()
		waitFor("dc-2 takes over", func() bool { return activeIs(ds[1], "dc-2") })
		lat = append(lat, time.Since(start))
		ds[0].start()
	}
	b.StopTimer()
	reportLatencies(b, lat)
}
