package federation

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/vipsmart/vipsmart"
)

// batchProposal is a random ApplyGIPs proposal at d: writes and deletes of
// up to 6 GIPs among gip-1..gip-8, mostly at d's current epoch, sometimes
// at a stale one (refused). Invariant 2 then covers whole batches: every
// state the simulation sees at a (federation, epoch) holds all of a
// batch's changes or none.
func (s *sim) batchProposal(d *simDC) Proposal {
	h := &d.node.h
	b := &Batch{}
	used := map[int]bool{}
	for range 1 + s.rng.IntN(6) {
		i := 1 + s.rng.IntN(8)
		if used[i] {
			continue
		}
		used[i] = true
		name := fmt.Sprintf("gip-%d", i)
		if _, ok := d.node.gips[name]; ok && s.rng.IntN(3) == 0 {
			b.Delete = append(b.Delete, name)
			continue
		}
		g := vipsmart.GIP{Name: name, Address: netip.AddrFrom4([4]byte{192, 0, 2, byte(16 + i)}), Mode: vipsmart.ModeAnycast, Preempt: true}
		if i%2 == 0 { // the even ones consistent (invariant 2 covers the policy too); no draw, so the seeds run as before
			g.Mode, g.Partition = vipsmart.ModeFailover, vipsmart.PartitionConsistent
		}
		for _, m := range h.Members {
			if s.rng.IntN(2) == 0 {
				g.Placements = append(g.Placements, vipsmart.Placement{DC: m.Name, Priority: 1 + s.rng.IntN(255)})
			}
		}
		b.Put = append(b.Put, g)
	}
	p := Proposal{Kind: ApplyGIPs, Batch: b, ExpectEpoch: h.Epoch}
	if s.rng.IntN(8) == 0 && h.Epoch > 1 {
		p.ExpectEpoch = h.Epoch - 1
	}
	return p
}

// TestSimulationCommitsBatches checks that the simulation's faults do meet
// committed batches (so that TestSimulation's invariants cover them): over
// a few seeds, some ApplyGIPs operations are acknowledged.
func TestSimulationCommitsBatches(t *testing.T) {
	batches, refused := 0, 0
	for seed := range int64(40) {
		s, err := runSim(seed, false)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		for _, a := range s.acks {
			if a.d.Change.Kind == ApplyGIPs {
				batches++
			}
		}
		for _, line := range s.trace {
			if strings.Contains(line.String(), "changed since the diff") {
				refused++
			}
		}
	}
	if batches == 0 {
		t.Fatal("no batch was acknowledged in 40 simulated runs")
	}
	t.Logf("40 runs: %d batches acknowledged, %d refused for a stale expected epoch", batches, refused)
}
