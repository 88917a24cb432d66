package token

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/vipsmart/vipsmart"
)

// FileName is the file of a DC's tokens in its data directory.
const FileName = "tokens.json"

// keepUsed is how long a used or expired join token is remembered after
// its expiry, so that a second use is refused as "already used" rather
// than "unknown".
const keepUsed = 24 * time.Hour

// maxJoin bounds the join tokens kept (the oldest go first).
const maxJoin = 1000

type fileData struct {
	Version int          `json:"version"`
	API     []APIRecord  `json:"api_tokens"`
	Join    []JoinRecord `json:"join_tokens"`
}

// File keeps a DC's tokens, hashed, in one JSON file (mode 0600, written
// atomically and durably on every change). It is safe for concurrent use.
type File struct {
	path string
	mu   sync.Mutex
	d    fileData
}

// Open reads the token file at path (none yet is an empty one).
func Open(path string) (*File, error) {
	f := &File{path: path, d: fileData{Version: 1}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the token file: %w", err)
	}
	if err := json.Unmarshal(b, &f.d); err != nil {
		return nil, fmt.Errorf("the token file %s is corrupt: %w", path, err)
	}
	if f.d.Version != 1 {
		return nil, fmt.Errorf("the token file %s has version %d; this build reads version 1", path, f.d.Version)
	}
	return f, nil
}

func (f *File) save() error {
	b, err := json.MarshalIndent(&f.d, "", "  ")
	if err != nil {
		return err
	}
	tmp := f.path + ".tmp"
	fh, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return vipsmart.Errorf(vipsmart.EINTERNAL, "", "writing the token file: %v", err)
	}
	_, err = fh.Write(b)
	if err == nil {
		err = fh.Sync()
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, f.path)
	}
	if err != nil {
		os.Remove(tmp)
		return vipsmart.Errorf(vipsmart.EINTERNAL, "", "writing the token file: %v", err)
	}
	if d, err := os.Open(filepath.Dir(f.path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// ---- API tokens ----

// CreateAPI makes an API token named name with role, valid for ttl (0: no
// expiry), and returns it with its secret (shown once). A name in use is
// refused (ECONFLICT) unless that token has expired.
func (f *File) CreateAPI(name string, role vipsmart.Role, ttl time.Duration, now time.Time) (vipsmart.NewAPIToken, error) {
	rec, out, err := NewAPIRecord(name, role, ttl, now)
	if err != nil {
		return vipsmart.NewAPIToken{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	keep := f.d.API[:0:0]
	for _, r := range f.d.API {
		if r.Name == name {
			if r.Live(now) {
				return vipsmart.NewAPIToken{}, ErrAPIExists(name)
			}
			continue // an expired token of that name is replaced
		}
		keep = append(keep, r)
	}
	old := f.d.API
	f.d.API = append(keep, rec)
	sort.Slice(f.d.API, func(i, j int) bool { return f.d.API[i].Name < f.d.API[j].Name })
	if err := f.save(); err != nil {
		f.d.API = old
		return vipsmart.NewAPIToken{}, err
	}
	return out, nil
}

// ListAPI returns every API token (never a secret), sorted by name.
func (f *File) ListAPI() []vipsmart.APIToken {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]vipsmart.APIToken, 0, len(f.d.API))
	for _, r := range f.d.API {
		out = append(out, r.Info())
	}
	return out
}

// RevokeAPI deletes the named API token (ENOTFOUND if there is none).
func (f *File) RevokeAPI(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, r := range f.d.API {
		if r.Name == name {
			old := f.d.API
			f.d.API = append(f.d.API[:i:i], f.d.API[i+1:]...)
			if err := f.save(); err != nil {
				f.d.API = old
				return err
			}
			return nil
		}
	}
	return ErrNoAPI(name)
}

// Authenticate checks a bearer token and returns what it is
// (EUNAUTHORIZED if it is malformed, unknown, revoked, wrong or expired).
func (f *File) Authenticate(bearer string, now time.Time) (vipsmart.APIToken, error) {
	t, err := ParseAPI(bearer)
	if err != nil {
		return vipsmart.APIToken{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.d.API {
		if f.d.API[i].Name == t.Name {
			return CheckAPIRecord(&f.d.API[i], t, now)
		}
	}
	return vipsmart.APIToken{}, ErrBadAPI()
}

// ---- join tokens ----

// CreateJoin makes a join token for this DC (name, key identity), valid
// for ttl, and stores its hash.
func (f *File) CreateJoin(name, identity string, ttl time.Duration, now time.Time) (vipsmart.JoinToken, error) {
	rec, out, err := NewJoinRecord(name, identity, ttl, now)
	if err != nil {
		return vipsmart.JoinToken{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.d.Join
	f.pruneJoin(now)
	f.d.Join = append(f.d.Join, rec)
	if len(f.d.Join) > maxJoin {
		f.d.Join = f.d.Join[len(f.d.Join)-maxJoin:]
	}
	if err := f.save(); err != nil {
		f.d.Join = old
		return vipsmart.JoinToken{}, err
	}
	return out, nil
}

func (f *File) pruneJoin(now time.Time) {
	keep := f.d.Join[:0:0]
	for _, r := range f.d.Join {
		if !r.Forgotten(now) {
			keep = append(keep, r)
		}
	}
	f.d.Join = keep
}

// CheckJoin checks a join token presented to this DC (name, key identity)
// in an invite: it must be well formed, made for this DC, made here,
// unused and unexpired. It returns the token's hash or an error whose message says which rule failed and how to get a good
// token (EINVALID for a malformed one, EFORBIDDEN otherwise).
func (f *File) CheckJoin(tok, name, identity string, now time.Time) (string, error) {
	h, err := ParseJoinFor(tok, name, identity)
	if err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.d.Join {
		if equalHash(f.d.Join[i].Hash, h) {
			if err := CheckJoinRecord(&f.d.Join[i], name, now); err != nil {
				return "", err
			}
			return h, nil
		}
	}
	return "", CheckJoinRecord(nil, name, now)
}

// HasUnused reports whether a join token that is neither used nor expired
// is kept (memory only: cheap enough to ask after every change).
func (f *File) HasUnused(now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.d.Join {
		if r.Unused(now) {
			return true
		}
	}
	return false
}

// ConsumeAll marks every unused join token used, by how (e.g. "dc-2
// joined federation f-1"): the DC became a member, so its tokens are spent
// (a member makes no join token, so every unused one was made to join).
// It returns how many it marked.
func (f *File) ConsumeAll(now time.Time, how string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var marked []int
	for i := range f.d.Join {
		if r := &f.d.Join[i]; r.Unused(now) {
			r.Use(now, how)
			marked = append(marked, i)
		}
	}
	if len(marked) == 0 {
		return 0, nil
	}
	if err := f.save(); err != nil {
		for _, i := range marked {
			f.d.Join[i].Used, f.d.Join[i].Op = nil, ""
		}
		return 0, err
	}
	return len(marked), nil
}
