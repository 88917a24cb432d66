package federation

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vipsmart/vipsmart"
)

// codecBatch is a batch with every field set somewhere: VIPs, both modes
// and partitions, preempt off, a GIP without placements, IPv6, and
// deletes.
func codecBatch() *Batch {
	put := []vipsmart.GIP{batchGIP(1, "dc-1", "dc-2"), batchGIP(2, "dc-2")}
	put[0].Placements[1].VIP = "web"
	put[1].Mode = vipsmart.ModeAnycast
	put[1].Preempt = false
	put = append(put, vipsmart.GIP{Name: "v6", Address: netip.MustParseAddr("2001:db8::2"), Partition: vipsmart.PartitionConsistent},
		vipsmart.GIP{Name: "empty", Address: netip.MustParseAddr("2001:db8::1")})
	return NewBatch(put, []string{"old-1", "old-2"})
}

// TestBatchBinaryRoundTrip: a batch decodes from its binary encoding to
// itself, with the same digest, and validates.
func TestBatchBinaryRoundTrip(t *testing.T) {
	for _, b := range []*Batch{codecBatch(), NewBatch(nil, []string{"gone"}), NewBatch([]vipsmart.GIP{batchGIP(7, "dc-1")}, nil)} {
		enc, err := b.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got Batch
		if err := got.UnmarshalBinary(enc); err != nil {
			t.Fatalf("decoding %d bytes: %v", len(enc), err)
		}
		if !sameBatch(&got, b) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, *b)
		}
		if err := got.validate(); err != nil {
			t.Fatalf("decoded batch: %v", err)
		}
		b.CacheBinary()
		if !bytes.Equal(b.EncodedBinary(), enc) {
			t.Fatal("the cached encoding differs from MarshalBinary's")
		}
	}
	if _, err := codecBatch().slim().MarshalBinary(); err == nil {
		t.Fatal("a slim batch was encoded")
	}
	// An address with a zone travels as it is and is refused by the
	// validation, as from JSON.
	z := NewBatch([]vipsmart.GIP{{Name: "z", Address: netip.MustParseAddr("fe80::1%eth0")}}, nil)
	enc, _ := z.MarshalBinary()
	var got Batch
	if err := got.UnmarshalBinary(enc); err != nil || got.Put[0].Address != z.Put[0].Address {
		t.Fatalf("zone: %v %v", err, got.Put)
	}
	if err := got.validate(); err == nil || !strings.Contains(err.Error(), "zone") {
		t.Fatalf("zone: validation says %v", err)
	}
}

// TestBatchBinaryRefused: every malformed encoding is refused with a
// message naming what is wrong, and a decoded batch whose content was
// changed fails validation (its digest).
func TestBatchBinaryRefused(t *testing.T) {
	b := codecBatch()
	enc, _ := b.MarshalBinary()
	// The encoding of a batch of one GIP with one placement, built by
	// hand, to change one field at a time.
	build := func(f func(w *wire)) []byte {
		w := &wire{}
		w.raw('V', 'S', 'B', 1)
		w.u(1)
		w.s(strings.Repeat("0", 71))
		w.u(3)
		w.s("failover")
		w.s("")
		w.s("dc-1")
		w.u(1)
		w.s("g")
		w.u(4)
		w.raw(10, 0, 0, 1)
		w.u(0)
		w.raw(1)
		w.u(1)
		w.u(1)
		w.u(2)
		w.v(100)
		w.u(1)
		w.u(0)
		if f != nil {
			f(w)
		}
		return w.b
	}
	const at = 4 + 1 + 1 + 71 + 1 + 9 + 1 + 5 // where the number of GIPs written is
	var ok Batch
	if err := ok.UnmarshalBinary(build(nil)); err != nil {
		t.Fatalf("the hand-built encoding: %v", err)
	}
	cases := []struct {
		name, want string
		in         []byte
	}{
		{"empty", "not a binary batch", nil},
		{"JSON", "not a binary batch", []byte(`{"count":1}`)},
		{"version 2", "version 2", []byte{'V', 'S', 'B', 2, 1}},
		{"truncated", "", enc[:len(enc)-1]},
		{"trailing", "bytes after the batch", append(append([]byte{}, enc...), 0)},
		{"count 0", "count 0", []byte{'V', 'S', 'B', 1, 0}},
		{"count too large", "count", binary.AppendUvarint([]byte{'V', 'S', 'B', 1}, MaxBatchChanges+1)},
		{"bad varint", "not a well-formed number", []byte{'V', 'S', 'B', 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{"huge table", "string table", build(func(w *wire) { w.b = append(w.b[:4+1+1+71], binary.AppendUvarint(nil, 1<<40)...) })},
		{"more GIPs than count", "GIPs written", replaceAt(build(nil), at, 2)},
		{"fewer changes than count", "count 2, but it carries 1", replaceAt(build(nil), 4, 2)},
		{"index out of table", "string 3 of a table of 3", replaceAt(build(nil), at+8, 3)},
		{"preempt 2", "preempt", replaceAt(build(nil), at+9, 2)},
		{"not UTF-8", "not UTF-8", build(func(w *wire) {
			w.b = append(w.b[:4+1+1+71+1+9+1], 5, 'd', 'c', 0xff, 0xfe, '1')
			w.u(0)
		})},
		{"long string", "more than 255", build(func(w *wire) {
			w.b = w.b[:4+1+1+71+1]
			w.u(256)
			w.raw(make([]byte, 300)...)
		})},
		{"address of 3 bytes", "address", replaceAt(build(nil), at+3, 3)},
	}
	for _, c := range cases {
		var got Batch
		err := got.UnmarshalBinary(c.in)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want it to say %q", c.name, err, c.want)
		}
		if got.Count != 0 || got.Put != nil {
			t.Errorf("%s: the batch was changed", c.name)
		}
	}
	// A GIP's name changed in the encoding: decodes, but its digest no
	// longer matches, so the lock is malformed.
	i := bytes.Index(enc, []byte("g-1"))
	tampered := bytes.Clone(enc)
	tampered[i+2] = '9'
	var got Batch
	if err := got.UnmarshalBinary(tampered); err != nil {
		t.Fatal(err)
	}
	if err := got.validate(); err == nil || !strings.Contains(err.Error(), "digest") {
		t.Fatalf("tampered content: %v", err)
	}
}

// TestBatchBinaryPlacementBound: a small input cannot make the decoder
// hold more placements than a batch may carry.
func TestBatchBinaryPlacementBound(t *testing.T) {
	w := &wire{}
	w.raw('V', 'S', 'B', 1)
	w.u(2)
	w.s(strings.Repeat("0", 71))
	w.u(1)
	w.s("dc-1")
	w.u(2)
	for g := range 2 {
		w.s([]string{"a", "b"}[g])
		w.u(0)
		w.u(0)
		w.raw(0)
		w.u(0)
		w.u(maxBatchPlacements/2 + 1)
		for range maxBatchPlacements/2 + 1 {
			w.u(0)
			w.v(1)
			w.u(0)
		}
	}
	w.u(0)
	var got Batch
	if err := got.UnmarshalBinary(w.b); err == nil || !strings.Contains(err.Error(), "placements in the batch") {
		t.Fatalf("got %v, want the placement bound", err)
	}
}

type wire struct{ b []byte }

func (w *wire) raw(b ...byte) { w.b = append(w.b, b...) }
func (w *wire) u(v uint64)    { w.b = binary.AppendUvarint(w.b, v) }
func (w *wire) v(v int64)     { w.b = binary.AppendVarint(w.b, v) }
func (w *wire) s(s string)    { w.u(uint64(len(s))); w.b = append(w.b, s...) }

func replaceAt(b []byte, i int, v byte) []byte {
	b = bytes.Clone(b)
	b[i] = v
	return b
}

// FuzzBatchBinary feeds the binary batch decoder (what a member reads
// from a lock): it must never panic, and a batch it accepts must encode
// and decode back to itself, with the same validation verdict. A batch
// that validates with the digest of a seed must be that seed (the digest
// binds every field: a frame changed anywhere is refused), counting a
// partition "" as available (Validate's default).
func FuzzBatchBinary(f *testing.F) {
	seeds := []*Batch{codecBatch(), NewBatch(nil, []string{"gone"})}
	for _, b := range seeds {
		enc, _ := b.MarshalBinary()
		f.Add(enc)
	}
	// A forged one: the first seed with its consistent GIP made available,
	// its digest kept (refused by the digest, which covers the policy).
	forged := *seeds[0]
	forged.Put = slices.Clone(forged.Put)
	for i := range forged.Put {
		if forged.Put[i].Partition == vipsmart.PartitionConsistent {
			forged.Put[i].Partition = vipsmart.PartitionAvailable
		}
	}
	forged.bin, forged.raw = nil, nil
	enc, _ := forged.MarshalBinary()
	f.Add(enc)
	norm := func(b *Batch) *Batch {
		c := *b
		c.Put = slices.Clone(b.Put)
		for i := range c.Put {
			if c.Put[i].Partition == "" {
				c.Put[i].Partition = vipsmart.PartitionAvailable
			}
		}
		return &c
	}
	f.Add([]byte{'V', 'S', 'B', 1, 1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		var b Batch
		if err := b.UnmarshalBinary(in); err != nil {
			return
		}
		verdict := b.validate()
		for _, sd := range seeds {
			if verdict == nil && b.Digest == sd.Digest && !sameBatch(norm(&b), norm(sd)) {
				t.Fatalf("a batch other than the seed's validates with its digest %s: %+v", sd.Digest, b.Put)
			}
		}
		enc, err := b.MarshalBinary()
		if err != nil {
			if b.full() {
				t.Fatalf("a full decoded batch does not encode: %v", err)
			}
			return
		}
		var again Batch
		if err := again.UnmarshalBinary(enc); err != nil {
			t.Fatalf("re-encoded batch refused: %v", err)
		}
		if !sameBatch(&again, &b) {
			t.Fatalf("round trip changed the batch")
		}
		if v2 := again.validate(); (v2 == nil) != (verdict == nil) {
			t.Fatalf("validation changed over a round trip: %v then %v", verdict, v2)
		}
	})
}

// sameBatch reports whether a and b have the same content and identity
// (an empty list and none are the same).
func sameBatch(a, b *Batch) bool {
	same := func(x, y any, nx, ny int) bool { return nx == 0 && ny == 0 || reflect.DeepEqual(x, y) }
	return same(a.Put, b.Put, len(a.Put), len(b.Put)) && same(a.Delete, b.Delete, len(a.Delete), len(b.Delete)) && a.Count == b.Count && a.Digest == b.Digest
}

// TestBatchDigestUnchanged: the digest of a batch is what every version
// computes (members of different versions compare it), here the value
// main computed before the digest was gathered into fewer writes.
func TestBatchDigestUnchanged(t *testing.T) {
	put := []vipsmart.GIP{batchGIP(1, "dc-1", "dc-2"), batchGIP(2, "dc-2")}
	put[0].Placements[1].VIP = "web"
	put[1].Mode = vipsmart.ModeAnycast
	put = append(put, vipsmart.GIP{Name: "v6", Address: netip.MustParseAddr("2001:db8::2")})
	for i := range 3000 {
		put = append(put, batchGIP(i+10, "dc-1", "dc-3"))
	}
	const want = "sha256:eb3decd1bbfd73a83ae10076a8e2d2341e5e509725a2a8a8cd2b502eab5323e4"
	if got := NewBatch(put, []string{"old-1", "old-2"}).Digest; got != want {
		t.Fatalf("digest %s, want %s", got, want)
	}
}

// TestProposeEncodesTheBatchInBinary: the locks of a batch carry its
// binary encoding (the transport sends it), made once by Propose, and it
// decodes to the batch the locks carry.
func TestProposeEncodesTheBatchInBinary(t *testing.T) {
	c := newCluster(t, 3)
	c.federate(3)
	n := c.nodes["dc-1"]
	if _, err := n.Propose(c.now, Proposal{Kind: ApplyGIPs, Batch: &Batch{Put: []vipsmart.GIP{batchGIP(1, "dc-1", "dc-2"), batchGIP(2, "dc-3")}}}); err != nil {
		t.Fatal(err)
	}
	locks := 0
	for n.HasReady() {
		rd := n.Ready()
		for _, m := range rd.Messages {
			if m.Type != MsgLock {
				continue
			}
			locks++
			enc := m.Change.Batch.EncodedBinary()
			var got Batch
			if err := got.UnmarshalBinary(enc); err != nil || !sameBatch(&got, m.Change.Batch) {
				t.Fatalf("lock to %s: binary batch %v, decodes to %+v", m.To.Name, err, got)
			}
		}
		n.Advance(rd)
	}
	if locks != 2 {
		t.Fatalf("%d locks, want 2", locks)
	}
}

// TestBatchDigestCoversPartition: two batches that differ only in a GIP's
// partition policy have different digests, so a lock whose batch was
// changed there (a damaged or forged frame: the binary encoding holds the
// policy as an index in its string table) is refused by its digest. The
// digest used to leave the policy out: such a lock was taken, and applied
// a consistent GIP as available (or the reverse) on that member only.
func TestBatchDigestCoversPartition(t *testing.T) {
	a, b := batchGIP(1, "dc-1"), batchGIP(2, "dc-2")
	a.Partition, b.Partition = vipsmart.PartitionConsistent, vipsmart.PartitionAvailable
	bt := NewBatch([]vipsmart.GIP{a, b}, nil)
	for i, p := range []vipsmart.PartitionPolicy{vipsmart.PartitionAvailable, ""} {
		a2 := a
		a2.Partition = p
		if d := NewBatch([]vipsmart.GIP{a2, b}, nil).Digest; d == bt.Digest {
			t.Fatalf("case %d: partition %q has the digest of consistent", i, p)
		}
	}
	bin, err := bt.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for _, flip := range []int{0, 1} {
		var got Batch
		if err := got.UnmarshalBinary(bin); err != nil {
			t.Fatal(err)
		}
		g := &got.Put[flip]
		if g.Partition == vipsmart.PartitionConsistent {
			g.Partition = vipsmart.PartitionAvailable
		} else {
			g.Partition = vipsmart.PartitionConsistent
		}
		if err := got.validate(); err == nil || !strings.Contains(err.Error(), "digest") {
			t.Fatalf("GIP %s with its partition changed to %s: %v, want the digest refused", g.Name, g.Partition, err)
		}
	}
}
