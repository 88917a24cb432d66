package daemon

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/bolt"
)

// countingStore counts the writes that reach the bolt store it wraps
// (through Unwrap, as serve's store wrapper does).
type countingStore struct {
	vipsmart.Store
	saves, appends int
}

func (s *countingStore) SaveFederation(ctx context.Context, u vipsmart.FederationUpdate) error {
	s.saves++
	return s.Store.SaveFederation(ctx, u)
}

func (s *countingStore) AppendEvents(ctx context.Context, evs []vipsmart.Event) ([]vipsmart.Event, error) {
	s.appends++
	return s.Store.AppendEvents(ctx, evs)
}

func (s *countingStore) Unwrap() vipsmart.Store { return s.Store }

// TestUpdateAndEventsInOneTransaction: an update and its events are
// stored in one transaction of the bolt store found behind the wrappers
// (no separate SaveFederation or AppendEvents), both there afterwards; a
// store without the combined save gets the two writes, as before.
func TestUpdateAndEventsInOneTransaction(t *testing.T) {
	for _, combined := range []bool{true, false} {
		st, err := bolt.Open(filepath.Join(t.TempDir(), "vipsmart.db"), bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		cs := &countingStore{Store: st}
		var store vipsmart.Store = cs
		if !combined {
			store = struct{ vipsmart.Store }{cs} // hides Unwrap
		}
		self := vipsmart.DC{Name: "dc-1", Address: netip.MustParseAddr("127.0.0.1"), Port: 9610}
		d, err := New(context.Background(), Config{Self: self, Store: store, Transport: nopTransport{}})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		cs.saves, cs.appends = 0, 0
		g := vipsmart.GIP{Name: "g1", Address: netip.MustParseAddr("203.0.113.9"), Mode: vipsmart.ModeFailover, Placements: []vipsmart.Placement{{DC: "dc-1", Priority: 100}}}
		stored, err := d.saveFederation(ctx, vipsmart.FederationUpdate{Record: []byte(`{}`), PutGIPs: []vipsmart.GIP{g}}, []vipsmart.Event{{Kind: vipsmart.EventGIP, Message: "GIP g1 added"}})
		if err != nil || stored != combined {
			t.Fatalf("combined=%v: saveFederation = %v, %v", combined, stored, err)
		}
		if !stored {
			d.appendEvents(ctx, []vipsmart.Event{{Kind: vipsmart.EventGIP, Message: "GIP g1 added"}})
		}
		want := [2]int{0, 0}
		if !combined {
			want = [2]int{1, 1}
		}
		if got := [2]int{cs.saves, cs.appends}; got != want {
			t.Errorf("combined=%v: SaveFederation, AppendEvents calls = %v, want %v", combined, got, want)
		}
		_, gips, err := st.LoadFederation(ctx)
		if err != nil || len(gips) != 1 {
			t.Fatalf("combined=%v: stored GIPs %v, %v", combined, gips, err)
		}
		evs, err := st.ListEvents(ctx, 0, 0)
		if err != nil || len(evs) == 0 {
			t.Fatalf("combined=%v: no event stored (%v)", combined, err)
		}
	}
}
