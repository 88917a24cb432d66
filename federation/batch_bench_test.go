package federation

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"testing"

	"github.com/vipsmart/vipsmart"
)

// BenchmarkBatchLock measures what a lock carrying a batch of 10,000 GIPs
// placed in 10 DCs costs: json.Marshal of the lock at the coordinator
// (encode: what it paid per peer before httpapi spliced in the batch's
// cached encoding), and at a member the decoding and the edge check of the
// message (decode-validate). The binary encoding of the batch that a
// lock carries to a member that reads it (batchcodec.go): encode-binary
// at the coordinator (once per lock, not per member), and at a member
// decode-validate-binary: the message's JSON head (the lock with its
// batch slim) and the binary batch decoded, then the message checked.
//
//	go test ./federation -run '^$' -bench BenchmarkBatchLock -benchmem
func BenchmarkBatchLock(b *testing.B) {
	dcs := make([]string, 10)
	for i := range dcs {
		dcs[i] = fmt.Sprintf("dc-%d", i+1)
	}
	put := make([]vipsmart.GIP, 10000)
	for i := range put {
		put[i] = batchGIP(i, dcs...)
	}
	bt := NewBatch(put, nil)
	enc, err := json.Marshal((*batchJSON)(bt))
	if err != nil {
		b.Fatal(err)
	}
	bt.raw = enc // as proposeBatch caches it
	dc := func(name string, port uint16) vipsmart.DC {
		return vipsmart.DC{Name: name, Address: netip.MustParseAddr("127.0.0.1"), Port: port}
	}
	m := Message{Type: MsgLock, From: dc("dc-1", 9601), To: dc("dc-2", 9602), FedID: "fed-1", Epoch: 7, ToEpoch: 8, OpID: "dc-1-1",
		SenderFed: "fed-1", SenderEpoch: 7, Status: vipsmart.StatusMember, Change: &Change{Kind: ApplyGIPs, By: "test", Batch: bt}}
	raw, err := json.Marshal(m)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		for range b.N {
			if _, err := json.Marshal(m); err != nil {
				b.Fatal(err)
			}
		}
	})
	bin := bt.appendBinary(nil)
	slim := m
	sc := *m.Change
	sc.Batch = bt.slim()
	slim.Change = &sc
	head, err := json.Marshal(slim)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode-binary", func(b *testing.B) {
		b.SetBytes(int64(len(bin)))
		for range b.N {
			bt.appendBinary(make([]byte, 0, 64+bt.Count*48))
		}
	})
	b.Run("decode-validate-binary", func(b *testing.B) {
		b.SetBytes(int64(len(head) + len(bin)))
		for range b.N {
			var got Message
			if err := json.Unmarshal(head, &got); err != nil {
				b.Fatal(err)
			}
			var bb Batch
			if err := bb.UnmarshalBinary(bin); err != nil {
				b.Fatal(err)
			}
			got.Change.Batch = &bb
			if err := got.Validate(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode-validate", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		for range b.N {
			var got Message
			if err := json.Unmarshal(raw, &got); err != nil {
				b.Fatal(err)
			}
			if err := got.Validate(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
