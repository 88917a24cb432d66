package etcd_test

import (
	"fmt"
	"testing"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/etcd"
	"github.com/vipsmart/vipsmart/etcd/etcdtest"
	"github.com/vipsmart/vipsmart/storetest"
)

// benchClusters runs f on a 1-member and a 3-member etcd cluster (real
// processes on loopback, fsync on), each store on a fresh prefix.
func benchClusters(b *testing.B, f func(b *testing.B, open storetest.BenchOpener)) {
	for _, members := range []int{1, 3} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			c := etcdtest.Start(b, etcdtest.Options{Members: members})
			f(b, func(b *testing.B) vipsmart.Store {
				s, err := etcd.Open(b.Context(), etcd.Config{Endpoints: c.Endpoints(), Prefix: newPrefix(), DC: "dc-1"})
				if err != nil {
					b.Fatal(err)
				}
				return s
			})
		})
	}
}

// BenchmarkStoreWrites: the write latency of the store, side by side with
// bolt's (docs in BENCHMARKS.md):
//
//	go test ./bolt ./etcd -run '^$' -bench BenchmarkStoreWrites -benchtime 200x
func BenchmarkStoreWrites(b *testing.B) {
	benchClusters(b, func(b *testing.B, open storetest.BenchOpener) { storetest.BenchWrites(b, open) })
}

// BenchmarkStoreReplace10000 replaces and loads a set of 10,000 GIPs:
//
//	go test ./bolt ./etcd -run '^$' -bench BenchmarkStoreReplace10000 -benchtime 10x
func BenchmarkStoreReplace10000(b *testing.B) {
	benchClusters(b, func(b *testing.B, open storetest.BenchOpener) { storetest.BenchReplace(b, open, 10000) })
}
