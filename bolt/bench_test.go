package bolt

import (
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
