// Package hugeheap asks Linux to back the Go heap with transparent huge
// pages (2 MiB) where the kernel leaves them to the program's advice
// (/sys/kernel/mm/transparent_hugepage/enabled is "madvise", the default
// of several distributions and of this project's test machines).
//
// Why: the Go runtime maps its heap without MADV_HUGEPAGE, so under
// "madvise" every first touch of heap memory is a 4 KiB page fault. On a
// virtual machine a fault costs far more than on bare metal: 14.7 µs per
// 4 KiB page measured here against 0.3 µs per 4 KiB with huge pages. A
// member's share of a committed 10,000-GIP batch touches tens of
// megabytes of fresh heap (the decoded batch, the store's page buffers,
// the evaluation), so ten daemons on one host took 65,000 faults, a third
// of their CPU (BENCHMARKS.md, "hugeheap").
//
// How: Advise allocates one large block (which the runtime maps fresh and
// does not touch), advises the 2 MiB-aligned part of it with
// MADV_HUGEPAGE, and lets it go at once (a forced collection). The
// address range stays mapped in the heap with the kernel's huge-page flag
// on it, and the runtime's page allocator, which hands out the lowest
// free addresses first, places the heap's next growth there. Nothing is
// touched, so resident memory does not grow until the heap does; it then
// grows by 2 MiB pages. A mapping the runtime makes later (a heap past
// the advised range) has 4 KiB pages as before.
//
// Invariants: Advise never changes the kernel's settings, only the
// advice on memory the process already mapped; under "always" or "never",
// with GODEBUG=disablethp=1 (the runtime's own switch against huge
// pages), or under a limit of the address space (ulimit -v), it does
// nothing.
package hugeheap

import (
	"fmt"
	"os"
	"strings"
)

// Result says what Advise did.
type Result struct {
	// Mode is the kernel's THP mode ("always", "madvise" or "never"),
	// or "" where it could not be read (not Linux, no THP).
	Mode string
	// Advised is the number of bytes advised (0: none) and Start the
	// first of them.
	Advised int
	Start   uintptr
	// Skipped says why nothing was advised ("" when something was).
	Skipped string
}

func (r Result) String() string {
	if r.Advised > 0 {
		return fmt.Sprintf("%d MiB advised (transparent huge pages: %s)", r.Advised>>20, r.Mode)
	}
	return "not advised: " + r.Skipped
}

// modeFile is where Linux says its THP mode.
const modeFile = "/sys/kernel/mm/transparent_hugepage/enabled"

// Mode returns the kernel's THP mode, or "" if it cannot be read.
func Mode() string {
	b, err := os.ReadFile(modeFile)
	if err != nil {
		return ""
	}
	return parseMode(string(b))
}

// parseMode reads the selected word of modeFile's contents, e.g.
// "always [madvise] never" is "madvise".
func parseMode(s string) string {
	for _, w := range strings.Fields(s) {
		if len(w) > 2 && w[0] == '[' && w[len(w)-1] == ']' {
			return w[1 : len(w)-1]
		}
	}
	return ""
}

// skip says why the heap needs no advice under mode with godebug (the
// GODEBUG environment value), or "" if it does.
func skip(mode, godebug string) string {
	for _, s := range strings.Split(godebug, ",") {
		if strings.TrimSpace(s) == "disablethp=1" {
			return "GODEBUG=disablethp=1"
		}
	}
	switch mode {
	case "madvise":
		return ""
	case "always":
		return "transparent huge pages are always on"
	case "never":
		return "transparent huge pages are off (never)"
	case "":
		return "no transparent huge pages here"
	}
	return "unknown transparent huge page mode " + mode
}

// Advise advises n bytes (rounded down to whole 2 MiB pages) of fresh
// heap address space with MADV_HUGEPAGE, when the kernel's mode leaves
// huge pages to advice. Call it once, early: it forces a collection.
func Advise(n int) (Result, error) {
	r := Result{Mode: Mode()}
	if r.Skipped = skip(r.Mode, os.Getenv("GODEBUG")); r.Skipped != "" {
		return r, nil
	}
	return advise(r, n)
}
