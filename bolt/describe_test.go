package bolt

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/vipsmart/vipsmart"
)

// TestDescribeSavedOnSaves: a record handed to SaveFederation is
// described by DescribeSaved (the cheap reading of a record the daemon
// just made), a record read from the file by Describe (the whole
// decoding, which judges damage), and the marker keeps what they said.
func TestDescribeSavedOnSaves(t *testing.T) {
	var whole, saved atomic.Int64
	opts := testOpts
	opts.Describe = func(b []byte) (RecordInfo, error) { whole.Add(1); return describe(b) }
	opts.DescribeSaved = func(b []byte) (RecordInfo, error) { saved.Add(1); return describe(b) }
	path := filepath.Join(t.TempDir(), "vipsmart.db")
	s := mustOpen(t, path, opts)
	ctx := context.Background()
	for e := uint64(1); e <= 3; e++ {
		if err := s.SaveFederation(ctx, vipsmart.FederationUpdate{Record: record(e)}); err != nil {
			t.Fatal(err)
		}
	}
	if saved.Load() != 3 || whole.Load() != 0 {
		t.Fatalf("3 saves: DescribeSaved called %d times, Describe %d (want 3 and 0)", saved.Load(), whole.Load())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	in, err := Inspect(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	if whole.Load() == 0 || in.Record == nil || in.Record.Epoch != 3 {
		t.Fatalf("inspecting the file: Describe called %d times, record %+v", whole.Load(), in.Record)
	}
	mk, err := readMarker(path + MarkerSuffix)
	if err != nil || mk == nil || mk.Epoch != 3 || mk.DC != "dc-1" || mk.Federation != "f-test" {
		t.Fatalf("marker %+v (%v): want dc-1 of f-test at epoch 3", mk, err)
	}
}
