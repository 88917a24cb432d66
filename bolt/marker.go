package bolt

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// MarkerSuffix names the marker file beside a store: vipsmart.db has
// vipsmart.db.marker. The marker is the data directory's memory of its
// store, kept outside the store file: which store lives there (its id),
// whose it is, and the highest federation epoch it reached. A missing or
// empty store beside a marker is a lost store, not a fresh start; a store
// with another id is a replaced file; a store behind the marker's epoch is
// an old copy put back by hand.
const MarkerSuffix = ".marker"

// Marker is the content of the marker file.
type Marker struct {
	Version    int       `json:"version"`
	StoreID    string    `json:"store_id"`
	Created    time.Time `json:"created"`
	Updated    time.Time `json:"updated"`
	DC         string    `json:"dc,omitempty"`
	Federation string    `json:"federation,omitempty"`
	// Epoch is the highest epoch the store of this directory has held
	// (it only rises, except by restore).
	Epoch uint64 `json:"epoch"`
	// Rebuild is set while a rebuild from the federation has started
	// but not yet brought the state in.
	Rebuild bool `json:"rebuild,omitempty"`
	// Restored tells from which file and when the store was last
	// restored.
	Restored string `json:"restored,omitempty"`
}

// RecordInfo is what the store needs to know of the federation record it
// keeps (the record is opaque to it otherwise): the DC it belongs to, its
// federation ("" when standalone) and its epoch.
type RecordInfo struct {
	DC         string
	Federation string
	Epoch      uint64
}

func (m *Marker) describe() string {
	var b strings.Builder
	b.WriteString("it held the store")
	if m.DC != "" {
		fmt.Fprintf(&b, " of DC %s", m.DC)
	}
	if m.Federation != "" {
		fmt.Fprintf(&b, ", a member of federation %s", m.Federation)
	}
	fmt.Fprintf(&b, " at epoch %d (last change recorded %s)", m.Epoch, m.Updated.UTC().Format(time.RFC3339))
	return b.String()
}

func newStoreID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// readMarker reads the marker at path: (nil, nil) if there is none; an
// unreadable or undecodable marker is returned as an error (and still
// counts as evidence of an earlier store).
func readMarker(path string) (*Marker, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m Marker
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("marker %s is not valid JSON: %w", path, err)
	}
	if m.StoreID == "" {
		return nil, fmt.Errorf("marker %s names no store", path)
	}
	return &m, nil
}

// writeMarker replaces the marker at path atomically and durably.
func writeMarker(path string, m *Marker) error {
	m.Version = 1
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'), 0o600)
}

// writeFileAtomic writes data to a temporary file beside path, syncs it,
// renames it over path and syncs the directory.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// RefusalKind says why Open refused a store.
type RefusalKind int

// The kinds of refusal.
const (
	// Lost: the store file is missing or empty, but the data directory
	// shows it held a store before.
	Lost RefusalKind = iota + 1
	// Damaged: the store file is damaged (structure or content).
	Damaged
	// Replaced: the store file is not the store the marker names.
	Replaced
	// Behind: the store file is older than the last state the data
	// directory held (an old copy put back by hand).
	Behind
	// RebuildPending: a rebuild from the federation started and did not
	// finish.
	RebuildPending
)

// RefusedError is Open's refusal of a store it cannot trust. Its message
// says what is wrong and what was found; the caller adds what to do (it
// knows its own flags and commands).
type RefusedError struct {
	Kind    RefusalKind
	Path    string
	Problem string
	// Found lists the evidence of an earlier store in the directory.
	Found []string
	// Marker is the marker found beside the store, if any.
	Marker *Marker
	Err    error
}

func (e *RefusedError) Error() string {
	msg := "store " + e.Path + ": " + e.Problem
	if len(e.Found) > 0 {
		msg += "; but the data directory has held a vipsmart store before: " + strings.Join(e.Found, "; ")
	}
	return msg
}

func (e *RefusedError) Unwrap() error { return e.Err }
