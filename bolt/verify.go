package bolt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// This file checks the structure of a bbolt file by reading it, before
// bbolt maps it. bbolt trusts its file: a damaged page makes it panic, and
// a page id past the end of the mapping makes it fault (which Go cannot
// recover), also inside its own Tx.Check. So every page the store will
// touch is checked here first, with bounds checks, against bbolt's on-disk
// format (version 2: go.etcd.io/bbolt internal/common, unchanged since
// boltdb): two meta pages with checksums, B+tree branch and leaf pages,
// buckets (inline or rooted in a page) and the freelist.

const (
	boltMagic   = 0xED0CDAED
	boltVersion = 2

	pageHeaderSize = 16 // id u64, flags u16, count u16, overflow u32
	elemSize       = 16 // branch: pos u32, ksize u32, pgid u64; leaf: flags u32, pos u32, ksize u32, vsize u32
	bucketHdrSize  = 16 // root pgid u64, sequence u64
	metaSize       = 64 // magic, version, page size, flags (u32 each), root bucket (16), freelist, pgid, txid, checksum (u64 each)

	flagBranch   = 0x01
	flagLeaf     = 0x02
	flagMeta     = 0x04
	flagFreelist = 0x10
	leafBucket   = 0x01

	noFreelist = ^uint64(0)
	maxDepth   = 64
)

// damageError is a structural or content problem of a store file.
type damageError struct{ what string }

func (e *damageError) Error() string { return e.what }

func damagef(format string, args ...any) error {
	return &damageError{what: fmt.Sprintf(format, args...)}
}

// boltMeta is one decoded meta page.
type boltMeta struct {
	page     int // 0 or 1
	pageSize int
	root     uint64
	freelist uint64
	hwm      uint64 // pages 0..hwm-1 are in use or free
	txid     uint64
}

// fileLayout is what verifyFile learned about a file.
type fileLayout struct {
	size     int64
	pageSize int
	txid     uint64
	hwm      uint64
	free     int // pages on the freelist
}

// entryFunc receives every key/value of every bucket under the root (not
// nested buckets' own entries: a nested bucket is damage in a vipsmart
// store) in key order, and each bucket's sequence.
type entryFunc func(bucket []byte, seq uint64, k, v []byte) error

// verifyFile reads the bbolt file f of size bytes, checks its structure and
// calls fn for each top-level bucket's entries (bucket, seq, nil, nil marks
// a bucket's start). It returns a *damageError for any damage found.
func verifyFile(f io.ReaderAt, size int64, fn entryFunc) (fileLayout, error) {
	var lay fileLayout
	lay.size = size
	metas, err := readMetas(f, size)
	if err != nil {
		return lay, err
	}
	m := metas[0]
	if metas[1].txid > m.txid {
		m = metas[1]
	}
	lay.pageSize, lay.txid, lay.hwm = m.pageSize, m.txid, m.hwm
	if m.hwm < 3 {
		return lay, damagef("meta page %d says the file has %d pages, fewer than a store has", m.page, m.hwm)
	}
	need := int64(m.hwm) * int64(m.pageSize)
	if need/int64(m.pageSize) != int64(m.hwm) || need > size {
		return lay, damagef("the file is truncated: it has %d bytes but its meta page %d (transaction %d) needs %d pages of %d bytes (%d bytes)",
			size, m.page, m.txid, m.hwm, m.pageSize, need)
	}
	if m.root < 2 || m.root >= m.hwm {
		return lay, damagef("meta page %d: root page %d is outside the file's %d pages", m.page, m.root, m.hwm)
	}
	if m.freelist != noFreelist && (m.freelist < 2 || m.freelist >= m.hwm) {
		return lay, damagef("meta page %d: freelist page %d is outside the file's %d pages", m.page, m.freelist, m.hwm)
	}
	data := make([]byte, need)
	if _, err := f.ReadAt(data, 0); err != nil {
		return lay, fmt.Errorf("reading the file: %w", err)
	}
	w := &walker{data: data, ps: m.pageSize, hwm: m.hwm, seen: make([]bool, m.hwm)}
	w.seen[0], w.seen[1] = true, true
	var free []uint64
	if m.freelist != noFreelist {
		if free, err = w.freelist(m.freelist); err != nil {
			return lay, err
		}
		lay.free = len(free)
	}
	if err := w.rootBucket(m.root, fn); err != nil {
		return lay, err
	}
	if m.freelist == noFreelist {
		return lay, nil
	}
	isFree := make([]bool, m.hwm)
	for _, id := range free {
		if isFree[id] {
			return lay, damagef("freelist page %d lists page %d twice", m.freelist, id)
		}
		if w.seen[id] {
			return lay, damagef("page %d is both in use and on the freelist", id)
		}
		isFree[id] = true
	}
	for id := uint64(2); id < m.hwm; id++ {
		if !w.seen[id] && !isFree[id] {
			return lay, damagef("page %d is neither in use nor free (a page of the tree was lost)", id)
		}
	}
	return lay, nil
}

// readMetas reads and validates both meta pages.
func readMetas(f io.ReaderAt, size int64) ([2]boltMeta, error) {
	var out [2]boltMeta
	if size < 2*1024 {
		return out, damagef("the file is %d bytes long, too short to be a store (at least 4 pages)", size)
	}
	hdr := make([]byte, pageHeaderSize+metaSize)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		return out, fmt.Errorf("reading meta page 0: %w", err)
	}
	m0, err0 := decodeMeta(hdr, 0)
	if err0 == nil {
		out[0] = m0
	}
	// Meta page 1 sits one page in: take the page size from meta 0 if it
	// is intact, else try the usual sizes.
	sizes := []int{os.Getpagesize(), 4096, 8192, 16384, 32768, 65536}
	if err0 == nil {
		sizes = []int{m0.pageSize}
	}
	var err1 error = damagef("meta page 1 is beyond the end of the file")
	for _, ps := range sizes {
		if int64(ps)+int64(len(hdr)) > size {
			continue
		}
		if _, err := f.ReadAt(hdr, int64(ps)); err != nil {
			return out, fmt.Errorf("reading meta page 1: %w", err)
		}
		var m1 boltMeta
		if m1, err1 = decodeMeta(hdr, 1); err1 == nil && m1.pageSize == ps {
			out[1] = m1
			break
		} else if err1 == nil {
			err1 = damagef("meta page 1 gives page size %d but sits at offset %d", m1.pageSize, ps)
		}
	}
	switch {
	case err0 != nil && err1 != nil:
		return out, damagef("both meta pages are damaged or the file is not a bbolt store (%v; %v)", err0, err1)
	case err0 != nil:
		return out, damagef("%v; meta page 1 is intact (transaction %d): the last committed write may be lost", err0, out[1].txid)
	case err1 != nil:
		return out, damagef("%v; meta page 0 is intact (transaction %d): the last committed write may be lost", err1, out[0].txid)
	case out[0].pageSize != out[1].pageSize:
		return out, damagef("the meta pages disagree on the page size (%d and %d)", out[0].pageSize, out[1].pageSize)
	}
	return out, nil
}

func decodeMeta(b []byte, page int) (boltMeta, error) {
	le := binary.LittleEndian
	flags := le.Uint16(b[8:])
	m := b[pageHeaderSize:]
	if le.Uint32(m[0:]) != boltMagic {
		return boltMeta{}, damagef("meta page %d has no bbolt magic number", page)
	}
	if v := le.Uint32(m[4:]); v != boltVersion {
		return boltMeta{}, damagef("meta page %d has bbolt format version %d, not %d", page, v, boltVersion)
	}
	h := fnv.New64a()
	h.Write(m[:56])
	if sum := le.Uint64(m[56:]); sum != h.Sum64() {
		return boltMeta{}, damagef("meta page %d fails its checksum", page)
	}
	if flags != flagMeta {
		return boltMeta{}, damagef("meta page %d is marked as a page of type %#x", page, flags)
	}
	// bbolt writes meta page txid%2 with that id: a meta page marked as
	// the other is a copy of it (a misdirected write), and reading it
	// would silently go back one transaction.
	if id := le.Uint64(b[0:]); id != uint64(page) {
		return boltMeta{}, damagef("meta page %d is marked as page %d (a copy of the other meta page: a misdirected write)", page, id)
	}
	ps := int(le.Uint32(m[8:]))
	if ps < 1024 || ps > 1<<20 || ps&(ps-1) != 0 {
		return boltMeta{}, damagef("meta page %d gives an impossible page size %d", page, ps)
	}
	return boltMeta{
		page: page, pageSize: ps,
		root:     le.Uint64(m[16:]),
		freelist: le.Uint64(m[32:]),
		hwm:      le.Uint64(m[40:]),
		txid:     le.Uint64(m[48:]),
	}, nil
}

// walker reads pages of a verified-length file image.
type walker struct {
	data []byte
	ps   int
	hwm  uint64
	seen []bool
}

// page returns the bytes of page id with its overflow pages, marking them
// in use; a page reached twice, out of range or of the wrong type is damage.
func (w *walker) page(id uint64, want uint16, from string) ([]byte, uint16, error) {
	if id < 2 || id >= w.hwm {
		return nil, 0, damagef("%s points to page %d, outside the file's pages 2..%d", from, id, w.hwm-1)
	}
	off := id * uint64(w.ps)
	hdr := w.data[off : off+pageHeaderSize]
	le := binary.LittleEndian
	if got := le.Uint64(hdr); got != id {
		return nil, 0, damagef("page %d (reached from %s) is marked as page %d", id, from, got)
	}
	flags := le.Uint16(hdr[8:])
	if flags&want == 0 {
		return nil, 0, damagef("page %d (reached from %s) has type %#x, not a %s", id, from, flags, pageKind(want))
	}
	over := uint64(le.Uint32(hdr[12:]))
	if over >= w.hwm-id {
		return nil, 0, damagef("page %d has %d overflow pages, past the end of the file", id, over)
	}
	for i := id; i <= id+over; i++ {
		if w.seen[i] {
			return nil, 0, damagef("page %d is used twice (again from %s)", i, from)
		}
		w.seen[i] = true
	}
	return w.data[off : off+(over+1)*uint64(w.ps)], flags, nil
}

func pageKind(flags uint16) string {
	switch flags {
	case flagFreelist:
		return "freelist page"
	case flagLeaf:
		return "leaf page"
	case flagBranch:
		return "branch page"
	}
	return "branch or leaf page"
}

func (w *walker) freelist(id uint64) ([]uint64, error) {
	p, _, err := w.page(id, flagFreelist, "the meta page")
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	n, start := uint64(le.Uint16(p[10:])), uint64(pageHeaderSize)
	if n == 0xFFFF {
		if len(p) < pageHeaderSize+8 {
			return nil, damagef("freelist page %d is cut short", id)
		}
		n, start = le.Uint64(p[pageHeaderSize:]), pageHeaderSize+8
	}
	if n > (uint64(len(p))-start)/8 {
		return nil, damagef("freelist page %d claims %d free pages, more than it can hold", id, n)
	}
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = le.Uint64(p[start+uint64(i)*8:])
		if ids[i] < 2 || ids[i] >= w.hwm {
			return nil, damagef("freelist page %d lists page %d, outside the file's pages 2..%d", id, ids[i], w.hwm-1)
		}
	}
	return ids, nil
}

// rootBucket walks the root bucket: every entry must be a bucket; each
// bucket's entries go to fn.
func (w *walker) rootBucket(root uint64, fn entryFunc) error {
	return w.tree(root, "the meta page", nil, nil, 0, func(flags uint32, k, v []byte) error {
		if flags&leafBucket == 0 {
			return damagef("the root holds a plain key %q: only buckets belong there", clip(k))
		}
		return w.bucket(k, v, fn)
	})
}

// bucket walks one top-level bucket whose header (and inline page) is v.
func (w *walker) bucket(name, v []byte, fn entryFunc) error {
	if len(v) < bucketHdrSize {
		return damagef("bucket %q has a header of %d bytes", clip(name), len(v))
	}
	le := binary.LittleEndian
	root, seq := le.Uint64(v), le.Uint64(v[8:])
	if err := fn(name, seq, nil, nil); err != nil {
		return err
	}
	leaf := func(flags uint32, k, val []byte) error {
		if flags&leafBucket != 0 {
			return damagef("bucket %q holds a nested bucket %q: a vipsmart store has none", clip(name), clip(k))
		}
		return fn(name, seq, k, val)
	}
	if root != 0 {
		return w.tree(root, fmt.Sprintf("bucket %q", clip(name)), nil, nil, 0, leaf)
	}
	return w.elements(v[bucketHdrSize:], flagLeaf, fmt.Sprintf("the inline page of bucket %q", clip(name)), nil, nil, 0, leaf)
}

// tree walks the B+tree rooted at page id; every key must lie in [lo, hi).
func (w *walker) tree(id uint64, from string, lo, hi []byte, depth int, leaf func(flags uint32, k, v []byte) error) error {
	if depth > maxDepth {
		return damagef("the tree under %s is deeper than %d pages", from, maxDepth)
	}
	p, flags, err := w.page(id, flagBranch|flagLeaf, from)
	if err != nil {
		return err
	}
	if flags != flagBranch && flags != flagLeaf {
		return damagef("page %d (reached from %s) has type %#x, not a branch or leaf page", id, from, flags)
	}
	return w.elements(p, flags, fmt.Sprintf("page %d", id), lo, hi, depth, leaf)
}

// elements checks the elements of one page image p (a page with its
// overflow, or an inline page) and descends or hands leaf entries on.
func (w *walker) elements(p []byte, flags uint16, what string, lo, hi []byte, depth int, leaf func(flags uint32, k, v []byte) error) error {
	if len(p) < pageHeaderSize {
		return damagef("%s is cut short", what)
	}
	le := binary.LittleEndian
	if got := le.Uint16(p[8:]); got != flags {
		return damagef("%s has type %#x, not a %s", what, got, pageKind(flags))
	}
	n := int(le.Uint16(p[10:]))
	if flags == flagBranch && n == 0 {
		return damagef("%s is a branch page without elements", what)
	}
	if pageHeaderSize+n*elemSize > len(p) {
		return damagef("%s claims %d elements, more than it can hold", what, n)
	}
	type child struct {
		key []byte
		id  uint64
	}
	var kids []child
	var prev []byte
	for i := 0; i < n; i++ {
		e := p[pageHeaderSize+i*elemSize:]
		base := uint64(pageHeaderSize + i*elemSize)
		var efl, pos, ksize, vsize uint64
		if flags == flagBranch {
			pos, ksize = uint64(le.Uint32(e)), uint64(le.Uint32(e[4:]))
		} else {
			efl, pos, ksize, vsize = uint64(le.Uint32(e)), uint64(le.Uint32(e[4:])), uint64(le.Uint32(e[8:])), uint64(le.Uint32(e[12:]))
		}
		start := base + pos
		if end := start + ksize + vsize; pos == 0 || end > uint64(len(p)) || end < start {
			return damagef("%s: element %d points outside the page", what, i)
		}
		k := p[start : start+ksize]
		if len(k) == 0 {
			return damagef("%s: element %d has an empty key", what, i)
		}
		if prev != nil && bytes.Compare(prev, k) >= 0 {
			return damagef("%s: keys out of order at element %d", what, i)
		}
		if (lo != nil && bytes.Compare(k, lo) < 0) || (hi != nil && bytes.Compare(k, hi) >= 0) {
			return damagef("%s: key of element %d lies outside the range its parent gives", what, i)
		}
		prev = k
		if flags == flagBranch {
			kids = append(kids, child{k, le.Uint64(e[8:])})
			continue
		}
		if efl&^leafBucket != 0 {
			return damagef("%s: element %d has unknown flags %#x", what, i, efl)
		}
		if err := leaf(uint32(efl), k, p[start+ksize:start+ksize+vsize]); err != nil {
			return err
		}
	}
	for i, c := range kids {
		clo, chi := c.key, hi
		if i+1 < len(kids) {
			chi = kids[i+1].key
		}
		if i == 0 {
			clo = lo // the first child may hold keys below its separator
		}
		if err := w.tree(c.id, what, clo, chi, depth+1, leaf); err != nil {
			return err
		}
	}
	return nil
}

func clip(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}
