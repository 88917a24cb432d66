package storetest

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

// BenchOpener opens a fresh, empty store for a benchmark.
type BenchOpener func(b *testing.B) vipsmart.Store

// BenchWrites measures the latency of the writes the daemon makes, one
// sub-benchmark per kind of call, each call timed alone (b.N calls):
// CreateVIP, DeleteVIP, SaveFederation of one GIP with the record (as a
// gip add commits), and AppendEvents of one event. It reports the median
// and the p99 in milliseconds.
func BenchWrites(b *testing.B, open BenchOpener) {
	ctx := context.Background()
	b.Run("CreateVIP", func(b *testing.B) {
		s := open(b)
		defer s.Close()
		timeEach(b, func(i int) error { return s.CreateVIP(ctx, benchVIP(i)) })
	})
	b.Run("DeleteVIP", func(b *testing.B) {
		s := open(b)
		defer s.Close()
		for i := 0; i < b.N; i++ {
			if err := s.CreateVIP(ctx, benchVIP(i)); err != nil {
				b.Fatal(err)
			}
		}
		timeEach(b, func(i int) error { return s.DeleteVIP(ctx, benchVIP(i).Name) })
	})
	b.Run("SaveFederationOneGIP", func(b *testing.B) {
		s := open(b)
		defer s.Close()
		rec := make([]byte, 600) // about a federation record of 5 members
		timeEach(b, func(i int) error {
			rec[0] = byte(i)
			return s.SaveFederation(ctx, vipsmart.FederationUpdate{Record: rec, PutGIPs: []vipsmart.GIP{BenchGIP(i)}})
		})
	})
	b.Run("AppendEvent", func(b *testing.B) {
		s := open(b)
		defer s.Close()
		timeEach(b, func(i int) error {
			_, err := s.AppendEvents(ctx, []vipsmart.Event{{Time: created, DC: "dc-1", Kind: vipsmart.EventGIP, Message: fmt.Sprintf("GIP gip-%d active here", i)}})
			return err
		})
	})
}

// BenchReplace measures replacing the whole GIP set with n GIPs (as a
// candidate's commit or a catch-up does) and loading it back, b.N times
// each, reporting the median and p99 in milliseconds.
func BenchReplace(b *testing.B, open BenchOpener, n int) {
	ctx := context.Background()
	gips := make([]vipsmart.GIP, n)
	for i := range gips {
		gips[i] = BenchGIP(i)
	}
	s := open(b)
	defer s.Close()
	b.Run("Replace", func(b *testing.B) {
		timeEach(b, func(i int) error {
			return s.SaveFederation(ctx, vipsmart.FederationUpdate{Record: []byte{byte(i)}, ReplaceGIPs: true, PutGIPs: gips})
		})
	})
	b.Run("Load", func(b *testing.B) {
		timeEach(b, func(int) error {
			_, got, err := s.LoadFederation(ctx)
			if err == nil && len(got) != n {
				err = fmt.Errorf("loaded %d GIPs, want %d", len(got), n)
			}
			return err
		})
	})
}

// timeEach runs f(0..b.N-1), timing each call, and reports the median
// and p99.
func timeEach(b *testing.B, f func(i int) error) {
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := f(i); err != nil {
			b.Fatalf("call %d: %v", i, err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	b.ReportMetric(float64(q(0.5).Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(q(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(0, "ns/op")
}

func benchVIP(i int) vipsmart.VIP {
	return vipsmart.VIP{
		Name:    fmt.Sprintf("vip-%06d", i),
		Address: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}),
		Check:   &vipsmart.Check{URL: "tcp://192.0.2.1:443", Interval: vipsmart.Duration(time.Second), Timeout: vipsmart.Duration(500 * time.Millisecond), Rise: 2, Fall: 2},
		Created: created,
	}
}

// BenchGIP is the i-th GIP of the benchmarks: three placements, one
// backed by a VIP (about 200 bytes of JSON).
func BenchGIP(i int) vipsmart.GIP {
	return vipsmart.GIP{
		Name:    fmt.Sprintf("gip-%06d", i),
		Address: netip.AddrFrom4([4]byte{100, byte(i >> 16), byte(i >> 8), byte(i)}),
		Mode:    vipsmart.ModeFailover,
		Placements: []vipsmart.Placement{
			{DC: "dc-1", Priority: 200, VIP: fmt.Sprintf("web-%06d", i)},
			{DC: "dc-2", Priority: 100},
			{DC: "dc-3", Priority: 50},
		},
	}
}
