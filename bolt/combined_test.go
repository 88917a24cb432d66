package bolt

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

// TestSaveFederationEvents: the record, the GIPs and the events land in
// one transaction, numbered after the events already stored, and the
// oldest beyond MaxEvents go; a refused update stores no event either.
func TestSaveFederationEvents(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), fileName)
	s := mustOpen(t, path, Options{MaxEvents: 3})
	if _, err := s.AppendEvents(ctx, []vipsmart.Event{{Kind: "k", Message: "first"}, {Kind: "k", Message: "second"}}); err != nil {
		t.Fatal(err)
	}
	g := vipsmart.GIP{Name: "g1", Address: netip.MustParseAddr("203.0.113.1"), Mode: vipsmart.ModeFailover, Placements: []vipsmart.Placement{{DC: "a", Priority: 100}}}
	now := time.Unix(1, 0).UTC()
	out, err := s.SaveFederationEvents(ctx, vipsmart.FederationUpdate{Record: []byte(`{"x":1}`), PutGIPs: []vipsmart.GIP{g}},
		[]vipsmart.Event{{Time: now, Kind: "k", Message: "third"}, {Time: now, Kind: "k", Message: "fourth"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0].Seq != 3 || out[1].Seq != 4 {
		t.Fatalf("numbered events = %+v, want seqs 3 and 4", out)
	}
	rec, gips, err := s.LoadFederation(ctx)
	if err != nil || string(rec) != `{"x":1}` || len(gips) != 1 || gips[0].Name != "g1" {
		t.Fatalf("LoadFederation = %q, %v, %v", rec, gips, err)
	}
	evs, err := s.ListEvents(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, e := range evs {
		msgs = append(msgs, e.Message)
	}
	if len(msgs) != 3 || msgs[0] != "second" || msgs[2] != "fourth" {
		t.Fatalf("events = %v, want [second third fourth]", msgs)
	}
	// A refused update (a GIP without a name) stores none of its events.
	if _, err := s.SaveFederationEvents(ctx, vipsmart.FederationUpdate{PutGIPs: []vipsmart.GIP{{}}}, []vipsmart.Event{{Kind: "k", Message: "lost"}}); err == nil {
		t.Fatal("an update with a nameless GIP was accepted")
	}
	if evs, _ := s.ListEvents(ctx, 4, 0); len(evs) != 0 {
		t.Fatalf("a refused update stored events: %+v", evs)
	}
}
