package main

import (
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestGCPercentFor(t *testing.T) {
	for _, c := range []struct {
		live uint64
		want int
	}{{0, 100}, {1 << 20, 400}, {4 << 20, 400}, {6 << 20, 250}, {8 << 20, 200}, {12 << 20, 100}, {16 << 20, 100}, {1 << 30, 100}} {
		if got := gcPercentFor(c.live); got != c.want {
			t.Errorf("gcPercentFor(%d MiB) = %d, want %d", c.live>>20, got, c.want)
		}
	}
}

// TestTuneGC: in a process with a small heap (this test's), tuneGC raises
// GOGC after a collection; with GOGC set in the environment it leaves
// Go's setting alone.
func TestTuneGC(t *testing.T) {
	if os.Getenv("GOGC") != "" {
		t.Skip("GOGC is set in the environment: tuneGC leaves it")
	}
	gogc := func() int { p := debug.SetGCPercent(100); debug.SetGCPercent(p); return p }
	tuneGC(slog.New(slog.DiscardHandler))
	deadline := time.Now().Add(5 * time.Second)
	for gogc() <= 100 && time.Now().Before(deadline) {
		runtime.GC() // the finalizer runs after it, on its own goroutine
		time.Sleep(10 * time.Millisecond)
	}
	if p := gogc(); p <= 100 {
		t.Fatalf("GOGC is %d with a small heap; want it raised above 100", p)
	}
}
