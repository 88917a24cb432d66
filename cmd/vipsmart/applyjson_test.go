package main

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

// plainResult is vipsmart.ApplyResult without its MarshalJSON: what
// printJSON wrote from the field tags.
type plainResult vipsmart.ApplyResult

// TestPrintApplyResultIsPrintJSON: the hand-written output of an apply's
// answer is byte for byte printJSON's, over strings that need escaping
// and empty and missing lists.
func TestPrintApplyResultIsPrintJSON(t *testing.T) {
	weird := []string{"", "web", `q"uo\te`, "<&>", "a\tb\nc", "\x01", "é", "\u2028", "bad\xff", "{[,:]}", `\"`, `"`}
	var results []vipsmart.ApplyResult
	results = append(results, vipsmart.ApplyResult{}, vipsmart.ApplyResult{Changes: []vipsmart.ObjectChange{}})
	for i := range 200 {
		w := func(k int) string { return weird[(i*7+k*3)%len(weird)] }
		res := vipsmart.ApplyResult{ResourceVersion: w(1), Added: i, Changed: i % 3, Removed: i % 5, Applied: i%2 == 0, OpID: w(2), Epoch: uint64(i) << 40, NewVersion: w(3), Changes: []vipsmart.ObjectChange{}}
		for k := range i % 5 {
			c := vipsmart.ObjectChange{Kind: w(k), Name: w(k + 1), Action: w(k + 2)}
			if k%2 == 0 {
				c.Fields = []string{w(k + 3), "mode: failover -> anycast"}
			}
			g := vipsmart.GIP{Name: w(k + 4), Address: netip.AddrFrom4([4]byte{10, 0, byte(k), byte(i)}), Mode: vipsmart.GIPMode(w(k + 5)), Preempt: k%3 == 0, Partition: vipsmart.PartitionPolicy(w(k))}
			if k%3 != 1 {
				g.Placements = []vipsmart.Placement{}
				for j := range k {
					g.Placements = append(g.Placements, vipsmart.Placement{DC: w(j), Priority: j - 1, VIP: w(j + 1)})
				}
			}
			switch k % 3 {
			case 0:
				c.GIP = &g
			case 1:
				c.VIP = &vipsmart.VIP{Name: w(k), Address: netip.MustParseAddr("2001:db8::7"), Interface: w(k + 1), Created: time.Unix(int64(i)*1000, 0).UTC(),
					Check: &vipsmart.Check{URL: "http://x/" + w(k), Interval: vipsmart.Duration(time.Second)}, Nodes: []vipsmart.VIPNode{{Node: w(k), Priority: k}}}
			}
			res.Changes = append(res.Changes, c)
		}
		results = append(results, res)
	}
	for i, res := range results {
		var want, got bytes.Buffer
		if err := printJSON(&want, plainResult(res)); err != nil {
			t.Fatal(err)
		}
		if err := printApplyResult(&got, &res); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("result %d:\n got %s\nwant %s", i, got.Bytes(), want.Bytes())
		}
	}
}

// BenchmarkPrintApplyResult: `apply -o json`'s output of 10,000 GIPs in
// 10 DCs, by printJSON (the library) and by printApplyResult, written to
// a writer that only counts.
func BenchmarkPrintApplyResult(b *testing.B) {
	res := vipsmart.ApplyResult{ResourceVersion: "1-0123456789abcdef", Changes: make([]vipsmart.ObjectChange, 10000), Added: 10000, Applied: true, OpID: "op-1", Epoch: 2, NewVersion: "2-0123456789abcdef"}
	for i := range res.Changes {
		g := vipsmart.GIP{Name: fmt.Sprintf("g%05d", i), Address: netip.AddrFrom4([4]byte{10, 100, byte(i >> 8), byte(i)}), Mode: vipsmart.ModeFailover, Preempt: true, Partition: "available"}
		for j := range 10 {
			g.Placements = append(g.Placements, vipsmart.Placement{DC: fmt.Sprintf("dc-%d", j+1), Priority: 200 - j})
		}
		res.Changes[i] = vipsmart.ObjectChange{Kind: vipsmart.KindGIP, Name: g.Name, Action: vipsmart.ActionAdd, GIP: &g}
	}
	b.Run("library", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var w countWriter
			if err := printJSON(&w, plainResult(res)); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(w))
		}
	})
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var w countWriter
			if err := printApplyResult(&w, &res); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(w))
		}
	})
}

// countWriter counts the bytes written to it (standard output, as far as
// the encoding's cost goes).
type countWriter int

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}
