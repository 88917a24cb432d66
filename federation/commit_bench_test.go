package federation

import (
	"fmt"
	"testing"

	"github.com/vipsmart/vipsmart"
)

// BenchmarkBatchCommit measures a member's share of the commit of a batch
// of 10,000 GIPs placed in 10 DCs, as the daemon drives it: the decision
// applied from the batch of the lock the member holds, the Ready that
// hands the store the 10,000 GIPs to persist, Advance, and the sorted GIP
// list the daemon's evaluation reads (SortedGIPs). Before it the member
// holds no GIPs (the first apply) or 10,000 others (the second).
//
//	go test ./federation -run '^$' -bench BenchmarkBatchCommit -benchmem
func BenchmarkBatchCommit(b *testing.B) {
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
			c := Change{Kind: ApplyGIPs, By: "bench", Batch: bt}
			d := Decision{FedID: "fed-1", FromEpoch: 7, ToEpoch: 8, OpID: "dc-1-1", Coordinator: "dc-1", Change: slimChange(c)}
			for b.Loop() {
				b.StopTimer()
				n, err := NewNode(scConfig("dc-2"), rec, old, simEpoch)
				if err != nil {
					b.Fatal(err)
				}
				n.Advance(n.Ready())
				n.SortedGIPs() // the daemon's list before the commit
				n.h.Lock = &lockRec{OpID: "dc-1-1", Coordinator: members[0], FedID: "fed-1", Epoch: 7, ToEpoch: 8, Change: c}
				b.StartTimer()
				n.applyDecision(simEpoch, d)
				rd := n.Ready()
				if rd.Update == nil || len(rd.Update.PutGIPs) != len(put) {
					b.Fatalf("the commit's update: %+v", rd.Update)
				}
				n.Advance(rd)
				if gs := n.SortedGIPs(); len(gs) != len(put)+before {
					b.Fatalf("%d GIPs after the commit, want %d", len(gs), len(put)+before)
				}
			}
		})
	}
}
