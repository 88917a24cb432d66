package main

import (
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// gcHeadroom is the room `vipsmart serve` leaves between its live heap and
// the next garbage collection while that heap is small. A DC at rest holds
// a few MB; with Go's default (GOGC=100: collect when the heap doubles,
// and at 4 MB at the least) each daemon collected about 1.5 times a
// second, heartbeats and federation messages allocating all the time,
// which cost about a tenth of its CPU on a host that runs many daemons
// (BENCHMARKS.md, issue 9, msg9). From a live heap of gcHeadroom on (a DC
// with thousands of GIPs) Go's default holds unchanged, and so does the
// soft memory limit (memlimit.go), so the bound on memory stays as it was:
// at most gcHeadroom more heap, for small heaps only.
const gcHeadroom = 16 << 20

// maxGCPercent bounds the GOGC tuneGC sets (for a live heap of 4 MiB or
// less). Go scales its minimum heap (4 MB) by GOGC/100: 16 MB at most.
const maxGCPercent = 400

var tuneGCOnce sync.Once

// tuneGC keeps the garbage collector's target at least gcHeadroom above
// the live heap, by setting GOGC after each collection, unless GOGC is
// set in the environment (then Go's setting holds).
func tuneGC(log *slog.Logger) {
	if v := os.Getenv("GOGC"); v != "" {
		log.Debug("garbage collection from GOGC", "gogc", v)
		return
	}
	tuneGCOnce.Do(func() {
		t := &gcTuner{sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}, percent: 100}
		t.arm() // from the first collection on: before it, the live heap is not known
		// (and Go scales its 4 MB minimum heap by GOGC: a high GOGC at
		// start would let the heap grow to 64 MB before collecting once)
	})
}

type gcTuner struct {
	sample  []metrics.Sample
	percent int
}

// gcSentinel is garbage whose finalizer runs after a collection found it.
type gcSentinel struct {
	_ *int // not a tiny allocation: its finalizer runs
	_ [16]byte
}

// arm makes the next collection call adjust (and arm again).
func (t *gcTuner) arm() {
	runtime.SetFinalizer(&gcSentinel{}, func(*gcSentinel) {
		t.adjust()
		t.arm()
	})
}

// adjust sets GOGC for the live heap the last collection found.
func (t *gcTuner) adjust() {
	metrics.Read(t.sample)
	if t.sample[0].Value.Kind() != metrics.KindUint64 {
		return
	}
	p := gcPercentFor(t.sample[0].Value.Uint64())
	if p != t.percent {
		debug.SetGCPercent(p)
		t.percent = p
	}
}

// gcPercentFor is the GOGC that puts the next collection gcHeadroom above
// a live heap of live bytes (at least Go's default of 100, at most
// maxGCPercent), rounded down to a multiple of 50 so that it changes
// seldom.
func gcPercentFor(live uint64) int {
	if live == 0 || live >= gcHeadroom {
		return 100 // not measured yet, or large
	}
	p := int(gcHeadroom * 100 / max(live, gcHeadroom*100/maxGCPercent))
	return max(100, p/50*50)
}
