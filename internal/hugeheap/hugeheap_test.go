package hugeheap

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
)

func TestParseMode(t *testing.T) {
	for in, want := range map[string]string{
		"always [madvise] never\n": "madvise",
		"[always] madvise never\n": "always",
		"always madvise [never]\n": "never",
		"always madvise never\n":   "",
		"":                         "",
	} {
		if got := parseMode(in); got != want {
			t.Errorf("parseMode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSkip(t *testing.T) {
	for _, c := range []struct {
		mode, godebug string
		advise        bool
	}{
		{"madvise", "", true},
		{"madvise", "schedtrace=2147483647", true},
		{"madvise", "schedtrace=2147483647,disablethp=1", false},
		{"madvise", "disablethp=0", true},
		{"always", "", false},
		{"never", "", false},
		{"", "", false},
		{"bogus", "", false},
	} {
		if got := skip(c.mode, c.godebug) == ""; got != c.advise {
			t.Errorf("skip(%q, %q) = %q: advise %v, want %v", c.mode, c.godebug, skip(c.mode, c.godebug), got, c.advise)
		}
	}
}

// TestAdviseFlagsTheHeap checks, in this process's own memory map, that
// the advised range is heap memory with the kernel's huge-page flag ("hg"
// in /proc/self/smaps) and stays so after the heap reuses it.
func TestAdviseFlagsTheHeap(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("hugeheap advises only on Linux")
	}
	mode := Mode()
	r, err := Advise(16 << 20)
	if err != nil {
		t.Fatal(err)
	}
	if skip(mode, os.Getenv("GODEBUG")) != "" {
		if r.Advised != 0 || r.Skipped == "" {
			t.Fatalf("mode %q: Advise = %+v, want nothing advised and a reason", mode, r)
		}
		t.Skipf("transparent huge pages are %q here (%s): nothing to advise", mode, r)
	}
	if strings.HasPrefix(r.Skipped, "the address space is limited") {
		t.Skipf("%s", r)
	}
	if r.Advised < 14<<20 || r.Advised > 16<<20 || r.Advised%hugePage != 0 || r.Start%hugePage != 0 || r.Skipped != "" {
		t.Fatalf("Advise(16 MiB) = %+v (%s), want 14 or 16 MiB of whole 2 MiB pages", r, r)
	}
	flags, err := vmFlags(r.Start, r.Start+uintptr(r.Advised))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(" "+flags+" ", " hg ") {
		t.Fatalf("the advised range %#x+%d MiB has VmFlags %q, without hg (MADV_HUGEPAGE)", r.Start, r.Advised>>20, flags)
	}
	// The heap reuses the range: fill it with small objects.
	keep := make([][]byte, 0, 1<<15)
	for range 1 << 15 {
		keep = append(keep, make([]byte, 256))
	}
	if flags, err = vmFlags(r.Start, r.Start+uintptr(r.Advised)); err != nil || !strings.Contains(" "+flags+" ", " hg ") {
		t.Fatalf("after use: VmFlags %q, %v", flags, err)
	}
	runtime.KeepAlive(keep)
	t.Logf("%s; VmFlags %s", r, flags)
}

// vmFlags returns the VmFlags of the one mapping of /proc/self/smaps that
// holds [from, to).
func vmFlags(from, to uintptr) (string, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return "", err
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(l, "%x-%x ", &lo, &hi); n == 2 && strings.Contains(l, "-") && !strings.HasSuffix(strings.Fields(l)[0], ":") {
			in = lo <= from && to <= hi
			continue
		}
		if in && strings.HasPrefix(l, "VmFlags:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "VmFlags:")), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("no one mapping of /proc/self/smaps holds %#x-%#x", from, to)
}
