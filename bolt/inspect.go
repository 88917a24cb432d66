package bolt

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	berrors "go.etcd.io/bbolt/errors"

	"github.com/vipsmart/vipsmart"
)

// Inspection is what Inspect learned of a store file that it found sound.
type Inspection struct {
	Path      string `json:"path"`
	Size      int64  `json:"size"`
	PageSize  int    `json:"page_size"`
	Pages     uint64 `json:"pages"`
	FreePages int    `json:"free_pages"`
	// TxID is the last committed bbolt transaction.
	TxID    uint64 `json:"txid"`
	Schema  int    `json:"schema_version"`
	StoreID string `json:"store_id,omitempty"`
	// Record describes the federation record (nil when the store holds
	// none, or when Options.Describe is not set).
	HasRecord bool        `json:"has_record"`
	Record    *RecordInfo `json:"record,omitempty"`
	VIPs      int         `json:"vips"`
	GIPs      int         `json:"gips"`
	Events    int         `json:"events"`
	// LastEvent is the last event sequence number handed out.
	LastEvent uint64 `json:"last_event"`
}

// epoch is the store's epoch as far as it is known (0 without a record).
func (in *Inspection) epoch() uint64 {
	if in.Record == nil {
		return 0
	}
	return in.Record.Epoch
}

// errEmpty is returned by inspectFile for a file of 0 bytes.
var errEmpty = errors.New("the file is empty (0 bytes)")

// Inspect reads the store file at path without opening it for writing
// and checks everything in it: bbolt's structure (meta pages, every page
// of every tree, the freelist), the schema version, that every value
// decodes, and the content checksum. It waits up to opts.Timeout for a
// daemon that holds the file. A sound store gives its Inspection; anything
// else an error that names the damage (a *RefusedError of kind Damaged
// for damage). It never panics and never modifies the file.
func Inspect(path string, opts Options) (*Inspection, error) {
	opts.defaults()
	return inspectFile(path, opts)
}

func inspectFile(path string, opts Options) (in *Inspection, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := flockShared(f, opts.Timeout); err != nil {
		return nil, inUse(path, opts.Timeout)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() == 0 {
		return nil, errEmpty
	}
	defer func() {
		if r := recover(); r != nil {
			in, err = nil, &RefusedError{Kind: Damaged, Path: path, Problem: fmt.Sprintf("reading it failed: %v", r)}
		}
	}()
	in = &Inspection{Path: path, Size: st.Size()}
	c := &contentCheck{in: in, opts: opts, buckets: map[string]bool{}}
	lay, err := verifyFile(f, st.Size(), c.entry)
	if err == nil {
		err = c.finish()
	}
	if err != nil {
		var d *damageError
		if errors.As(err, &d) {
			return nil, &RefusedError{Kind: Damaged, Path: path, Problem: "the file is damaged: " + d.what, Err: err}
		}
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	in.PageSize, in.Pages, in.FreePages, in.TxID = lay.pageSize, lay.hwm, lay.free, lay.txid
	return in, nil
}

// contentCheck checks the entries verifyFile hands it.
type contentCheck struct {
	in      *Inspection
	opts    Options
	buckets map[string]bool
	d       digest
	stored  []byte
	schema  []byte
	record  []byte
}

func (c *contentCheck) entry(bucket []byte, seq uint64, k, v []byte) error {
	name := string(bucket)
	if k == nil {
		if !isKnownBucket(bucket) {
			return damagef("unknown bucket %q", clip(bucket))
		}
		c.buckets[name] = true
		c.d.xor(seqHash(bucket, seq))
		if name == string(bucketEvents) {
			c.in.LastEvent = seq
		} else if seq != 0 {
			return damagef("bucket %s has sequence %d, but only events use one", name, seq)
		}
		return nil
	}
	if counted(bucket, k) {
		c.d.xor(entryHash(bucket, k, v))
	}
	switch name {
	case string(bucketMeta):
		switch string(k) {
		case string(keySchemaVersion):
			c.schema = append([]byte(nil), v...)
		case string(keyDigest):
			c.stored = append([]byte(nil), v...)
		case string(keyStoreID):
			c.in.StoreID = string(v)
		}
	case string(bucketVIPs):
		var vip vipsmart.VIP
		if err := json.Unmarshal(v, &vip); err != nil || vip.Name != string(k) {
			return damagef("VIP %q does not decode: %v", clip(k), err)
		}
		c.in.VIPs++
	case string(bucketGIPs):
		var g vipsmart.GIP
		if err := json.Unmarshal(v, &g); err != nil || g.Name != string(k) {
			return damagef("GIP %q does not decode: %v", clip(k), err)
		}
		c.in.GIPs++
	case string(bucketEvents):
		var e vipsmart.Event
		if len(k) != 8 || json.Unmarshal(v, &e) != nil {
			return damagef("event %x does not decode", k)
		}
		if s := binary.BigEndian.Uint64(k); s > seq {
			return damagef("event %d is past the last sequence number %d", s, seq)
		}
		c.in.Events++
	case string(bucketFederation):
		if string(k) != string(keyRecord) {
			return damagef("unknown key %q in bucket federation", clip(k))
		}
		c.record = append([]byte(nil), v...)
	}
	return nil
}

func isKnownBucket(name []byte) bool {
	for _, b := range allBuckets {
		if string(b) == string(name) {
			return true
		}
	}
	return false
}

func (c *contentCheck) finish() error {
	if !c.buckets[string(bucketMeta)] || c.schema == nil {
		return damagef("the schema version (meta/schema_version) is missing")
	}
	n, err := strconv.Atoi(string(c.schema))
	if err != nil || n < 1 {
		return fmt.Errorf("schema version %q is not a positive integer: the file is corrupt or not a vipsmart store", c.schema)
	}
	if n > SchemaVersion {
		return fmt.Errorf("schema version %d is newer than version %d, the newest this vipsmart supports: upgrade vipsmart", n, SchemaVersion)
	}
	c.in.Schema = n
	for _, b := range allBuckets {
		if !c.buckets[string(b)] {
			return damagef("bucket %s is missing", b)
		}
	}
	if n >= 2 {
		if len(c.stored) != len(digest{}) {
			return damagef("the content checksum (meta/digest) is missing")
		}
		if string(c.stored) != string(c.d[:]) {
			return damagef("the content does not match its checksum: a page holds damaged data (a key or value was changed, added or lost)")
		}
		if c.in.StoreID == "" {
			return damagef("the store id (meta/store_id) is missing")
		}
	}
	if len(c.record) > 0 {
		c.in.HasRecord = true
		if c.opts.Describe != nil {
			ri, err := c.opts.Describe(c.record)
			if err != nil {
				return damagef("the federation record does not decode: %v", err)
			}
			c.in.Record = &ri
		}
	}
	return nil
}

// flockShared takes a shared lock on f (a daemon holds an exclusive one),
// retrying until timeout.
func flockShared(f *os.File, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func inUse(path string, timeout time.Duration) error {
	return fmt.Errorf("store %s: data directory %s is in use by another vipsmart process (file lock not acquired within %s): %w",
		path, filepath.Dir(path), timeout, berrors.ErrTimeout)
}
