package federation

import (
	"bytes"
	"testing"
)

// ownRecords are records nodes persisted: standalone, members of a
// federation of three, and a member that took part in a rotation, an add
// and a removal.
func ownRecords(t testing.TB) [][]byte {
	fuzzSetup(t)
	a := newAuthNet(t, 3)
	var recs [][]byte
	for _, n := range a.nodes {
		recs = append(recs, n.h.encode())
	}
	a.federate(3)
	for _, n := range a.nodes {
		recs = append(recs, n.h.encode())
	}
	return append(recs, fuzzMember.record)
}

// TestDescribeOwnRecord: what the store's marker keeps is the same read
// from the few fields (from the head of the record, as encoded) as from
// the whole record, and a record of another version is refused by both.
func TestDescribeOwnRecord(t *testing.T) {
	for _, rec := range ownRecords(t) {
		dc, fed, epoch, err := DescribeRecord(rec)
		dc2, fed2, epoch2, err2 := DescribeOwnRecord(rec)
		if err != nil || err2 != nil || dc != dc2 || fed != fed2 || epoch != epoch2 || dc == "" {
			t.Fatalf("DescribeRecord %q %q %d %v, DescribeOwnRecord %q %q %d %v", dc, fed, epoch, err, dc2, fed2, epoch2, err2)
		}
		if dc3, fed3, epoch3, ok := describeHead(rec); !ok || dc3 != dc || fed3 != fed || epoch3 != epoch {
			t.Fatalf("describeHead = %q %q %d %v; want %q %q %d from the head of %.120s", dc3, fed3, epoch3, ok, dc, fed, epoch, rec)
		}
		other := bytes.Replace(rec, []byte(`"version":`), []byte(`"version":9`), 1)
		if _, _, _, err := DescribeOwnRecord(other); err == nil {
			t.Fatalf("a record of another version is described: %.80s", other)
		}
		// (DescribeOwnRecord reads the head only: the rest of a record
		// this process encoded is not checked again. One read back from
		// the file goes through DescribeRecord.)
		if _, _, _, err := DescribeRecord(rec[:len(rec)-1]); err == nil {
			t.Fatal("a truncated record is described")
		}
	}
}

// BenchmarkDescribeRecord: the marker's fields of a member's record, read
// from the whole record and from the few fields.
func BenchmarkDescribeRecord(b *testing.B) {
	recs := ownRecords(b)
	rec := recs[len(recs)-1]
	b.Run("whole", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, _, err := DescribeRecord(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("own", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, _, err := DescribeOwnRecord(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
}
