package bolt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/vipsmart/vipsmart"
)

// Snapshot writes a consistent copy of the store, as of one read
// transaction (bbolt's Tx.WriteTo, not a copy of the file), to an unlinked
// temporary file in the store's directory and returns it positioned at its
// start, with its size. The read transaction lasts only as long as the
// local copy, so a slow reader of the snapshot never holds up writes. The
// caller closes it.
func (s *Store) Snapshot(ctx context.Context) (io.ReadCloser, int64, error) {
	f, size, err := s.snapshot(ctx)
	if err != nil {
		return nil, 0, err
	}
	return f, size, nil
}

func (s *Store) snapshot(ctx context.Context) (f *os.File, size int64, err error) {
	if err := s.begin(ctx, "snapshot"); err != nil {
		return nil, 0, err
	}
	f, err = os.CreateTemp(filepath.Dir(s.path), ".snapshot-*")
	if err != nil {
		return nil, 0, fmt.Errorf("snapshot of %s: %w", s.path, err)
	}
	_ = os.Remove(f.Name()) // unlinked: nothing is left behind if we crash
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	err = func() (err error) {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer s.guard("snapshot", &err)
		return s.db.View(func(tx *bbolt.Tx) error {
			n, err := tx.WriteTo(ctxWriter{ctx, f})
			size = n
			return err
		})
	}()
	if err != nil {
		return nil, 0, fmt.Errorf("snapshot of %s: %w", s.path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, 0, err
	}
	return f, size, nil
}

type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// Check is what `vipsmart store check` reports: the store file (if
// sound), the marker beside it, and the refusal Open would give (nil if
// Open would accept it).
type Check struct {
	Inspection *Inspection   `json:"store,omitempty"`
	Marker     *Marker       `json:"marker,omitempty"`
	Refusal    *RefusedError `json:"-"`
	// Fresh is set when there is no store and no evidence of one: the
	// daemon would start a new standalone DC.
	Fresh bool `json:"fresh,omitempty"`
}

// CheckStore inspects the store at path and its marker as Open would,
// without changing anything: it returns what it found, with the refusal
// Open would give if any. Other errors (the file is in use, unreadable)
// come back as err.
func CheckStore(path string, opts Options) (*Check, error) {
	opts.defaults()
	mk, mkErr := readMarker(path + MarkerSuffix)
	found := evidence(path, mk, mkErr, opts.Evidence)
	c := &Check{Marker: mk}
	in, err := inspectFile(path, opts)
	var re *RefusedError
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, errEmpty):
		if len(found) == 0 {
			c.Fresh = true
			return c, nil
		}
		problem := "the file is missing"
		if errors.Is(err, errEmpty) {
			problem = "the file is empty (0 bytes)"
		}
		c.Refusal = &RefusedError{Kind: Lost, Path: path, Problem: problem, Found: found, Marker: mk}
		return c, nil
	case errors.As(err, &re):
		re.Found, re.Marker = found, mk
		c.Refusal = re
		return c, nil
	case err != nil:
		return nil, err
	}
	c.Inspection = in
	c.Refusal = judge(path, in, mk, found, opts)
	return c, nil
}

// judge compares a sound store file with its marker (see Open).
func judge(path string, in *Inspection, mk *Marker, found []string, opts Options) *RefusedError {
	if mk == nil {
		return nil
	}
	if mk.StoreID != in.StoreID {
		return &RefusedError{Kind: Replaced, Path: path, Marker: mk, Found: found,
			Problem: fmt.Sprintf("the file is not the store this data directory holds: it is store %s, the marker %s names store %s", orNone(in.StoreID), path+MarkerSuffix, mk.StoreID)}
	}
	if opts.Describe == nil || in.epoch() >= mk.Epoch {
		return nil
	}
	switch {
	case mk.Rebuild && opts.Rebuild && !in.HasRecord:
		return nil // resuming a rebuild that did not finish
	case mk.Rebuild:
		return &RefusedError{Kind: RebuildPending, Path: path, Marker: mk, Found: found,
			Problem: fmt.Sprintf("a rebuild from federation %s started at %s and did not finish: the store holds no state yet", orNone(mk.Federation), mk.Updated.UTC().Format(time.RFC3339))}
	}
	return &RefusedError{Kind: Behind, Path: path, Marker: mk, Found: found,
		Problem: fmt.Sprintf("the file is at epoch %d, older than epoch %d which this data directory's store reached (%s): it is an old copy of the store, and starting on it would take the DC back in epoch",
			in.epoch(), mk.Epoch, mk.Updated.UTC().Format(time.RFC3339))}
}

// RestoreOptions tunes Restore.
type RestoreOptions struct {
	// Force replaces a sound store that holds a federation record, or one
	// of another DC.
	Force bool
	// Now is the clock for the names and times it writes; default
	// time.Now.
	Now func() time.Time
}

// Restored is what Restore did.
type Restored struct {
	Backup *Inspection `json:"backup"`
	// Previous is the sound store that was replaced, if any.
	Previous *Inspection `json:"previous,omitempty"`
	// KeptAs is where the replaced store file was moved ("" if there was
	// none).
	KeptAs  string  `json:"kept_as,omitempty"`
	StoreID string  `json:"store_id"`
	Marker  *Marker `json:"marker"`
}

// Restore puts the backup file (a Snapshot) in place as the store at
// path, offline: the file must not be in use. The backup must be sound
// (Inspect). The store it replaces, if any, is moved aside to
// path.before-restore-TIME rather than deleted; a sound one that holds a
// federation record, or belongs to another DC, is replaced only with
// Force. The restored store gets a new store id and a new marker at the
// backup's epoch: the DC starts where the backup left it and catches up
// from its federation (see docs/operations.md).
func Restore(backup, path string, opts Options, ro RestoreOptions) (*Restored, error) {
	opts.defaults()
	if ro.Now == nil {
		ro.Now = time.Now
	}
	bin, err := inspectFile(backup, opts)
	if err != nil {
		if errors.Is(err, errEmpty) {
			return nil, fmt.Errorf("backup %s is empty (0 bytes): it is not a backup", backup)
		}
		return nil, fmt.Errorf("backup %s cannot be restored: %w", backup, err)
	}
	out := &Restored{Backup: bin}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("data directory %s does not exist: create it first (or give the right --data-dir)", dir)
	}

	// Hold the current store's lock, if there is one, for the whole swap.
	cur, err := os.OpenFile(path, os.O_RDWR, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("opening the current store %s: %w", path, err)
	default:
		defer cur.Close()
		if err := syscall.Flock(int(cur.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			return nil, fmt.Errorf("the store %s is in use: stop the vipsmart daemon of this data directory before restoring (%v)", path, err)
		}
		// Inspect reads under its own shared lock, which conflicts with
		// ours: read it while we hold the exclusive one.
		st, _ := cur.Stat()
		if st.Size() > 0 {
			if prev, err := inspectUnlocked(path, cur, st.Size(), opts); err == nil {
				out.Previous = prev
			}
		}
	}
	if p := out.Previous; p != nil && !ro.Force {
		if p.Record != nil && bin.Record != nil && p.Record.DC != bin.Record.DC {
			return nil, fmt.Errorf("the backup is of DC %s but %s holds the store of DC %s: give --force to replace it anyway", bin.Record.DC, path, p.Record.DC)
		}
		if p.HasRecord {
			what := "a sound store"
			if p.Record != nil {
				what = fmt.Sprintf("the sound store of DC %s at epoch %d", p.Record.DC, p.Record.Epoch)
			}
			return nil, fmt.Errorf("%s holds %s: restoring replaces it with the backup's state (epoch %d); give --force to do so (the current store is kept beside it)", path, what, bin.epoch())
		}
	}

	// Copy the backup beside the store and give it a new store id.
	tmp, err := copyToTemp(backup, dir)
	if err != nil {
		return nil, fmt.Errorf("copying the backup into %s: %w", dir, err)
	}
	defer os.Remove(tmp)
	storeID, err := restamp(tmp, opts, bin, fmt.Sprintf("store restored from backup %s (taken at transaction %d)", backup, bin.TxID), ro.Now())
	if err != nil {
		return nil, fmt.Errorf("preparing the restored store: %w", err)
	}
	now := ro.Now().UTC()
	if cur != nil {
		if st, err := cur.Stat(); err == nil && st.Size() > 0 {
			out.KeptAs = path + ".before-restore-" + now.Format("20060102T150405Z")
			if err := os.Rename(path, out.KeptAs); err != nil {
				return nil, fmt.Errorf("moving the current store aside: %w", err)
			}
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("putting the restored store in place: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	m := &Marker{StoreID: storeID, Created: now, Updated: now, Restored: fmt.Sprintf("%s at %s", backup, now.Format(time.RFC3339))}
	if r := bin.Record; r != nil {
		m.DC, m.Federation, m.Epoch = r.DC, r.Federation, r.Epoch
	}
	if err := writeMarker(path+MarkerSuffix, m); err != nil {
		return nil, fmt.Errorf("writing the marker: %w", err)
	}
	out.StoreID, out.Marker = storeID, m
	return out, nil
}

// inspectUnlocked is inspectFile for a file the caller holds locked.
func inspectUnlocked(path string, f *os.File, size int64, opts Options) (in *Inspection, err error) {
	defer func() {
		if r := recover(); r != nil {
			in, err = nil, fmt.Errorf("reading %s: %v", path, r)
		}
	}()
	in = &Inspection{Path: path, Size: size}
	c := &contentCheck{in: in, opts: opts, buckets: map[string]bool{}}
	lay, err := verifyFile(f, size, c.entry)
	if err == nil {
		err = c.finish()
	}
	if err != nil {
		return nil, err
	}
	in.PageSize, in.Pages, in.FreePages, in.TxID = lay.pageSize, lay.hwm, lay.free, lay.txid
	return in, nil
}

func copyToTemp(src, dir string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.CreateTemp(dir, ".restore-*")
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(out.Name())
		return "", err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		os.Remove(out.Name())
		return "", err
	}
	return out.Name(), out.Close()
}

// restamp gives the (inspected) store file at path a new store id,
// upgrades its schema, records event msg and recomputes its checksum.
func restamp(path string, opts Options, in *Inspection, msg string, now time.Time) (id string, err error) {
	db, err := openBolt(path, opts)
	if err != nil {
		return "", err
	}
	defer db.Close()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("bbolt failed on %s: %v", path, r)
		}
	}()
	id = newStoreID()
	err = db.Update(func(tx *bbolt.Tx) error {
		meta, err := bucket(tx, bucketMeta)
		if err != nil {
			return err
		}
		if err := meta.Put(keySchemaVersion, fmt.Appendf(nil, "%d", SchemaVersion)); err != nil {
			return err
		}
		if err := meta.Put(keyStoreID, []byte(id)); err != nil {
			return err
		}
		events, err := bucket(tx, bucketEvents)
		if err != nil {
			return err
		}
		seq, err := events.NextSequence()
		if err != nil {
			return err
		}
		dc := ""
		if in.Record != nil {
			dc = in.Record.DC
		}
		ev, err := json.Marshal(vipsmart.Event{Seq: seq, Time: now.UTC(), DC: dc, Kind: vipsmart.EventStatus, Message: msg})
		if err != nil {
			return err
		}
		if err := events.Put(seqKey(seq), ev); err != nil {
			return err
		}
		d, err := computeDigest(tx)
		if err != nil {
			return err
		}
		return meta.Put(keyDigest, d[:])
	})
	return id, err
}
