package federation

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/vipsmart/vipsmart"
)

// TestPutBatchIsOneByOne: a large change applied by putBatch leaves the
// node as putGIP and delGIP one GIP at a time do: the same GIPs, the same
// update for the store at the next Ready, the same sorted list, with or
// without the list cached before, and with small changes before and
// after it (before Ready) and another large one after it.
func TestPutBatchIsOneByOne(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 10))
	names := func(k int) string { return fmt.Sprintf("g-%04d", k) }
	gip := func(k, v int) vipsmart.GIP {
		g := batchGIP(k, "dc-1", "dc-2")
		g.Name = names(k)
		g.Placements[0].Priority = v
		return g
	}
	// change is a sorted put and a delete of names not put, from a
	// universe of 400 names.
	change := func(have map[string]vipsmart.GIP) ([]vipsmart.GIP, []string) {
		var put []vipsmart.GIP
		var del []string
		for k := range 400 {
			switch r := rng.IntN(10); {
			case r < 4:
				put = append(put, gip(k, rng.IntN(1000)))
			case r < 5:
				if _, ok := have[names(k)]; ok || rng.IntN(4) == 0 {
					del = append(del, names(k)) // sometimes one that is not there
				}
			}
		}
		rng.Shuffle(len(del), func(i, j int) { del[i], del[j] = del[j], del[i] })
		return put, del
	}
	oneByOne := func(n *Node, put []vipsmart.GIP, del []string) {
		n.growGIPs(len(put))
		for _, g := range put {
			n.putGIP(g)
		}
		for _, name := range del {
			n.delGIP(name)
		}
	}
	fast := 0
	for round := range 300 {
		var before []vipsmart.GIP
		for k := range 400 {
			if rng.IntN(3) == 0 {
				before = append(before, gip(k, k))
			}
		}
		a, err := NewNode(scConfig("dc-1"), nil, before, simEpoch)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := NewNode(scConfig("dc-1"), nil, before, simEpoch)
		a.Advance(a.Ready())
		b.Advance(b.Ready())
		cached := rng.IntN(2) == 0
		if cached {
			a.SortedGIPs()
			b.SortedGIPs()
		}
		small := func() {
			switch rng.IntN(4) {
			case 0:
				g := gip(rng.IntN(400), -1)
				a.putGIP(g)
				b.putGIP(g)
			case 1:
				name := names(rng.IntN(400))
				a.delGIP(name)
				b.delGIP(name)
			}
		}
		if rng.IntN(3) == 0 {
			small() // then putBatch must leave it to oneByOne
		}
		steps := 1 + rng.IntN(2)
		for range steps {
			put, del := change(a.gips)
			if a.putBatch(put, del) {
				fast++
			} else {
				oneByOne(a, put, del)
			}
			oneByOne(b, put, del)
			if rng.IntN(2) == 0 {
				small()
			}
		}
		ra, rb := a.Ready(), b.Ready()
		if !reflect.DeepEqual(ra.Update, rb.Update) {
			t.Fatalf("round %d (cached %v): the update for the store differs:\nputBatch   put %v del %v replace %v\none by one put %v del %v replace %v", round, cached,
				gipNames(ra.Update.PutGIPs), ra.Update.DeleteGIPs, ra.Update.ReplaceGIPs, gipNames(rb.Update.PutGIPs), rb.Update.DeleteGIPs, rb.Update.ReplaceGIPs)
		}
		if !reflect.DeepEqual(a.gips, b.gips) {
			t.Fatalf("round %d: the node's GIPs differ", round)
		}
		if ga, gb := a.SortedGIPs(), b.SortedGIPs(); !reflect.DeepEqual(ga, gb) || !slices.IsSortedFunc(ga, byName) {
			t.Fatalf("round %d (cached %v): sorted lists differ:\n%v\n%v", round, cached, gipNames(ga), gipNames(gb))
		}
		a.Advance(ra)
		b.Advance(rb)
		if a.HasReady() || a.putSorted != nil || len(a.putGIPs)+len(a.delGIPs) > 0 {
			t.Fatalf("round %d: something is left for the next Ready after Advance", round)
		}
	}
	if fast < 100 {
		t.Fatalf("putBatch took its way in %d rounds only: the test does not test it", fast)
	}
	// Unsorted, or a name twice, goes one by one.
	n, _ := NewNode(scConfig("dc-1"), nil, nil, simEpoch)
	var put []vipsmart.GIP
	for k := range 100 {
		put = append(put, gip(k, k))
	}
	put[3], put[4] = put[4], put[3]
	if n.putBatch(put, nil) {
		t.Fatal("putBatch took an unsorted list")
	}
	put[3], put[4] = put[4], put[3] // sorted again
	put[4] = put[3]
	if n.putBatch(put, nil) {
		t.Fatal("putBatch took a name twice")
	}
	put[4] = gip(4, 4)
	if !n.putBatch(put, nil) || len(n.SortedGIPs()) != 100 {
		t.Fatal("putBatch refused a sorted list of 100 GIPs")
	}
}

func gipNames(gs []vipsmart.GIP) []string {
	out := make([]string, 0, len(gs))
	for _, g := range gs {
		out = append(out, fmt.Sprintf("%s/%d", g.Name, g.Placements[0].Priority))
	}
	return out
}
