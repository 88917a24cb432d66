package bolt

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	bbolt "go.etcd.io/bbolt"
)

// digest is the checksum of a store's content: the XOR of entryHash over
// every key/value of every bucket (but meta/digest itself) and of seqHash
// over every bucket sequence that is not 0. XOR makes it cheap to keep up
// to date: each write folds the old entry out and the new one in, in the
// same transaction. bbolt has no checksums on its data pages, so without
// this a damaged value that still decodes (a digit changed in an address)
// would be read as if it were right; with it, Open refuses the file.
type digest [16]byte

func (d *digest) xor(h digest) {
	for i := range d {
		d[i] ^= h[i]
	}
}

func entryHash(bucket, k, v []byte) digest {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(bucket)))])
	h.Write(bucket)
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(k)))])
	h.Write(k)
	h.Write(v)
	var sum [sha256.Size]byte // no allocation per entry (10,000 in a batch)
	var d digest
	copy(d[:], h.Sum(sum[:0]))
	return d
}

func seqHash(bucket []byte, seq uint64) digest {
	if seq == 0 {
		return digest{}
	}
	return entryHash(append([]byte("#seq/"), bucket...), nil, binary.BigEndian.AppendUint64(nil, seq))
}

// counted reports whether an entry counts in the digest.
func counted(bucket, k []byte) bool {
	return !(string(bucket) == string(bucketMeta) && string(k) == string(keyDigest))
}

// writer makes every change of a write transaction through methods that
// keep the digest; commit stores it.
type writer struct {
	tx *bbolt.Tx
	d  digest
}

func newWriter(tx *bbolt.Tx) (*writer, error) {
	meta, err := bucket(tx, bucketMeta)
	if err != nil {
		return nil, err
	}
	w := &writer{tx: tx}
	d := meta.Get(keyDigest)
	if len(d) != len(w.d) {
		return nil, fmt.Errorf("the store's checksum (meta/digest) is missing or damaged")
	}
	copy(w.d[:], d)
	return w, nil
}

func (w *writer) put(name, k, v []byte) error {
	b, err := bucket(w.tx, name)
	if err != nil {
		return err
	}
	if old := b.Get(k); old != nil {
		w.d.xor(entryHash(name, k, old))
	}
	w.d.xor(entryHash(name, k, v))
	return b.Put(k, v)
}

func (w *writer) del(name, k []byte) error {
	b, err := bucket(w.tx, name)
	if err != nil {
		return err
	}
	if old := b.Get(k); old != nil {
		w.d.xor(entryHash(name, k, old))
	}
	return b.Delete(k)
}

// clear empties bucket name (which keeps sequence 0).
func (w *writer) clear(name []byte) error {
	b, err := bucket(w.tx, name)
	if err != nil {
		return err
	}
	if err := b.ForEach(func(k, v []byte) error {
		w.d.xor(entryHash(name, k, v))
		return nil
	}); err != nil {
		return err
	}
	w.d.xor(seqHash(name, b.Sequence()))
	if err := w.tx.DeleteBucket(name); err != nil {
		return err
	}
	_, err = w.tx.CreateBucket(name)
	return err
}

func (w *writer) nextSequence(name []byte) (uint64, error) {
	b, err := bucket(w.tx, name)
	if err != nil {
		return 0, err
	}
	old := b.Sequence()
	seq, err := b.NextSequence()
	if err != nil {
		return 0, err
	}
	w.d.xor(seqHash(name, old))
	w.d.xor(seqHash(name, seq))
	return seq, nil
}

func (w *writer) commit() error {
	meta, err := bucket(w.tx, bucketMeta)
	if err != nil {
		return err
	}
	return meta.Put(keyDigest, append([]byte(nil), w.d[:]...))
}

// computeDigest computes the digest of everything in tx.
func computeDigest(tx *bbolt.Tx) (digest, error) {
	var d digest
	err := tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
		d.xor(seqHash(name, b.Sequence()))
		return b.ForEach(func(k, v []byte) error {
			if counted(name, k) {
				d.xor(entryHash(name, k, v))
			}
			return nil
		})
	})
	return d, err
}
