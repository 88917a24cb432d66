package hugeheap

import (
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkFirstTouch measures what hugeheap saves: the first touch of
// fresh anonymous memory, 64 MiB a round, with 4 KiB pages (as the Go
// heap gets under THP "madvise") and with MADV_HUGEPAGE. It reports the
// time per 4 KiB of memory touched and the page faults it took.
func BenchmarkFirstTouch(b *testing.B) {
	const size = 64 << 20
	for _, c := range []struct {
		name string
		huge bool
	}{{"4KiB-pages", false}, {"huge-pages", true}} {
		b.Run(c.name, func(b *testing.B) {
			if c.huge && Mode() == "never" {
				b.Skip("transparent huge pages are off (never) here")
			}
			var faults int64
			for b.Loop() {
				m, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
				if err != nil {
					b.Fatal(err)
				}
				if c.huge {
					if err := unix.Madvise(m, unix.MADV_HUGEPAGE); err != nil {
						b.Fatal(err)
					}
				}
				f0 := minflt(b)
				for i := 0; i < size; i += 4096 {
					m[i] = 1
				}
				faults += minflt(b) - f0
				if err := unix.Munmap(m); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(size/4096), "ns/4KiB")
			b.ReportMetric(float64(faults)/float64(b.N), "faults/op")
		})
	}
}

func minflt(b *testing.B) int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Minflt
}
