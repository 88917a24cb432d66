// Package bolt is the embedded default vipsmart.Store: one bbolt file per
// DC, every change committed (and fsynced) in one transaction.
//
// The file layout is versioned by the meta bucket's schema_version key
// (decimal text). Buckets:
//
//	meta       schema_version -> "2"; store_id -> random hex naming this
//	           store (also in the marker file beside it); digest -> the
//	           16-byte content checksum (see digest.go)
//	vips       VIP name -> JSON vipsmart.VIP
//	vip_addrs  address (netip.Addr.String) -> VIP name, the uniqueness index
//	federation "record" -> the opaque federation record
//	gips       GIP name -> JSON vipsmart.GIP
//	events     big-endian uint64 seq -> JSON vipsmart.Event; the bucket's
//	           bbolt sequence is the last seq handed out
//
// The store refuses what it cannot trust, and says why (*RefusedError):
//
//   - Open reads and checks the whole file before bbolt maps it (bbolt
//     trusts its file and panics or faults on damage): both meta pages,
//     every page of every tree, the freelist (verify.go), then the content
//     against its checksum (digest.go), so that a damaged file is refused
//     rather than misread, and never crashes the process.
//   - A marker file beside the store (marker.go) remembers which store
//     lives in the directory and the highest epoch it reached: a missing or
//     empty store beside it is a lost store, never a silent fresh start; a
//     different file or an older copy is refused too.
//   - A panic or memory fault inside bbolt later (the file damaged under a
//     running store) becomes an error naming the file, and the store
//     refuses every call after it.
//
// Backups are consistent snapshots taken in a read transaction (Backup);
// Restore and Inspect work offline on files (backup.go).
package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/vipsmart/vipsmart"
)

// SchemaVersion is the version of the file layout this package reads and
// writes. Open refuses a file with a newer version and upgrades an older
// one (version 1 had no store id and no content checksum).
const SchemaVersion = 2

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
	keyDigest        = []byte("digest")
	keyStoreID       = []byte("store_id")
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
	// Describe decodes the federation record (opaque to the store) into
	// what the marker keeps: the DC, its federation and epoch. Without it
	// the store cannot tell an old copy of itself (Behind) and the marker
	// names no DC.
	Describe func(record []byte) (RecordInfo, error)
	// DescribeSaved, if set, is Describe for the records SaveFederation
	// is given (made by the caller, so well formed): it may read only
	// what the marker keeps. Describe is used where it is nil, and for
	// every record read from the file.
	DescribeSaved func(record []byte) (RecordInfo, error)
	// Evidence names other files (relative to the store's directory, or
	// absolute) whose presence shows that the directory held a store
	// before, such as the DC's identity key. They must be created after
	// Open, never before it on a fresh directory.
	Evidence []string
	// Rebuild accepts a missing or empty store (or one without a
	// federation record) despite the evidence of an earlier one: the
	// caller is about to rebuild the state from the federation. The
	// marker keeps the earlier DC, federation and epoch, marked as a
	// rebuild in progress, until a record at least that far is saved.
	Rebuild bool
	// Logger receives warnings (a marker that could not be written); nil
	// discards them.
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.MaxEvents <= 0 {
		o.MaxEvents = DefaultMaxEvents
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Store is a vipsmart.Store kept in one bbolt file. It is safe for
// concurrent use; writes are serialized by bbolt, so check-then-write
// methods (CreateVIP) are atomic.
//
// Invariants: every write keeps the content checksum (meta/digest) equal to
// the digest of the content, in the same transaction; a panic or memory
// fault inside bbolt never leaves a method: it becomes a *RefusedError of
// kind Damaged, and every later call fails with it.
type Store struct {
	db        *bbolt.DB
	path      string
	maxEvents int
	opts      Options
	storeID   string
	closed    atomic.Bool
	broken    atomic.Pointer[RefusedError]

	// The marker: the latest content (marker), whether it is newer than
	// the file (dirty), and the goroutine that writes it (kick, done).
	mu          sync.Mutex
	marker      *Marker
	markerDirty bool
	previous    *Marker
	kick        chan struct{}
	stop        chan struct{} // closed by Close: the marker writer stops pausing
	urgent      chan struct{} // the marker's DC, federation or rebuild changed: write it without pausing
	done        chan struct{}
}

var _ vipsmart.Store = (*Store)(nil)

// Open opens the store file at path, creating it if it is missing and the
// data directory shows no earlier store. Before bbolt maps the file it
// checks all of it (see Inspect): a damaged file is refused with a
// *RefusedError naming the damage. A missing or empty file beside a marker
// or other evidence (Options.Evidence) is refused as Lost (unless
// Options.Rebuild); a file that is not the store the marker names is
// Replaced; one older than the marker's epoch is Behind. It takes an
// exclusive lock on the file, failing after opts.Timeout if another process
// (another vipsmart daemon on the same data directory) holds it. A new file
// gets schema version SchemaVersion; an older one is upgraded; a newer one
// is refused and left untouched.
func Open(path string, opts Options) (s *Store, err error) {
	opts.defaults()
	markerPath := path + MarkerSuffix
	mk, mkErr := readMarker(markerPath)
	found := evidence(path, mk, mkErr, opts.Evidence)
	in, err := inspectFile(path, opts)
	fresh := false
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, errEmpty):
		fresh = true
		if len(found) > 0 && !opts.Rebuild {
			problem := "the file is missing"
			if errors.Is(err, errEmpty) {
				problem = "the file is empty (0 bytes)"
			}
			return nil, &RefusedError{Kind: Lost, Path: path, Problem: problem, Found: found, Marker: mk}
		}
	case err != nil:
		var re *RefusedError
		if errors.As(err, &re) {
			re.Found, re.Marker = found, mk
			return nil, re
		}
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, err
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if in != nil {
		if re := judge(path, in, mk, found, opts); re != nil {
			return nil, re
		}
	}
	db, err := openBolt(path, opts)
	if err != nil {
		return nil, err
	}
	s = &Store{db: db, path: path, maxEvents: opts.MaxEvents, opts: opts, previous: mk}
	defer func() {
		if err != nil {
			_ = db.Close()
		}
	}()
	if err := s.initialize(in); err != nil {
		return nil, err
	}
	s.syncMarker(in, mk, mkErr, fresh)
	s.kick, s.done, s.stop = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	s.urgent = make(chan struct{}, 1)
	go s.markerWriter(s.kick)
	return s, nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// evidence lists what in the store's directory shows an earlier store.
func evidence(path string, mk *Marker, mkErr error, extra []string) []string {
	var out []string
	markerPath := path + MarkerSuffix
	switch {
	case mk != nil:
		out = append(out, fmt.Sprintf("the marker %s says %s", markerPath, mk.describe()))
	case mkErr != nil:
		out = append(out, fmt.Sprintf("the marker %s is present but unreadable (%v)", markerPath, mkErr))
	}
	for _, e := range extra {
		p := e
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(path), e)
		}
		if _, err := os.Stat(p); err == nil {
			out = append(out, fmt.Sprintf("%s is present", p))
		}
	}
	return out
}

// initialMmapSize is the address space bbolt maps at open. A file that
// outgrows its map is mapped again inside the write transaction, and each
// time bbolt first copies every page the transaction touched out of the
// old map: a batch of 10,000 GIPs written to a new store grew it from 32
// KiB through about ten maps and spent about 0.1 s of CPU copying
// (BENCHMARKS.md, "vipsmart apply"). The map is address space only: the
// file does not grow with it and resident memory counts only the pages
// read.
const initialMmapSize = 256 << 20

// openBolt opens the (already inspected) file with bbolt, turning a panic
// into a refusal.
func openBolt(path string, opts Options) (db *bbolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, &RefusedError{Kind: Damaged, Path: path, Problem: fmt.Sprintf("bbolt failed to open it: %v: the file is damaged", r)}
		}
	}()
	db, err = bbolt.Open(path, 0o600, &bbolt.Options{Timeout: opts.Timeout, NoSync: opts.UnsafeNoSync, InitialMmapSize: initialMmapSize})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, inUse(path, opts.Timeout)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return db, nil
}

// initialize gives a new file its buckets, schema version, store id and
// checksum, and upgrades a version 1 file.
func (s *Store) initialize(in *Inspection) (err error) {
	if in != nil && in.Schema == SchemaVersion {
		s.storeID = in.StoreID
		return nil
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer s.guard("initialize", &err)
	err = s.db.Update(func(tx *bbolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("create bucket %s: %w", b, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		s.storeID = newStoreID()
		if err := meta.Put(keySchemaVersion, []byte(strconv.Itoa(SchemaVersion))); err != nil {
			return err
		}
		if err := meta.Put(keyStoreID, []byte(s.storeID)); err != nil {
			return err
		}
		d, err := computeDigest(tx)
		if err != nil {
			return err
		}
		return meta.Put(keyDigest, d[:])
	})
	if err != nil {
		return fmt.Errorf("open store %s: %w", s.path, err)
	}
	return nil
}

// syncMarker writes the marker after Open: a new one for a new store, the
// store's description if it changed.
func (s *Store) syncMarker(in *Inspection, mk *Marker, mkErr error, fresh bool) {
	now := time.Now().UTC()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case mk != nil && mk.StoreID == s.storeID:
		s.marker = mk
	case fresh && s.opts.Rebuild && mk != nil:
		s.marker = &Marker{StoreID: s.storeID, Created: now, Updated: now, DC: mk.DC, Federation: mk.Federation, Epoch: mk.Epoch, Rebuild: true}
		s.writeMarker()
	default:
		if mkErr != nil {
			s.opts.Logger.Warn("the store's marker was unreadable: writing a new one", "marker", s.path+MarkerSuffix, "err", mkErr)
		}
		s.marker = &Marker{StoreID: s.storeID, Created: now, Updated: now}
		if mk == nil || mk.StoreID != s.storeID || fresh {
			s.writeMarker()
		}
	}
	if in != nil && in.Record != nil {
		s.noteRecordLocked(*in.Record)
	}
	if s.markerDirty {
		s.markerDirty = false
		s.writeMarker()
	}
}

func (s *Store) writeMarker() { s.writeMarkerCopy(*s.marker) }

func (s *Store) writeMarkerCopy(m Marker) {
	if err := writeMarker(s.path+MarkerSuffix, &m); err != nil {
		s.opts.Logger.Warn("could not write the store's marker: a lost store would not be recognized as lost", "marker", s.path+MarkerSuffix, "err", err)
	}
}

// markerWriter writes the marker whenever a save changed it, off the
// commit path: the marker only has to be a lower bound of the store's
// epoch (a crash before it is written leaves it behind the store, which
// Open accepts), so a commit never waits for it. It writes at most once
// per markerEvery: the epochs of a burst of changes (one per federation
// change) cost one atomic rewrite (two fsyncs and a rename), not one each.
// A change of the DC, federation or rebuild state is written without
// waiting out the pause: those name what an operator must rebuild from if
// the store is lost right after joining (docs/operations.md).
func (s *Store) markerWriter(kick <-chan struct{}) {
	defer close(s.done)
	pause := time.NewTimer(markerEvery)
	pause.Stop()
	for range kick {
		s.flushMarker()
		pause.Reset(markerEvery)
		select {
		case <-pause.C:
		case <-s.urgent:
			pause.Stop()
		case <-s.stop:
		}
	}
	s.flushMarker()
}

// markerEvery is the least time between two writes of the marker.
const markerEvery = time.Second

func (s *Store) flushMarker() {
	s.mu.Lock()
	if !s.markerDirty || s.marker == nil {
		s.mu.Unlock()
		return
	}
	m := *s.marker
	s.markerDirty = false
	s.mu.Unlock()
	s.writeMarkerCopy(m)
}

// noteRecordLocked updates the marker for a record now stored.
func (s *Store) noteRecordLocked(ri RecordInfo) {
	m := s.marker
	if m == nil {
		return
	}
	pending := m.Rebuild && ri.Epoch < m.Epoch
	if ri.DC == m.DC && ri.Federation == m.Federation && ri.Epoch <= m.Epoch && pending == m.Rebuild {
		return
	}
	if ri.DC != m.DC || ri.Federation != m.Federation || pending != m.Rebuild {
		select {
		case s.urgent <- struct{}{}:
		default:
		}
	}
	m.DC, m.Federation, m.Rebuild = ri.DC, ri.Federation, pending
	m.Epoch = max(m.Epoch, ri.Epoch)
	m.Updated = time.Now().UTC()
	s.markerDirty = true
	if s.kick != nil {
		select {
		case s.kick <- struct{}{}:
		default: // a write is already due
		}
	}
}

// Path returns the file the store was opened on.
func (s *Store) Path() string { return s.path }

// StoreID returns the id of the store (kept in the file and its marker).
func (s *Store) StoreID() string { return s.storeID }

// Previous returns the marker Open found beside the file (nil if none):
// after a rebuild it holds the DC, federation and epoch of the lost store.
func (s *Store) Previous() *Marker {
	if s.previous == nil {
		return nil
	}
	m := *s.previous
	return &m
}

// Close releases the file and its lock. Every call after the first,
// including Close, fails.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return fmt.Errorf("close store %s: %w", s.path, errClosed)
	}
	close(s.stop)
	s.mu.Lock()
	close(s.kick) // noteRecordLocked sends only under s.mu, and not after this
	s.kick = nil
	s.mu.Unlock()
	<-s.done
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", s.path, err)
	}
	return nil
}

// begin checks that a method may run: ctx is live, s is open and not found
// damaged.
func (s *Store) begin(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if s.closed.Load() {
		return fmt.Errorf("%s: %w", op, errClosed)
	}
	if e := s.broken.Load(); e != nil {
		return e
	}
	return nil
}

// guard turns a panic inside bbolt into a refusal that names the file; the
// store refuses every later call with it.
func (s *Store) guard(op string, errp *error) {
	if r := recover(); r != nil {
		e := &RefusedError{Kind: Damaged, Path: s.path, Problem: fmt.Sprintf("%s failed inside bbolt (%v): the file is damaged; stop the daemon and run vipsmart store check", op, r)}
		s.broken.Store(e)
		*errp = e
	}
}

// view runs fn in a read transaction, wrapping a non-domain error with op.
func (s *Store) view(ctx context.Context, op string, fn func(tx *bbolt.Tx) error) (err error) {
	if err := s.begin(ctx, op); err != nil {
		return err
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer s.guard(op, &err)
	return wrap(op, s.db.View(fn))
}

// update runs fn in a write transaction committed with fsync, wrapping a
// non-domain error with op. fn writes through w, which keeps the content
// checksum.
func (s *Store) update(ctx context.Context, op string, fn func(w *writer) error) (err error) {
	if err := s.begin(ctx, op); err != nil {
		return err
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer s.guard(op, &err)
	return wrap(op, s.db.Update(func(tx *bbolt.Tx) error {
		w, err := newWriter(tx)
		if err != nil {
			return err
		}
		if err := fn(w); err != nil {
			return err
		}
		return w.commit()
	}))
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
	return s.update(ctx, "create VIP "+v.Name, func(w *writer) error {
		vips, err := bucket(w.tx, bucketVIPs)
		if err != nil {
			return err
		}
		addrs, err := bucket(w.tx, bucketVIPAddrs)
		if err != nil {
			return err
		}
		if vips.Get(name) != nil {
			return vipsmart.Errorf(vipsmart.ECONFLICT, "name", "VIP name %s is already in use", v.Name)
		}
		if owner := addrs.Get(addr); owner != nil {
			return vipsmart.Errorf(vipsmart.ECONFLICT, "address", "address %s is already used by VIP %s", v.Address, owner)
		}
		if err := w.put(bucketVIPs, name, data); err != nil {
			return err
		}
		return w.put(bucketVIPAddrs, addr, name)
	})
}

// DeleteVIP removes the named VIP and frees its address, or fails with
// ENOTFOUND.
func (s *Store) DeleteVIP(ctx context.Context, name string) error {
	return s.update(ctx, "delete VIP "+name, func(w *writer) error {
		vips, err := bucket(w.tx, bucketVIPs)
		if err != nil {
			return err
		}
		addrs, err := bucket(w.tx, bucketVIPAddrs)
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
			if err := w.del(bucketVIPAddrs, addr); err != nil {
				return err
			}
		}
		return w.del(bucketVIPs, []byte(name))
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
	_, err := s.SaveFederationEvents(ctx, u, nil)
	return err
}

// SaveFederationEvents is SaveFederation and AppendEvents in one
// transaction (one commit, one fsync): u and events are stored together or
// not at all. It returns the events numbered as AppendEvents does.
func (s *Store) SaveFederationEvents(ctx context.Context, u vipsmart.FederationUpdate, events []vipsmart.Event) ([]vipsmart.Event, error) {
	if err := s.begin(ctx, "save federation"); err != nil {
		return nil, err
	}
	put := make([][2][]byte, 0, len(u.PutGIPs))
	var buf []byte // the encodings, one after another: few allocations for 10,000 GIPs
	for i := range u.PutGIPs {
		g := &u.PutGIPs[i]
		if g.Name == "" {
			return nil, vipsmart.Errorf(vipsmart.EINVALID, "name", "GIP name is empty")
		}
		if cap(buf)-len(buf) < 1024 {
			buf = make([]byte, 0, min(len(u.PutGIPs)-i, 512)*(128+48*len(g.Placements)))
		}
		// The bytes of json.Marshal(g), as ever (gipjson.go).
		key := len(buf)
		buf = append(buf, g.Name...)
		start := len(buf)
		buf = vipsmart.AppendGIPJSON(buf, g, true)
		put = append(put, [2][]byte{buf[key:start:start], buf[start:len(buf):len(buf)]})
	}
	var info *RecordInfo
	describe := s.opts.DescribeSaved
	if describe == nil {
		describe = s.opts.Describe
	}
	if describe != nil && len(u.Record) > 0 {
		ri, err := describe(u.Record)
		if err != nil {
			return nil, fmt.Errorf("save federation: the record does not decode: %w", err)
		}
		info = &ri
	}
	out := slices.Clone(events)
	err := s.update(ctx, "save federation", func(w *writer) error {
		var err error
		if len(u.Record) == 0 {
			err = w.del(bucketFederation, keyRecord)
		} else {
			err = w.put(bucketFederation, keyRecord, bytes.Clone(u.Record))
		}
		if err != nil {
			return err
		}
		if u.ReplaceGIPs {
			if err := w.clear(bucketGIPs); err != nil {
				return err
			}
		}
		if len(put) >= bulkPuts {
			b, err := bucket(w.tx, bucketGIPs)
			if err != nil {
				return err
			}
			b.FillPercent = bulkFill
		}
		for _, kv := range put {
			if err := w.put(bucketGIPs, kv[0], kv[1]); err != nil {
				return fmt.Errorf("put GIP %s: %w", kv[0], err)
			}
		}
		if !u.ReplaceGIPs {
			for _, name := range u.DeleteGIPs {
				if err := w.del(bucketGIPs, []byte(name)); err != nil {
					return fmt.Errorf("delete GIP %s: %w", name, err)
				}
			}
		}
		return s.appendEventsTx(w, out)
	})
	if err == nil && info != nil {
		s.mu.Lock()
		s.noteRecordLocked(*info)
		s.mu.Unlock()
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// A transaction writing at least bulkPuts GIPs (a batch of vipsmart apply,
// sorted by name) fills the pages it splits to bulkFill instead of bbolt's
// half: about half as many pages to allocate and write, one write each.
const (
	bulkPuts = 1000
	bulkFill = 0.9
)

// AppendEvents stores events in one transaction, giving each the next
// sequence number (from 1, never reused, ignoring any Seq the caller set),
// and returns copies so numbered. It then drops the oldest events beyond
// the store's MaxEvents. Appending no events changes nothing.
func (s *Store) AppendEvents(ctx context.Context, events []vipsmart.Event) ([]vipsmart.Event, error) {
	out := make([]vipsmart.Event, len(events))
	copy(out, events)
	err := s.update(ctx, "append events", func(w *writer) error { return s.appendEventsTx(w, out) })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// appendEventsTx numbers and writes out within w's transaction and drops
// the oldest events beyond MaxEvents (AppendEvents).
func (s *Store) appendEventsTx(w *writer, out []vipsmart.Event) error {
	if len(out) == 0 {
		return nil
	}
	b, err := bucket(w.tx, bucketEvents)
	if err != nil {
		return err
	}
	var last uint64
	for i := range out {
		seq, err := w.nextSequence(bucketEvents)
		if err != nil {
			return err
		}
		out[i].Seq = seq
		data, err := json.Marshal(out[i])
		if err != nil {
			return fmt.Errorf("encode event: %w", err)
		}
		if err := w.put(bucketEvents, seqKey(seq), data); err != nil {
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
	for k, v := c.First(); k != nil && binary.BigEndian.Uint64(k) < keepFrom; k, v = c.First() {
		w.d.xor(entryHash(bucketEvents, k, v))
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
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
