package hugeheap

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugePage is the size of an x86-64 and arm64 transparent huge page.
const hugePage = 2 << 20

func advise(r Result, n int) (Result, error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_AS, &lim); err == nil && lim.Cur != unix.RLIM_INFINITY {
		// Under `ulimit -v` the block itself could fail the process.
		r.Skipped = fmt.Sprintf("the address space is limited (ulimit -v, %d MiB)", lim.Cur>>20)
		return r, nil
	}
	b := make([]byte, n) // a large block: fresh pages, mapped, not touched
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	beg := (p + hugePage - 1) &^ (hugePage - 1)
	end := (p + uintptr(n)) &^ (hugePage - 1)
	if beg >= end {
		r.Skipped = fmt.Sprintf("%d bytes hold no whole 2 MiB page", n)
		return r, nil
	}
	err := unix.Madvise(b[beg-p:end-p], unix.MADV_HUGEPAGE)
	runtime.KeepAlive(b)
	b = nil
	runtime.GC() // the block goes back to the heap's free pages at once
	if err != nil {
		r.Skipped = "madvise: " + err.Error()
		return r, fmt.Errorf("hugeheap: madvise(MADV_HUGEPAGE) of %d MiB: %w", (end-beg)>>20, err)
	}
	r.Advised, r.Start = int(end-beg), beg
	return r, nil
}
