package bolt

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/storetest"
)

func benchOpen(b *testing.B) vipsmart.Store {
	s, err := Open(filepath.Join(b.TempDir(), fileName), Options{})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkStoreWrites: the write latency of the store, side by side with
// the etcd store's (docs in BENCHMARKS.md):
//
//	go test ./bolt ./etcd -run '^$' -bench BenchmarkStoreWrites -benchtime 200x
func BenchmarkStoreWrites(b *testing.B) { storetest.BenchWrites(b, benchOpen) }

// BenchmarkStoreReplace10000 replaces and loads a set of 10,000 GIPs:
//
//	go test ./bolt ./etcd -run '^$' -bench BenchmarkStoreReplace10000 -benchtime 10x
func BenchmarkStoreReplace10000(b *testing.B) { storetest.BenchReplace(b, benchOpen, 10000) }

// BenchmarkStoreBatchFresh writes 10,000 new GIPs, each placed in 10 DCs,
// in one SaveFederation into a new store: what a member does when the
// first apply of 10,000 GIPs commits (BENCHMARKS.md, "vipsmart apply").
//
//	go test ./bolt -run '^$' -bench BenchmarkStoreBatchFresh -benchtime 10x -benchmem
func BenchmarkStoreBatchFresh(b *testing.B) {
	gips := make([]vipsmart.GIP, 10000)
	for i := range gips {
		g := storetest.BenchGIP(i)
		g.Placements = nil
		for j := range 10 {
			g.Placements = append(g.Placements, vipsmart.Placement{DC: fmt.Sprintf("dc-%d", j+1), Priority: 200 - j})
		}
		gips[i] = g
	}
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := benchOpen(b)
		b.StartTimer()
		if err := s.SaveFederation(ctx, vipsmart.FederationUpdate{Record: []byte{1}, PutGIPs: gips}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		s.Close()
		b.StartTimer()
	}
}
