package federation

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"unicode/utf8"

	"github.com/vipsmart/vipsmart"
)

// The binary encoding of a batch (version 1), what a lock carries to a
// member that reads it (httpapi/peerbatch.go; docs/federation.md, "The
// batch on the wire"). A member decodes a lock of 10,000 GIPs in a few
// milliseconds instead of encoding/json's ~100, with a few allocations
// per GIP. Layout, every number an unsigned varint unless said otherwise
// and every string its length (a number) then its bytes:
//
//	magic "VSB" and the version byte 1
//	count, digest
//	the string table: its length, then each string (DC names, VIP names,
//	  modes and partitions, each once)
//	the GIPs written: their number, then each GIP: name, address (the
//	  netip.Addr binary form: 0, 4 or 16 bytes, an IPv6 zone after the
//	  16), mode (index in the table), preempt (one byte: 0 or 1),
//	  partition (index), the number of placements, then each placement:
//	  DC (index), priority (signed varint), VIP (index)
//	the GIPs deleted: their number, then each name
//
// nothing after. The decoder is as strict as the JSON one is with the
// validation that follows it (Batch.validate, which the lock's message
// goes through as before): it bounds every size by the bytes left, so
// that a small hostile input never makes it allocate much, refuses an
// index out of the table, a string of more than MaxBatchString bytes or
// that is not UTF-8, a flag other than 0 or 1, more placements in all
// than maxBatchPlacements, trailing bytes, and a count other than the
// changes it carries (a binary batch is never slim). A batch it accepts
// encodes and decodes back to itself (FuzzBatchBinary checks it).

// batchMagic starts a binary batch: "VSB" and the version.
var batchMagic = [4]byte{'V', 'S', 'B', BatchCodecVersion}

// BatchCodecVersion is the version of the binary batch encoding.
const BatchCodecVersion = 1

// MaxBatchString bounds one string of a binary batch: names are DNS
// labels of at most 63 bytes and the address, mode and partition are
// shorter; the digest is 71.
const MaxBatchString = 255

// maxBatchPlacements bounds the placements of all the GIPs of a binary
// batch: Propose refuses a batch whose JSON would take more than
// MaxBatchBytes, at least 48 bytes per placement (Batch.size). A
// placement takes 3 bytes in binary but 40 in memory: without the bound
// a hostile 16 MiB lock would take 200 MiB to decode.
const maxBatchPlacements = MaxBatchBytes / 48

// MarshalBinary returns the binary encoding of a full batch (see above).
func (b *Batch) MarshalBinary() ([]byte, error) {
	if b == nil || !b.full() {
		return nil, fmt.Errorf("only a batch with its content is encoded")
	}
	if b.bin != nil {
		return b.bin, nil
	}
	return b.appendBinary(make([]byte, 0, 64+b.Count*48)), nil
}

// EncodedBinary returns the cached binary encoding of b (a batch made by
// Propose), or nil.
func (b *Batch) EncodedBinary() []byte {
	if b == nil {
		return nil
	}
	return b.bin
}

func (b *Batch) appendBinary(buf []byte) []byte {
	table := map[string]uint64{}
	var strs []string
	idx := func(s string) uint64 {
		i, ok := table[s]
		if !ok {
			i = uint64(len(strs))
			table[s] = i
			strs = append(strs, s)
		}
		return i
	}
	for i := range b.Put {
		g := &b.Put[i]
		idx(string(g.Mode))
		idx(string(g.Partition))
		for _, p := range g.Placements {
			idx(p.DC)
			idx(p.VIP)
		}
	}
	var addr []byte
	str := func(s string) {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	buf = append(buf, batchMagic[:]...)
	buf = binary.AppendUvarint(buf, uint64(b.Count))
	str(b.Digest)
	buf = binary.AppendUvarint(buf, uint64(len(strs)))
	for _, s := range strs {
		str(s)
	}
	buf = binary.AppendUvarint(buf, uint64(len(b.Put)))
	for i := range b.Put {
		g := &b.Put[i]
		str(g.Name)
		addr, _ = g.Address.AppendBinary(addr[:0]) // never fails
		buf = binary.AppendUvarint(buf, uint64(len(addr)))
		buf = append(buf, addr...)
		buf = binary.AppendUvarint(buf, table[string(g.Mode)])
		if g.Preempt {
			buf = append(buf, 1)
		} else {
			buf = append(buf, 0)
		}
		buf = binary.AppendUvarint(buf, table[string(g.Partition)])
		buf = binary.AppendUvarint(buf, uint64(len(g.Placements)))
		for _, p := range g.Placements {
			buf = binary.AppendUvarint(buf, table[p.DC])
			buf = binary.AppendVarint(buf, int64(p.Priority))
			buf = binary.AppendUvarint(buf, table[p.VIP])
		}
	}
	buf = binary.AppendUvarint(buf, uint64(len(b.Delete)))
	for _, d := range b.Delete {
		str(d)
	}
	return buf
}

// UnmarshalBinary decodes a binary batch into b. It checks the encoding,
// not the content: Batch.validate (a message's Validate) does, as for a
// batch decoded from JSON. On an error b is left unchanged.
func (b *Batch) UnmarshalBinary(data []byte) error {
	d := batchDecoder{data: data}
	nb, err := d.batch()
	if err != nil {
		return fmt.Errorf("binary batch, byte %d: %w", d.off, err)
	}
	*b = *nb
	return nil
}

// batchDecoder reads a binary batch; off is where it is.
type batchDecoder struct {
	data []byte
	off  int
}

func (d *batchDecoder) left() int { return len(d.data) - d.off }

func (d *batchDecoder) uvarint(what string) (uint64, error) {
	v, n := binary.Uvarint(d.data[d.off:])
	if n <= 0 {
		return 0, fmt.Errorf("%s: not a well-formed number", what)
	}
	d.off += n
	return v, nil
}

// count reads a number of items that each take at least min bytes of
// what is left, and at most max of them.
func (d *batchDecoder) count(what string, min, max int) (int, error) {
	v, err := d.uvarint(what)
	if err != nil {
		return 0, err
	}
	if v > uint64(max) || v > uint64(d.left()/min) {
		return 0, fmt.Errorf("%s: %d, more than the %d bytes left can hold (at most %d)", what, v, d.left(), max)
	}
	return int(v), nil
}

func (d *batchDecoder) bytes(what string, max int) ([]byte, error) {
	n, err := d.uvarint(what)
	if err != nil {
		return nil, err
	}
	if n > uint64(max) {
		return nil, fmt.Errorf("%s: %d bytes, more than %d", what, n, max)
	}
	if n > uint64(d.left()) {
		return nil, fmt.Errorf("%s: %d bytes, but only %d are left", what, n, d.left())
	}
	s := d.data[d.off : d.off+int(n)]
	d.off += int(n)
	return s, nil
}

func (d *batchDecoder) str(what string) (string, error) {
	s, err := d.bytes(what, MaxBatchString)
	if err != nil {
		return "", err
	}
	if !utf8.Valid(s) {
		return "", fmt.Errorf("%s is not UTF-8 text", what)
	}
	return string(s), nil
}

func (d *batchDecoder) ref(what string, table []string) (string, error) {
	i, err := d.uvarint(what)
	if err != nil {
		return "", err
	}
	if i >= uint64(len(table)) {
		return "", fmt.Errorf("%s: string %d of a table of %d", what, i, len(table))
	}
	return table[i], nil
}

func (d *batchDecoder) batch() (*Batch, error) {
	if !bytes.HasPrefix(d.data, batchMagic[:3]) || len(d.data) < 4 {
		return nil, fmt.Errorf("not a binary batch (it starts with %q, want %q)", clipBytes(d.data, 4), batchMagic[:])
	}
	if v := d.data[3]; v != BatchCodecVersion {
		return nil, fmt.Errorf("binary batch version %d: this DC reads version %d", v, BatchCodecVersion)
	}
	d.off = 4
	b := &Batch{}
	cnt, err := d.uvarint("count")
	if err != nil {
		return nil, err
	}
	if cnt < 1 || cnt > MaxBatchChanges {
		return nil, fmt.Errorf("count %d: give 1 to %d", cnt, MaxBatchChanges)
	}
	b.Count = int(cnt)
	if b.Digest, err = d.str("digest"); err != nil {
		return nil, err
	}
	nstr, err := d.count("string table", 1, d.left())
	if err != nil {
		return nil, err
	}
	table := make([]string, nstr)
	for i := range table {
		if table[i], err = d.str("string table entry"); err != nil {
			return nil, err
		}
	}
	// A GIP takes at least 7 bytes (name, address, mode, preempt,
	// partition, placements), a placement 3, a deleted name 1.
	nput, err := d.count("GIPs written", 7, b.Count)
	if err != nil {
		return nil, err
	}
	if nput > 0 {
		b.Put = make([]vipsmart.GIP, nput)
	}
	// The placements of every GIP share one array; each GIP's slice is
	// capped at its own placements.
	var pls []vipsmart.Placement
	total := 0
	for i := range b.Put {
		g := &b.Put[i]
		if g.Name, err = d.str("GIP name"); err != nil {
			return nil, err
		}
		if pls, err = d.gip(g, table, pls, len(b.Put)-i, &total); err != nil {
			return nil, fmt.Errorf("GIP %s: %w", g.Name, err)
		}
	}
	ndel, err := d.count("GIPs deleted", 1, b.Count)
	if err != nil {
		return nil, err
	}
	if ndel > 0 {
		b.Delete = make([]string, ndel)
	}
	for i := range b.Delete {
		if b.Delete[i], err = d.str("deleted GIP name"); err != nil {
			return nil, err
		}
	}
	if d.left() != 0 {
		return nil, fmt.Errorf("%d bytes after the batch", d.left())
	}
	if nput+ndel != b.Count {
		return nil, fmt.Errorf("count %d, but it carries %d changes", b.Count, nput+ndel)
	}
	return b, nil
}

// gip reads the fields of g after its name. Its placements go in pls
// (grown when full, for as many GIPs as are left), total counts them.
func (d *batchDecoder) gip(g *vipsmart.GIP, table []string, pls []vipsmart.Placement, gipsLeft int, total *int) ([]vipsmart.Placement, error) {
	a, err := d.bytes("address", 16+1+MaxBatchString)
	if err != nil {
		return pls, err
	}
	if err := g.Address.UnmarshalBinary(a); err != nil {
		return pls, fmt.Errorf("address: %w", err)
	}
	mode, err := d.ref("mode", table)
	if err != nil {
		return pls, err
	}
	g.Mode = vipsmart.GIPMode(mode)
	if d.left() < 1 || d.data[d.off] > 1 {
		return pls, fmt.Errorf("preempt: want a byte 0 or 1")
	}
	g.Preempt = d.data[d.off] == 1
	d.off++
	part, err := d.ref("partition", table)
	if err != nil {
		return pls, err
	}
	g.Partition = vipsmart.PartitionPolicy(part)
	np, err := d.count("placements", 3, d.left())
	if err != nil {
		return pls, err
	}
	if np == 0 {
		return pls, nil
	}
	if *total += np; *total > maxBatchPlacements {
		return pls, fmt.Errorf("placements: more than %d placements in the batch", maxBatchPlacements)
	}
	if cap(pls)-len(pls) < np {
		// Room for this GIP's placements and, as a guess, as many for
		// each GIP left (bounded by the bytes left and the placements a
		// batch may have left).
		want := min(np*gipsLeft, d.left()/3+np, maxBatchPlacements-*total+np)
		pls = make([]vipsmart.Placement, 0, max(want, np))
	}
	start := len(pls)
	for range np {
		var p vipsmart.Placement
		if p.DC, err = d.ref("placement dc", table); err != nil {
			return pls, err
		}
		pr, n := binary.Varint(d.data[d.off:])
		if n <= 0 || int64(int(pr)) != pr {
			return pls, fmt.Errorf("placement priority: not a well-formed number")
		}
		d.off += n
		p.Priority = int(pr)
		if p.VIP, err = d.ref("placement vip", table); err != nil {
			return pls, err
		}
		pls = append(pls, p)
	}
	g.Placements = pls[start:len(pls):len(pls)]
	return pls, nil
}

func clipBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// CacheBinary encodes b once in binary and keeps the encoding
// (EncodedBinary, MarshalBinary). The batch must not change afterwards.
func (b *Batch) CacheBinary() {
	b.bin = b.appendBinary(make([]byte, 0, 64+b.Count*48))
}
