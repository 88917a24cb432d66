package bolt

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/storetest"
)

const fileName = "vipsmart.db"

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, maxEvents int) vipsmart.Store {
		s, err := Open(filepath.Join(t.TempDir(), fileName), Options{MaxEvents: maxEvents})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}

func TestContractReopen(t *testing.T) {
	storetest.RunReopen(t, func(t *testing.T, dir string, maxEvents int) vipsmart.Store {
		s, err := Open(filepath.Join(dir, fileName), Options{MaxEvents: maxEvents})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}

func mustOpen(t *testing.T, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// readSchema returns meta/schema_version of the bbolt file at path.
func readSchema(t *testing.T, path string) string {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	if err := db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketMeta)
		if b == nil {
			return errors.New("no meta bucket")
		}
		v = string(b.Get(keySchemaVersion))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

func writeSchema(t *testing.T, path, version string) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		return b.Put(keySchemaVersion, []byte(version))
	}); err != nil {
		t.Fatal(err)
	}
}

func TestFreshFileGetsSchemaVersion2(t *testing.T) {
	path := filepath.Join(t.TempDir(), fileName)
	s := mustOpen(t, path, Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if v := readSchema(t, path); v != "2" {
		t.Fatalf("schema_version = %q, want %q", v, "2")
	}
	// Reopening a version 2 file works and keeps the version.
	s = mustOpen(t, path, Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if v := readSchema(t, path); v != "2" {
		t.Fatalf("schema_version after reopen = %q, want %q", v, "2")
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), fileName)
	s := mustOpen(t, path, Options{})
	if err := s.CreateVIP(t.Context(), vipsmart.VIP{Name: "web", Address: mustAddr("192.0.2.10")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	writeSchema(t, path, "3")

	s2, err := Open(path, Options{})
	if err == nil {
		s2.Close()
		t.Fatal("Open of a schema version 3 file succeeded")
	}
	msg := err.Error()
	for _, want := range []string{path, "schema version 3", "version 2", "upgrade vipsmart"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	// The refused file is untouched and not left locked.
	if v := readSchema(t, path); v != "3" {
		t.Errorf("schema_version after the refused Open = %q, want %q", v, "3")
	}
}

func TestOpenRefusesBadSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), fileName)
	writeSchema(t, path, "banana")
	s, err := Open(path, Options{})
	if err == nil {
		s.Close()
		t.Fatal("Open of a file with schema version \"banana\" succeeded")
	}
	if !strings.Contains(err.Error(), `schema version "banana"`) {
		t.Errorf("error %q does not name the bad version", err)
	}
}

func TestOpenRefusesLockedFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, fileName)
	first := mustOpen(t, path, Options{})

	const timeout = 200 * time.Millisecond
	start := time.Now()
	s, err := Open(path, Options{Timeout: timeout})
	elapsed := time.Since(start)
	if err == nil {
		s.Close()
		t.Fatal("second Open of a locked file succeeded")
	}
	want := "data directory " + dir + " is in use by another vipsmart process"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
	if !errors.Is(err, berrors.ErrTimeout) {
		t.Errorf("error %q does not wrap bbolt's ErrTimeout", err)
	}
	// bbolt gives up one 50ms retry interval before the timeout.
	if elapsed < timeout/2 || elapsed > timeout+2*time.Second {
		t.Errorf("second Open failed after %s, want about %s", elapsed, timeout)
	}

	// Once the first store closes, the file can be opened again.
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	mustOpen(t, path, Options{Timeout: timeout})
}

func TestOpenMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", fileName)
	s, err := Open(path, Options{})
	if err == nil {
		s.Close()
		t.Fatal("Open in a missing directory succeeded")
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the path", err)
	}
}

func TestDefaults(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), fileName), Options{})
	if s.maxEvents != DefaultMaxEvents {
		t.Errorf("maxEvents = %d, want %d", s.maxEvents, DefaultMaxEvents)
	}
	if s.db.NoSync {
		t.Error("NoSync is set: commits would not be durable")
	}
}

func TestErrorMessages(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), fileName), Options{})
	ctx := t.Context()
	if err := s.CreateVIP(ctx, vipsmart.VIP{Name: "web", Address: mustAddr("192.0.2.10")}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		what string
		err  error
		code vipsmart.ErrorCode
		msg  string
	}{
		{"duplicate name", s.CreateVIP(ctx, vipsmart.VIP{Name: "web", Address: mustAddr("192.0.2.11")}), vipsmart.ECONFLICT, "VIP name web is already in use"},
		{"duplicate address", s.CreateVIP(ctx, vipsmart.VIP{Name: "api", Address: mustAddr("192.0.2.10")}), vipsmart.ECONFLICT, "address 192.0.2.10 is already used by VIP web"},
		{"delete missing", s.DeleteVIP(ctx, "db"), vipsmart.ENOTFOUND, "VIP db does not exist"},
		{"get missing", func() error { _, err := s.GetVIP(ctx, "db"); return err }(), vipsmart.ENOTFOUND, "VIP db does not exist"},
		{"empty name", s.CreateVIP(ctx, vipsmart.VIP{Address: mustAddr("192.0.2.12")}), vipsmart.EINVALID, "VIP name is empty"},
		{"no address", s.CreateVIP(ctx, vipsmart.VIP{Name: "x"}), vipsmart.EINVALID, "VIP x has no address"},
	} {
		var e *vipsmart.Error
		if !errors.As(tc.err, &e) {
			t.Errorf("%s: error %v is not a *vipsmart.Error", tc.what, tc.err)
			continue
		}
		if e.Code != tc.code || e.Message != tc.msg {
			t.Errorf("%s: got %s %q, want %s %q", tc.what, e.Code, e.Message, tc.code, tc.msg)
		}
	}
}

func TestCancelledContextWrapsCause(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), fileName), Options{})
	ctx, cancel := context.WithTimeout(context.Background(), -time.Second)
	defer cancel()
	_, err := s.ListVIPs(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ListVIPs with an expired context: %v, want it to wrap DeadlineExceeded", err)
	}
}

func TestCloseTwice(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), fileName), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err == nil {
		t.Fatal("second Close succeeded")
	}
}

func TestListEventsNoLimit(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), fileName), Options{MaxEvents: 3})
	ctx := t.Context()
	for range 5 {
		if _, err := s.AppendEvents(ctx, []vipsmart.Event{{Kind: vipsmart.EventVIP, Message: "m"}}); err != nil {
			t.Fatal(err)
		}
	}
	es, err := s.ListEvents(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 || es[0].Seq != 3 || es[2].Seq != 5 {
		t.Fatalf("ListEvents(0, 0) = %+v, want seqs 3..5", es)
	}
	es, err = s.ListEvents(ctx, ^uint64(0), 10)
	if err != nil || len(es) != 0 {
		t.Fatalf("ListEvents(max, 10) = %v, %v; want none", es, err)
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
