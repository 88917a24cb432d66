package federation

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/vipsmart/vipsmart"
)

// TestNewBatchSortsWithoutChangingItsInput: NewBatch puts every GIP's
// placements in SortPlacements' order, whatever order they come in (ties,
// a DC twice), and never reorders the caller's placements: it copies those
// out of order and shares only those already in order.
func TestNewBatchSortsWithoutChangingItsInput(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 1))
	dcs := []string{"dc-1", "dc-2", "dc-3", "dc-4"}
	var put []vipsmart.GIP
	for i := range 2000 {
		g := batchGIP(i)
		for range 1 + rng.IntN(5) {
			g.Placements = append(g.Placements, vipsmart.Placement{DC: dcs[rng.IntN(len(dcs))], Priority: 100 + rng.IntN(3)})
		}
		if i%3 == 0 {
			vipsmart.SortPlacements(g.Placements)
		}
		put = append(put, g)
	}
	orig := make([][]vipsmart.Placement, len(put))
	for i, g := range put {
		orig[i] = slices.Clone(g.Placements)
	}
	b := NewBatch(put, nil)
	shared := 0
	for i, g := range put {
		if !slices.Equal(g.Placements, orig[i]) {
			t.Fatalf("GIP %s: NewBatch changed the caller's placements: %v, were %v", g.Name, g.Placements, orig[i])
		}
		want := slices.Clone(orig[i])
		vipsmart.SortPlacements(want)
		j := slices.IndexFunc(b.Put, func(bg vipsmart.GIP) bool { return bg.Name == g.Name })
		if got := b.Put[j].Placements; !slices.Equal(got, want) {
			t.Fatalf("GIP %s: batch placements %v, want %v", g.Name, got, want)
		}
		if &b.Put[j].Placements[0] == &g.Placements[0] {
			shared++
			if !slices.Equal(orig[i], want) {
				t.Fatalf("GIP %s: placements out of order %v shared with the caller", g.Name, orig[i])
			}
		}
	}
	if shared < 600 {
		t.Fatalf("%d GIPs' placements shared: NewBatch copies the ones in order too", shared)
	}
}
