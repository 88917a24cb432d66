package daemon

import (
	"context"
	"time"
)

// Timer coalescing. At rest a daemon's work is its clock: the loop's tick
// (a quarter of a heartbeat interval), the keeper's check and the
// heartbeats its peers send at their own ticks. Each wake-up of an idle
// Go process costs far more than the little work it does (threads woken
// and parked again, the scheduler looking for work), and a message that
// arrives while the process is awake anyway costs only its own work. So
// the clocks are phase-aligned to the wall clock: every tick falls on a
// multiple of the tick interval since the Unix epoch (as the kernel's
// round_jiffies batches timers). Daemons on one host (the demo, the
// benchmarks, several DCs per machine) then wake together and find their
// peers' heartbeats as they arrive; hosts with synchronized clocks do
// the same. Nothing about what is sent, or how often, changes: a tick is
// only shifted once, by less than one interval, at start.

// alignedTicker returns a ticker of period p whose ticks fall on
// multiples of p since the Unix epoch; it waits (at most p) for the first
// such instant unless ctx ends first.
func alignedTicker(ctx context.Context, p time.Duration) *time.Ticker {
	if w := untilAligned(time.Now(), p); w > 0 {
		t := time.NewTimer(w)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	return time.NewTicker(p)
}

// untilAligned is how long after now the next multiple of p since the
// Unix epoch comes (0 if now is one).
func untilAligned(now time.Time, p time.Duration) time.Duration {
	if p <= 0 {
		return 0
	}
	r := time.Duration(now.UnixNano() % int64(p))
	if r == 0 {
		return 0
	}
	return p - r
}
