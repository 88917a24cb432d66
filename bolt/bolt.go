// Package bolt is the embedded default vipsmart.Store: one bbolt file per
// DC, every change committed (and fsynced) in one transaction.
//
// The file layout is versioned by the meta bucket's schema_version key
// (decimal text). Buckets:
//
//	meta       schema_version -> "1"
//	vips       VIP name -> JSON vipsmart.VIP
//	vip_addrs  address (netip.Addr.String) -> VIP name, the uniqueness index
//	federation "record" -> the opaque federation record
//	gips       GIP name -> JSON vipsmart.GIP
//	events     big-endian uint64 seq -> JSON vipsmart.Event; the bucket's
//	           bbolt sequence is the last seq handed out
package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/vipsmart/vipsmart"
)

// SchemaVersion is the version of the file layout this package reads and
// writes. Open refuses a file with a newer version.
const SchemaVersion = 1

// The defaults of Options.
const (
	DefaultMaxEvents = 10000
	DefaultTimeout   = time.Second
)

var (
	bucketMeta       = []byte("meta")
	bucketVIPs       = []byte("vips")
	bucketVIPAddrs   = []byte("vip_addrs")
	bucketFederation = []byte("federation")
	bucketGIPs       = []byte("gips")
	bucketEvents     = []byte("events")

	keySchemaVersion = []byte("schema_version")
	keyRecord        = []byte("record")

	allBuckets = [][]byte{bucketMeta, bucketVIPs, bucketVIPAddrs, bucketFederation, bucketGIPs, bucketEvents}
)

// errClosed is returned by every method called after Close.
var errClosed = errors.New("store is closed")

// Options tunes a Store. The zero value gives the defaults.
type Options struct {
	// MaxEvents is how many events the store keeps, dropping the oldest
	// beyond it; 0 or less means DefaultMaxEvents.
	MaxEvents int
	// Timeout is how long Open waits for the file lock held by another
	// process; 0 or less means DefaultTimeout.
	Timeout time.Duration
	// UnsafeNoSync skips fsync on commit. An acknowledged write can then
	// be lost in a crash of the machine (not of the process). It exists to
	// measure the protocol apart from the disk in benchmarks; never use it
	// in production.
	UnsafeNoSync bool
}

// Store is a vipsmart.Store kept in one bbolt file. It is safe for
// concurrent use; writes are serialized by bbolt, so check-then-write
// methods (CreateVIP) are atomic.
type Store struct {
	db        *bbolt.DB
	path      string
	maxEvents int
	closed    atomic.Bool
}

var _ vipsmart.Store = (*Store)(nil)

// Open opens (creating if missing) the store file at path. It takes an
// exclusive lock on the file, failing after opts.Timeout if another process
// (another vipsmart daemon on the same data directory) holds it. A new file
// gets schema version SchemaVersion; a file with a newer version is refused
// and left untouched.
func Open(path string, opts Options) (*Store, error) {
	if opts.MaxEvents <= 0 {
		opts.MaxEvents = DefaultMaxEvents
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: opts.Timeout, NoSync: opts.UnsafeNoSync})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("open store %s: data directory %s is in use by another vipsmart process (file lock not acquired within %s): %w",
				path, filepath.Dir(path), opts.Timeout, err)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if v := meta.Get(keySchemaVersion); v != nil {
			n, err := strconv.Atoi(string(v))
			if err != nil || n < 1 {
				return fmt.Errorf("schema version %q is not a positive integer: the file is corrupt or not a vipsmart store", v)
			}
			if n > SchemaVersion {
				return fmt.Errorf("schema version %d is newer than version %d, the newest this vipsmart supports: upgrade vipsmart", n, SchemaVersion)
			}
		} else if err := meta.Put(keySchemaVersion, []byte(strconv.Itoa(SchemaVersion))); err != nil {
			return err
		}
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("create bucket %s: %w", b, err)
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return &Store{db: db, path: path, maxEvents: opts.MaxEvents}, nil
}

// Path returns the file the store was opened on.
func (s *Store) Path() string { return s.path }

// Close releases the file and its lock. Every call after the first,
// including Close, fails.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return fmt.Errorf("close store %s: %w", s.path, errClosed)
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", s.path, err)
	}
	return nil
}

// begin checks that a method may run: ctx is live and s is open.
func (s *Store) begin(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if s.closed.Load() {
		return fmt.Errorf("%s: %w", op, errClosed)
	}
	return nil
}

// view runs fn in a read transaction, wrapping a non-domain error with op.
func (s *Store) view(ctx context.Context, op string, fn func(tx *bbolt.Tx) error) error {
	if err := s.begin(ctx, op); err != nil {
		return err
	}
	return wrap(op, s.db.View(fn))
}

// update runs fn in a write transaction committed with fsync, wrapping a
// non-domain error with op.
func (s *Store) update(ctx context.Context, op string, fn func(tx *bbolt.Tx) error) error {
	if err := s.begin(ctx, op); err != nil {
		return err
	}
	return wrap(op, s.db.Update(fn))
}

// wrap returns a *vipsmart.Error unchanged (its message names the thing
// already) and prefixes any other error with op.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var e *vipsmart.Error
	if errors.As(err, &e) {
		return err
	}
	return fmt.Errorf("%s: %w", op, err)
}

// bucket returns the named bucket of tx. Open created every bucket, so a
// missing one means the file was damaged.
func bucket(tx *bbolt.Tx, name []byte) (*bbolt.Bucket, error) {
	b := tx.Bucket(name)
	if b == nil {
		return nil, fmt.Errorf("bucket %s is missing: the store file is damaged", name)
	}
	return b, nil
}

// ListVIPs returns every VIP, sorted by name (bytewise, as Go compares
// strings). It returns an empty, non-nil slice when there are none.
func (s *Store) ListVIPs(ctx context.Context) ([]vipsmart.VIP, error) {
	vips := []vipsmart.VIP{}
	err := s.view(ctx, "list VIPs", func(tx *bbolt.Tx) error {
		b, err := bucket(tx, bucketVIPs)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			var vip vipsmart.VIP
			if err := json.Unmarshal(v, &vip); err != nil {
				return fmt.Errorf("decode VIP %s: %w", k, err)
			}
			vips = append(vips, vip)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return vips, nil
}

// GetVIP returns the named VIP or an ENOTFOUND error.
func (s *Store) GetVIP(ctx context.Context, name string) (vipsmart.VIP, error) {
	var vip vipsmart.VIP
	err := s.view(ctx, "get VIP "+name, func(tx *bbolt.Tx) error {
		b, err := bucket(tx, bucketVIPs)
		if err != nil {
			return err
		}
		v := b.Get([]byte(name))
		if v == nil {
			return vipNotFound(name)
		}
		if err := json.Unmarshal(v, &vip); err != nil {
			return fmt.Errorf("decode VIP %s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return vipsmart.VIP{}, err
	}
	return vip, nil
}

func vipNotFound(name string) error {
	return vipsmart.Errorf(vipsmart.ENOTFOUND, "name", "VIP %s does not exist", name)
}

// CreateVIP adds v in one transaction. It fails with ECONFLICT, changing
// nothing, when another VIP has the same name or the same address, and
// with EINVALID when v has no name or no valid address.
func (s *Store) CreateVIP(ctx context.Context, v vipsmart.VIP) error {
	if err := s.begin(ctx, "create VIP "+v.Name); err != nil {
		return err
	}
	if v.Name == "" {
		return vipsmart.Errorf(vipsmart.EINVALID, "name", "VIP name is empty")
	}
	if !v.Address.IsValid() {
		return vipsmart.Errorf(vipsmart.EINVALID, "address", "VIP %s has no address", v.Name)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("create VIP %s: encode: %w", v.Name, err)
	}
	name, addr := []byte(v.Name), []byte(v.Address.String())
	return s.update(ctx, "create VIP "+v.Name, func(tx *bbolt.Tx) error {
		vips, err := bucket(tx, bucketVIPs)
		if err != nil {
			return err
		}
		addrs, err := bucket(tx, bucketVIPAddrs)
		if err != nil {
			return err
		}
		if vips.Get(name) != nil {
			return vipsmart.Errorf(vipsmart.ECONFLICT, "name", "VIP name %s is already in use", v.Name)
		}
		if owner := addrs.Get(addr); owner != nil {
			return vipsmart.Errorf(vipsmart.ECONFLICT, "address", "address %s is already used by VIP %s", v.Address, owner)
		}
		if err := vips.Put(name, data); err != nil {
			return err
		}
		return addrs.Put(addr, name)
	})
}

// DeleteVIP removes the named VIP and frees its address, or fails with
// ENOTFOUND.
func (s *Store) DeleteVIP(ctx context.Context, name string) error {
	return s.update(ctx, "delete VIP "+name, func(tx *bbolt.Tx) error {
		vips, err := bucket(tx, bucketVIPs)
		if err != nil {
			return err
		}
		addrs, err := bucket(tx, bucketVIPAddrs)
		if err != nil {
			return err
		}
		v := vips.Get([]byte(name))
		if v == nil {
			return vipNotFound(name)
		}
		var vip vipsmart.VIP
		if err := json.Unmarshal(v, &vip); err != nil {
			return fmt.Errorf("decode VIP %s: %w", name, err)
		}
		addr := []byte(vip.Address.String())
		// Free the address only if the index points at this VIP.
		if owner := addrs.Get(addr); bytes.Equal(owner, []byte(name)) {
			if err := addrs.Delete(addr); err != nil {
				return err
			}
		}
		return vips.Delete([]byte(name))
	})
}

// LoadFederation returns a copy of the federation record last saved (nil
// if none, or if the last save had an empty record) and every GIP, sorted
// by name (an empty, non-nil slice when there are none).
func (s *Store) LoadFederation(ctx context.Context) ([]byte, []vipsmart.GIP, error) {
	var record []byte
	gips := []vipsmart.GIP{}
	err := s.view(ctx, "load federation", func(tx *bbolt.Tx) error {
		fed, err := bucket(tx, bucketFederation)
		if err != nil {
			return err
		}
		if r := fed.Get(keyRecord); len(r) > 0 {
			record = bytes.Clone(r) // r lives only as long as tx
		}
		b, err := bucket(tx, bucketGIPs)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			var g vipsmart.GIP
			if err := json.Unmarshal(v, &g); err != nil {
				return fmt.Errorf("decode GIP %s: %w", k, err)
			}
			gips = append(gips, g)
			return nil
		})
	})
	if err != nil {
		return nil, nil, err
	}
	return record, gips, nil
}

// SaveFederation stores u in one transaction: the record (an empty one
// clears it) and the GIP changes. With ReplaceGIPs the stored GIPs become
// exactly PutGIPs and DeleteGIPs is ignored; otherwise PutGIPs are written
// by name, then DeleteGIPs removed (a missing name is no error). A GIP
// without a name fails with EINVALID, changing nothing.
func (s *Store) SaveFederation(ctx context.Context, u vipsmart.FederationUpdate) error {
	if err := s.begin(ctx, "save federation"); err != nil {
		return err
	}
	put := make([][2][]byte, 0, len(u.PutGIPs))
	for _, g := range u.PutGIPs {
		if g.Name == "" {
			return vipsmart.Errorf(vipsmart.EINVALID, "name", "GIP name is empty")
		}
		data, err := json.Marshal(g)
		if err != nil {
			return fmt.Errorf("save federation: encode GIP %s: %w", g.Name, err)
		}
		put = append(put, [2][]byte{[]byte(g.Name), data})
	}
	return s.update(ctx, "save federation", func(tx *bbolt.Tx) error {
		fed, err := bucket(tx, bucketFederation)
		if err != nil {
			return err
		}
		if len(u.Record) == 0 {
			err = fed.Delete(keyRecord)
		} else {
			err = fed.Put(keyRecord, bytes.Clone(u.Record))
		}
		if err != nil {
			return err
		}
		if u.ReplaceGIPs {
			if err := tx.DeleteBucket(bucketGIPs); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(bucketGIPs); err != nil {
				return err
			}
		}
		gips, err := bucket(tx, bucketGIPs)
		if err != nil {
			return err
		}
		for _, kv := range put {
			if err := gips.Put(kv[0], kv[1]); err != nil {
				return fmt.Errorf("put GIP %s: %w", kv[0], err)
			}
		}
		if !u.ReplaceGIPs {
			for _, name := range u.DeleteGIPs {
				if err := gips.Delete([]byte(name)); err != nil {
					return fmt.Errorf("delete GIP %s: %w", name, err)
				}
			}
		}
		return nil
	})
}

// AppendEvents stores events in one transaction, giving each the next
// sequence number (from 1, never reused, ignoring any Seq the caller set),
// and returns copies so numbered. It then drops the oldest events beyond
// the store's MaxEvents. Appending no events changes nothing.
func (s *Store) AppendEvents(ctx context.Context, events []vipsmart.Event) ([]vipsmart.Event, error) {
	out := make([]vipsmart.Event, len(events))
	copy(out, events)
	err := s.update(ctx, "append events", func(tx *bbolt.Tx) error {
		if len(out) == 0 {
			return nil
		}
		b, err := bucket(tx, bucketEvents)
		if err != nil {
			return err
		}
		var last uint64
		for i := range out {
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			out[i].Seq = seq
			data, err := json.Marshal(out[i])
			if err != nil {
				return fmt.Errorf("encode event: %w", err)
			}
			if err := b.Put(seqKey(seq), data); err != nil {
				return err
			}
			last = seq
		}
		// Seqs are stored contiguously, so keeping the newest maxEvents
		// means dropping every seq below last-maxEvents+1.
		if last <= uint64(s.maxEvents) {
			return nil
		}
		keepFrom := last - uint64(s.maxEvents) + 1
		c := b.Cursor()
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) < keepFrom; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListEvents returns up to limit events with Seq > after, oldest first (an
// empty, non-nil slice when there are none). A limit of 0 or less means no
// limit.
func (s *Store) ListEvents(ctx context.Context, after uint64, limit int) ([]vipsmart.Event, error) {
	events := []vipsmart.Event{}
	err := s.view(ctx, "list events", func(tx *bbolt.Tx) error {
		b, err := bucket(tx, bucketEvents)
		if err != nil {
			return err
		}
		if after == ^uint64(0) {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil; k, v = c.Next() {
			if limit > 0 && len(events) >= limit {
				break
			}
			var e vipsmart.Event
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("decode event %d: %w", binary.BigEndian.Uint64(k), err)
			}
			e.Seq = binary.BigEndian.Uint64(k)
			events = append(events, e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return events, nil
}

func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, seq)
}
