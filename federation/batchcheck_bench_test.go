package federation

import (
	"fmt"
	"testing"

	"github.com/vipsmart/vipsmart"
)

// BenchmarkBatchCheck measures a member's own check of a lock's batch
// (batchProblem: every placement names a member, the addresses stay
// unique once applied): 10,000 GIPs placed in 10 DCs, over 0 or 10,000
// GIPs the member holds.
func BenchmarkBatchCheck(b *testing.B) {
	dcs := make([]string, 10)
	members := make([]vipsmart.DC, 10)
	for i := range dcs {
		dcs[i] = fmt.Sprintf("dc-%d", i+1)
		members[i] = scDC(dcs[i])
	}
	put := make([]vipsmart.GIP, 10000)
	for i := range put {
		put[i] = batchGIP(i, dcs...)
	}
	bt := NewBatch(put, nil)
	for _, before := range []int{0, 10000} {
		var old []vipsmart.GIP
		for i := range before {
			old = append(old, batchGIP(100000+i, dcs...))
		}
		b.Run(fmt.Sprintf("gips-before=%d", before), func(b *testing.B) {
			rec := (&hardState{Version: recordVersion, Self: scDC("dc-2"), Status: vipsmart.StatusMember, FedID: "fed-1", Epoch: 7, Members: members}).encode()
			n, err := NewNode(scConfig("dc-2"), rec, old, simEpoch)
			if err != nil {
				b.Fatal(err)
			}
			n.Advance(n.Ready())
			b.ReportAllocs()
			for b.Loop() {
				if e := n.batchProblem(bt); e != nil {
					b.Fatalf("a valid batch refused: %v", e)
				}
			}
		})
	}
}
