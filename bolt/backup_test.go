package bolt

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vipsmart/vipsmart"
)

func writeSnapshot(t *testing.T, s *Store, path string) {
	t.Helper()
	f, size, err := s.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(out, f)
	if err != nil || n != size {
		t.Fatalf("copied %d of %d bytes: %v", n, size, err)
	}
	out.Close()
}

// TestSnapshotDuringWritesRestoresAnAcknowledgedState takes snapshots
// while VIPs are being added; each one, restored, holds exactly the first
// k VIPs for a k between those acknowledged before the snapshot began and
// those started before it ended.
func TestSnapshotDuringWritesRestoresAnAcknowledgedState(t *testing.T) {
	path := filepath.Join(t.TempDir(), fileName)
	s := mustOpen(t, path, Options{Describe: describe, UnsafeNoSync: true})
	var mu sync.Mutex
	acked, started := 0, 0
	stop := make(chan struct{})
	done := make(chan error)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			mu.Lock()
			started = i + 1
			mu.Unlock()
			v := vipsmart.VIP{Name: fmt.Sprintf("v%05d", i), Address: netip.AddrFrom4([4]byte{10, 2, byte(i >> 8), byte(i)})}
			if err := s.CreateVIP(context.Background(), v); err != nil {
				done <- err
				return
			}
			mu.Lock()
			acked = i + 1
			mu.Unlock()
		}
	}()
	for round := range 5 {
		mu.Lock()
		lo := acked
		mu.Unlock()
		backup := filepath.Join(t.TempDir(), "backup.db")
		writeSnapshot(t, s, backup)
		mu.Lock()
		hi := started
		mu.Unlock()
		dir := t.TempDir()
		if _, err := Restore(backup, filepath.Join(dir, fileName), testOpts, RestoreOptions{}); err != nil {
			t.Fatal(err)
		}
		r := mustOpen(t, filepath.Join(dir, fileName), testOpts)
		vs, err := r.ListVIPs(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		k := len(vs)
		if k < lo || k > hi {
			t.Fatalf("round %d: the restored store holds %d VIPs; %d were acknowledged before the backup and %d started before it ended", round, k, lo, hi)
		}
		for i, v := range vs {
			if v.Name != fmt.Sprintf("v%05d", i) {
				t.Fatalf("round %d: restored VIP %d is %s: not the first %d VIPs written", round, i, v.Name, k)
			}
		}
		t.Logf("round %d: restored %d VIPs (acknowledged before: %d, started before the end: %d)", round, k, lo, hi)
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestRestoreRules(t *testing.T) {
	src, want := pristine(t, 10, 2, 20) // DC dc-1, epoch 7
	backup := filepath.Join(t.TempDir(), "backup.db")
	s := mustOpen(t, src, testOpts)
	writeSnapshot(t, s, backup)
	s.Close()

	// Into an empty data directory.
	dir := t.TempDir()
	path := filepath.Join(dir, fileName)
	res, err := Restore(backup, path, testOpts, RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Marker.Epoch != 7 || res.Marker.DC != "dc-1" || !strings.Contains(res.Marker.Restored, backup) || res.KeptAs != "" {
		t.Fatalf("restore result %+v, marker %+v", res, res.Marker)
	}
	r := mustOpen(t, path, testOpts)
	got, err := readContent(t, r)
	if err != nil {
		t.Fatal(err)
	}
	n := len(got.Events)
	if n != len(want.Events)+1 || !strings.Contains(got.Events[n-1].Message, "restored from backup "+backup) {
		t.Fatalf("events after the restore: %d, the last %+v; want the backup's %d and one saying it was restored", n, got.Events[n-1], len(want.Events))
	}
	got.Events = got.Events[:n-1]
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatal("the restored store does not hold what the backup was taken of")
	}
	if r.StoreID() != res.StoreID {
		t.Fatalf("store id %s, restore said %s", r.StoreID(), res.StoreID)
	}

	// Not while a daemon holds it.
	if _, err := Restore(backup, path, testOpts, RestoreOptions{Force: true}); err == nil || !strings.Contains(err.Error(), "stop the vipsmart daemon") {
		t.Fatalf("restore over a store in use: %v", err)
	}
	// The DC moves on to epoch 9; restoring the epoch-7 backup over
	// that sound store needs --force, and keeps it aside.
	if err := r.SaveFederation(context.Background(), vipsmart.FederationUpdate{Record: record(9)}); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, err := Restore(backup, path, testOpts, RestoreOptions{}); err == nil || !strings.Contains(err.Error(), "give --force") {
		t.Fatalf("restore over a sound store without force: %v", err)
	}
	res, err = Restore(backup, path, testOpts, RestoreOptions{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.KeptAs == "" || res.Previous == nil || res.Previous.Record.Epoch != 9 {
		t.Fatalf("forced restore: %+v", res)
	}
	if _, err := os.Stat(res.KeptAs); err != nil {
		t.Fatalf("the replaced store was not kept: %v", err)
	}
	// The restored store is behind the marker's old epoch 9 on purpose:
	// Open accepts it (the DC catches up from its federation).
	mustOpen(t, path, testOpts).Close()

	// A damaged backup is refused and changes nothing.
	bad := filepath.Join(t.TempDir(), "bad.db")
	data, _ := os.ReadFile(backup)
	data[len(data)/2] ^= 0xff
	os.WriteFile(bad, data, 0o600)
	before, _ := os.ReadFile(path)
	if _, err := Restore(bad, path, testOpts, RestoreOptions{Force: true}); err == nil {
		// The flipped byte may sit in free space: then the backup is fine.
		if _, ierr := Inspect(bad, testOpts); ierr != nil {
			t.Fatal("a damaged backup was restored")
		}
	} else if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Fatal("a refused restore changed the store")
	}
}

func TestCheckStore(t *testing.T) {
	path, _ := pristine(t, 10, 2, 20)
	c, err := CheckStore(path, testOpts)
	if err != nil || c.Refusal != nil || c.Inspection == nil || c.Inspection.VIPs != 9 || c.Inspection.GIPs != 2 || c.Inspection.Record.Epoch != 7 {
		t.Fatalf("check of a sound store: %+v %v", c, err)
	}
	os.Truncate(path, 0)
	c, err = CheckStore(path, testOpts)
	if err != nil || c.Refusal == nil || c.Refusal.Kind != Lost {
		t.Fatalf("check of an emptied store: %+v %v", c, err)
	}
	c, err = CheckStore(filepath.Join(t.TempDir(), fileName), testOpts)
	if err != nil || !c.Fresh {
		t.Fatalf("check of an empty directory: %+v %v", c, err)
	}
}
