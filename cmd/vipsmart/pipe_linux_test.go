package main

import (
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/vipsmart/vipsmart"
	"golang.org/x/sys/unix"
)

// TestPrintApplyResultWidensPipe: the megabytes of a large apply's -o json
// go to a pipe widened to 1 MiB (where the kernel allows it), unchanged;
// a small answer leaves the pipe alone.
func TestPrintApplyResultWidensPipe(t *testing.T) {
	if raw, err := os.ReadFile("/proc/sys/fs/pipe-max-size"); err == nil {
		if max, _ := strconv.Atoi(strings.TrimSpace(string(raw))); max < bigOutput {
			t.Skipf("pipe-max-size is %d here, below %d", max, bigOutput)
		}
	}
	big := vipsmart.ApplyResult{ResourceVersion: "1-0123456789abcdef", Changes: make([]vipsmart.ObjectChange, 5000), Added: 5000, Applied: true}
	for i := range big.Changes {
		g := vipsmart.GIP{Name: fmt.Sprintf("g%05d", i), Address: netip.AddrFrom4([4]byte{10, 100, byte(i >> 8), byte(i)}), Mode: vipsmart.ModeFailover, Preempt: true, Placements: []vipsmart.Placement{{DC: "dc-1", Priority: 200}, {DC: "dc-2", Priority: 100}}}
		big.Changes[i] = vipsmart.ObjectChange{Kind: vipsmart.KindGIP, Name: g.Name, Action: vipsmart.ActionAdd, GIP: &g}
	}
	small := vipsmart.ApplyResult{ResourceVersion: "1-0123456789abcdef", Changes: big.Changes[:3]}
	for _, c := range []struct {
		name  string
		res   *vipsmart.ApplyResult
		wider bool
	}{{"big", &big, true}, {"small", &small, false}} {
		t.Run(c.name, func(t *testing.T) {
			var want bytes.Buffer
			if err := printApplyResult(&want, c.res); err != nil {
				t.Fatal(err)
			}
			if c.wider && want.Len() < 2*bigOutput {
				t.Fatalf("output of %d bytes: not big enough for this test", want.Len())
			}
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got := make(chan []byte)
			go func() {
				b, _ := io.ReadAll(r)
				got <- b
			}()
			if err := printApplyResult(w, c.res); err != nil {
				t.Fatal(err)
			}
			size, err := unix.FcntlInt(w.Fd(), unix.F_GETPIPE_SZ, 0)
			w.Close()
			if err != nil {
				t.Fatal(err)
			}
			if b := <-got; !bytes.Equal(b, want.Bytes()) {
				t.Fatalf("the pipe carried %d bytes, not the %d printed to a buffer", len(b), want.Len())
			}
			if c.wider && size < bigOutput {
				t.Fatalf("pipe buffer %d bytes after printing %d; want at least %d", size, want.Len(), bigOutput)
			}
			if !c.wider && size >= bigOutput {
				t.Fatalf("pipe buffer %d bytes after a small answer; want it left alone", size)
			}
		})
	}
}
