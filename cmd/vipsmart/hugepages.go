package main

import (
	"os"
	"strings"
	"sync"

	"github.com/vipsmart/vipsmart/internal/hugeheap"
)

// heapAdvice is the heap address space that `vipsmart serve` and the
// commands that read or print whole files of objects (apply, diff,
// export) advise for transparent huge pages (internal/hugeheap): more
// than a daemon's heap at its peak (a 10,000-GIP batch on 10 DCs peaks
// near 60 MiB of resident memory). It is address space, not memory:
// nothing is resident until the heap grows into it.
const heapAdvice = 64 << 20

// adviseHeap advises this process's heap once (later calls return the
// first result), unless VIPSMART_HUGEPAGES is "off" (or "0", "false").
// A failure is not fatal: the heap keeps 4 KiB pages.
var adviseHeap = sync.OnceValue(func() string {
	switch strings.ToLower(os.Getenv("VIPSMART_HUGEPAGES")) {
	case "off", "0", "false", "no":
		return "not advised: VIPSMART_HUGEPAGES=" + os.Getenv("VIPSMART_HUGEPAGES")
	}
	r, err := hugeheap.Advise(heapAdvice)
	if err != nil {
		return err.Error()
	}
	return r.String()
})
