package federation

import (
	"testing"
	"time"
)

// TestQuorumFailoverBound partitions the active DC of a consistent GIP
// away from the two others (and, separately, crashes it) and checks that
// it withdraws, that the best remaining DC takes over no later than the
// documented bound, and that after the heal exactly one DC is active.
func TestQuorumFailoverBound(t *testing.T) {
	for _, crash := range []bool{false, true} {
		s := newQsim(1, false)
		s.calm = true
		// No chaos: drive the faults by hand.
		s.gip.Preempt = true
		for i := range s.gip.Placements {
			s.gip.Placements[i].Priority = 300 - 100*(i+1) // dc-1 200, dc-2 100, dc-3 0 -> fix below
		}
		s.gip.Placements[2].Priority = 50
		for _, d := range s.dcs {
			s.start(d)
		}
		run := func(d time.Duration) {
			for end := s.now.Add(d); s.now.Before(end); {
				s.now = s.now.Add(qStep)
				s.deliver()
				s.tickAll()
				if err := s.checkOne(); err != nil {
					t.Fatal(err)
				}
			}
		}
		run(3 * time.Second)
		if !s.by["dc-1"].active {
			t.Fatalf("dc-1 (priority 200) is not active after 3s")
		}
		at := s.now
		if crash {
			s.by["dc-1"].down = true
			s.by["dc-1"].active = false
			s.by["dc-1"].upAt = at.Add(time.Hour)
		} else {
			for _, o := range []string{"dc-2", "dc-3"} {
				s.cut[[2]string{"dc-1", o}], s.cut[[2]string{o, "dc-1"}] = true, true
			}
		}
		var took time.Duration
		for took = 0; took < 5*time.Second && !s.by["dc-2"].active; took += qStep {
			run(qStep)
		}
		n := s.by["dc-2"].node
		bound := n.SupportWindow() + 2*n.cfg.HeartbeatInterval
		t.Logf("crash=%t: dc-2 took over after %s (bound %s)", crash, took, bound)
		if !s.by["dc-2"].active || took > bound {
			t.Fatalf("crash=%t: dc-2 active=%t after %s, bound %s", crash, s.by["dc-2"].active, took, bound)
		}
		if !crash && s.by["dc-1"].active {
			t.Fatalf("dc-1 is still active in the minority")
		}
		s.cut = map[[2]string]bool{}
		if crash {
			s.start(s.by["dc-1"])
		}
		run(4 * time.Second)
		if !s.by["dc-1"].active || s.by["dc-2"].active {
			t.Fatalf("after the heal: dc-1 active=%t dc-2 active=%t, want dc-1 only (preempt)", s.by["dc-1"].active, s.by["dc-2"].active)
		}
	}
}
