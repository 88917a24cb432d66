package daemon

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/bolt"
	"github.com/vipsmart/vipsmart/federation"
)

// failingStore fails every federation save once fail is set.
type failingStore struct {
	vipsmart.Store
	fail atomic.Bool
}

func (s *failingStore) SaveFederation(ctx context.Context, u vipsmart.FederationUpdate) error {
	if s.fail.Load() {
		return errors.New("disk gone")
	}
	return s.Store.SaveFederation(ctx, u)
}

// TestLoopToken: nothing is stepped before Run (a call waits for the
// loop); while the loop is idle a call runs on the caller's goroutine;
// and when the store fails under a caller's token, the loop takes the
// token over and stops the daemon with the store's error, and nothing
// is stepped after.
func TestLoopToken(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "vipsmart.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	fs := &failingStore{Store: st}
	self := vipsmart.DC{Name: "dc-1", Address: netip.MustParseAddr("127.0.0.1"), Port: 9610}
	d, err := New(context.Background(), Config{Self: self, Store: struct{ vipsmart.Store }{fs}, Transport: nopTransport{}})
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	ran := false
	if err := d.call(short, func() error { ran = true; return nil }); vipsmart.ErrorCodeOf(err) != vipsmart.ETIMEOUT || ran {
		t.Fatalf("a call before Run: %v (ran %v); want it to wait for the loop", err, ran)
	}

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	onLoop := true
	deadline := time.Now().Add(5 * time.Second)
	for onLoop && time.Now().Before(deadline) { // the loop may be ticking: try again
		if err := d.call(ctx, func() error {
			onLoop = strings.Contains(string(debug.Stack()), "(*Daemon).Run(")
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if onLoop {
		t.Fatal("every call ran on the loop; want a call to an idle loop to run on the caller's goroutine")
	}

	fs.fail.Store(true)
	// A dc add stores the coordinator's lock before the invite leaves.
	cand := vipsmart.DC{Name: "dc-2", Address: netip.MustParseAddr("127.0.0.2"), Port: 9611, Identity: "sha256:" + strings.Repeat("ab", 32)}
	actx, acancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer acancel()
	aerr := d.propose(actx, federation.Proposal{Kind: federation.AddDC, DC: cand, Token: "x"})
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "disk gone") {
			t.Fatalf("Run returned %v; want the store's error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the daemon did not stop after its store failed (dc add: %v)", aerr)
	}
	if aerr == nil {
		t.Fatal("dc add succeeded with a failing store")
	}
	if err := d.call(context.Background(), func() error { return errors.New("stepped after Run returned") }); vipsmart.ErrorCodeOf(err) != vipsmart.EUNAVAILABLE {
		t.Fatalf("a call after Run returned: %v; want EUNAVAILABLE", err)
	}
}
