package token

import (
	"time"

	"github.com/vipsmart/vipsmart"
)

// Keeper is a DC's set of tokens, wherever it is kept: File (a DC on
// bolt: the data directory) or etcd.Tokens (a DC on etcd: shared by every
// node of the DC). Every implementation passes the contract suite
// (token/tokentest) and gives the same answers with the same messages,
// because they share the rules below (NewAPIRecord, CheckAPIRecord,
// NewJoinRecord, ParseJoinFor, CheckJoinRecord).
//
// Single use holds across every user of one Keeper's storage: RevokeAPI
// of a name succeeds once, ConsumeAll marks each join token once.
type Keeper interface {
	CreateJoin(name, identity string, ttl time.Duration, now time.Time) (vipsmart.JoinToken, error)
	CheckJoin(tok, name, identity string, now time.Time) (string, error)
	HasUnused(now time.Time) bool
	ConsumeAll(now time.Time, how string) (int, error)
	CreateAPI(name string, role vipsmart.Role, ttl time.Duration, now time.Time) (vipsmart.NewAPIToken, error)
	ListAPI() []vipsmart.APIToken
	RevokeAPI(name string) error
	Authenticate(bearer string, now time.Time) (vipsmart.APIToken, error)
}

var _ Keeper = (*File)(nil)

// APIRecord is the stored form of an API token (never its secret).
type APIRecord struct {
	Name    string        `json:"name"`
	Role    vipsmart.Role `json:"role"`
	Hash    string        `json:"hash"`
	Created time.Time     `json:"created"`
	Expires *time.Time    `json:"expires,omitempty"`
}

// JoinRecord is the stored form of a join token (never its secret).
type JoinRecord struct {
	Hash    string     `json:"hash"`
	Created time.Time  `json:"created"`
	Expires time.Time  `json:"expires"`
	Op      string     `json:"op,omitempty"`   // how it was used (the join)
	Used    *time.Time `json:"used,omitempty"` // when the DC joined
}

// Info is what may be shown of r.
func (r APIRecord) Info() vipsmart.APIToken {
	return vipsmart.APIToken{Name: r.Name, Role: r.Role, Created: r.Created, Expires: r.Expires}
}

// Live reports whether r still holds its name at now (it has not
// expired): a live name is not given to a new token.
func (r APIRecord) Live(now time.Time) bool { return r.Expires == nil || now.Before(*r.Expires) }

// NewAPIRecord checks the arguments of CreateAPI and makes the token and
// the record to store.
func NewAPIRecord(name string, role vipsmart.Role, ttl time.Duration, now time.Time) (APIRecord, vipsmart.NewAPIToken, error) {
	if err := vipsmart.ValidateName("name", name); err != nil {
		return APIRecord{}, vipsmart.NewAPIToken{}, err
	}
	if _, err := vipsmart.ParseRole("role", string(role)); err != nil {
		return APIRecord{}, vipsmart.NewAPIToken{}, err
	}
	if ttl < 0 {
		return APIRecord{}, vipsmart.NewAPIToken{}, vipsmart.Errorf(vipsmart.EINVALID, "ttl", "ttl %s is negative: give a duration such as 24h, or 0 for no expiry", ttl)
	}
	t, err := NewAPI(name)
	if err != nil {
		return APIRecord{}, vipsmart.NewAPIToken{}, err
	}
	rec := APIRecord{Name: name, Role: role, Hash: Hash(t.Secret), Created: now.UTC().Truncate(time.Second)}
	if ttl > 0 {
		e := now.Add(ttl).UTC().Truncate(time.Second)
		rec.Expires = &e
	}
	return rec, vipsmart.NewAPIToken{APIToken: rec.Info(), Token: t.String()}, nil
}

// ErrAPIExists is the refusal of a name held by a live token.
func ErrAPIExists(name string) error {
	return vipsmart.Errorf(vipsmart.ECONFLICT, "name", "an API token named %s exists: revoke it first (vipsmart token revoke %s) or pick another name", name, name)
}

// ErrNoAPI is the answer to revoking a name no token has.
func ErrNoAPI(name string) error {
	return vipsmart.Errorf(vipsmart.ENOTFOUND, "name", "there is no API token named %s: see `vipsmart token list`", name)
}

// ErrBadAPI is the refusal of a bearer token no record matches.
func ErrBadAPI() error {
	return vipsmart.Errorf(vipsmart.EUNAUTHORIZED, "token", "the API token is not valid (unknown, revoked, or its secret is wrong)")
}

// CheckAPIRecord checks the parsed bearer token t against r, the record
// stored under t's name (nil: none).
func CheckAPIRecord(r *APIRecord, t API, now time.Time) (vipsmart.APIToken, error) {
	if r == nil || r.Name != t.Name || !equalHash(r.Hash, Hash(t.Secret)) {
		return vipsmart.APIToken{}, ErrBadAPI()
	}
	if !r.Live(now) {
		return vipsmart.APIToken{}, vipsmart.Errorf(vipsmart.EUNAUTHORIZED, "token", "API token %s expired at %s: ask for a new one (vipsmart token create on the DC)", r.Name, r.Expires.Format(time.RFC3339))
	}
	return r.Info(), nil
}

// NewJoinRecord checks the arguments of CreateJoin and makes the token
// and the record to store.
func NewJoinRecord(name, identity string, ttl time.Duration, now time.Time) (JoinRecord, vipsmart.JoinToken, error) {
	if ttl < time.Second || ttl > 7*24*time.Hour {
		return JoinRecord{}, vipsmart.JoinToken{}, vipsmart.Errorf(vipsmart.EINVALID, "ttl", "ttl %s is out of range: give 1s to 168h (default 15m)", ttl)
	}
	j, err := NewJoin(name, identity, now.Add(ttl))
	if err != nil {
		return JoinRecord{}, vipsmart.JoinToken{}, err
	}
	rec := JoinRecord{Hash: j.Hash(), Created: now.UTC().Truncate(time.Second), Expires: j.Expires}
	return rec, vipsmart.JoinToken{Token: j.String(), DC: j.DC, Identity: j.Identity, Expires: j.Expires}, nil
}

// Forgotten reports whether r is old enough to be dropped: used or
// expired join tokens are remembered for a day past their expiry, so
// that a second use is refused as "already used" rather than "unknown".
func (r JoinRecord) Forgotten(now time.Time) bool { return now.Sub(r.Expires) >= keepUsed }

// Unused reports whether r may still be used at now.
func (r JoinRecord) Unused(now time.Time) bool { return r.Used == nil && now.Before(r.Expires) }

// ParseJoinFor checks a join token presented to this DC (name, key
// identity) in an invite as far as the token itself tells, and returns
// its hash, to look up (then CheckJoinRecord).
func ParseJoinFor(tok, name, identity string) (string, error) {
	if tok == "" {
		return "", vipsmart.Errorf(vipsmart.EFORBIDDEN, "token", "an invite needs a join token: make one on %s with `vipsmart dc join-token` and pass it to dc add --token", name)
	}
	j, err := ParseJoin(tok)
	if err != nil {
		return "", err
	}
	if j.DC != name || j.Identity != identity {
		return "", vipsmart.Errorf(vipsmart.EFORBIDDEN, "token", "the join token was made for %s (key %s), not for %s (key %s): make one on %s with `vipsmart dc join-token`", j.DC, vipsmart.ShortIdentity(j.Identity), name, vipsmart.ShortIdentity(identity), name)
	}
	return j.Hash(), nil
}

// CheckJoinRecord checks r, the record stored under the hash ParseJoinFor
// returned (nil: none), for DC name at now.
func CheckJoinRecord(r *JoinRecord, name string, now time.Time) error {
	switch {
	case r == nil:
		return vipsmart.Errorf(vipsmart.EFORBIDDEN, "token", "the join token was not made on %s, or was forgotten (its data directory reset?): make a new one on %s with `vipsmart dc join-token`", name, name)
	case r.Used != nil:
		return vipsmart.Errorf(vipsmart.EFORBIDDEN, "token", "the join token was already used (at %s: %s): a join token works once; make a new one on %s with `vipsmart dc join-token`", r.Used.Format(time.RFC3339), r.Op, name)
	case !now.Before(r.Expires):
		return vipsmart.Errorf(vipsmart.EFORBIDDEN, "token", "the join token expired at %s: make a new one on %s with `vipsmart dc join-token` (--ttl sets how long it lasts)", r.Expires.Format(time.RFC3339), name)
	}
	return nil
}

// Use marks r used at now by how.
func (r *JoinRecord) Use(now time.Time, how string) {
	t := now.UTC().Truncate(time.Second)
	r.Used, r.Op = &t, how
}

// Export returns what f holds: the API tokens and the join tokens still
// unused at now (what a DC moving to etcd imports).
func (f *File) Export(now time.Time) ([]APIRecord, []JoinRecord) {
	f.mu.Lock()
	defer f.mu.Unlock()
	api := append([]APIRecord(nil), f.d.API...)
	var join []JoinRecord
	for _, r := range f.d.Join {
		if r.Unused(now) {
			join = append(join, r)
		}
	}
	return api, join
}
