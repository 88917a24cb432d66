// Package token mints, reads and checks vipsmart's two kinds of secrets.
// A DC's set of tokens is a Keeper: File keeps it hashed in a file of the
// data directory (a DC on bolt); etcd.Tokens keeps it in etcd, shared by
// the nodes of a DC on etcd. Both apply the same rules (rules.go) and pass
// one contract suite (token/tokentest). The two kinds:
//
//   - join tokens, made on a candidate DC (vipsmart dc join-token): they
//     carry the candidate's name and key fingerprint, so that the
//     coordinator pins the candidate's key, and a secret that proves to the
//     candidate that its own operator allowed the invitation. Single use,
//     with an expiry.
//   - API tokens, the bearer tokens of remote operators (vipsmart token
//     create): a name, a role, an optional expiry.
//
// Invariants: a secret is shown once, when it is made, and stored only as
// its SHA-256; a revoke, a name and each join token's use happen once
// across every user of one storage; the file is written atomically with
// mode 0600; every
// parser refuses anything but the exact format (it is fed by the network
// and by operators).
package token

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"time"

	"github.com/vipsmart/vipsmart"
)

// The prefixes of the two kinds of tokens (they also let secret scanners
// find a leaked one).
const (
	JoinPrefix = "vsjoin1_"
	APIPrefix  = "vsapi1_"
)

const (
	joinSecretLen = 16
	apiSecretLen  = 32
	fpLen         = 32
	// MaxLen bounds the length of any token; longer input is refused
	// before it is decoded.
	MaxLen = 256
)

// b64 is strict: one token has exactly one spelling (no other string with
// different unused bits decodes to the same secret).
var b64 = base64.RawURLEncoding.Strict()

// Join is a decoded join token.
type Join struct {
	DC       string // the candidate's name
	Identity string // the candidate's key fingerprint
	Secret   []byte
	Expires  time.Time // seconds precision
}

// String encodes j: JoinPrefix and the base64url of
// len(name) | name | fingerprint (32 bytes) | secret (16) | expiry (unix
// seconds, 8, big endian).
func (j Join) String() string {
	raw, _ := hex.DecodeString(strings.TrimPrefix(j.Identity, vipsmart.IdentityPrefix))
	b := make([]byte, 0, 1+len(j.DC)+fpLen+joinSecretLen+8)
	b = append(b, byte(len(j.DC)))
	b = append(b, j.DC...)
	b = append(b, raw...)
	b = append(b, j.Secret...)
	b = binary.BigEndian.AppendUint64(b, uint64(j.Expires.Unix()))
	return JoinPrefix + b64.EncodeToString(b)
}

// Hash is the stored form of j's secret.
func (j Join) Hash() string { return Hash(j.Secret) }

func badJoin(format string, args ...any) error {
	e := vipsmart.Errorf(vipsmart.EINVALID, "token", format, args...)
	e.Message += ": give the token `vipsmart dc join-token` printed on the DC to add"
	return e
}

// ParseJoin decodes a join token. It checks the format only; whether the
// token is valid is for the DC that made it (File.CheckJoin).
func ParseJoin(s string) (Join, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Join{}, badJoin("the join token is empty")
	}
	if len(s) > MaxLen {
		return Join{}, badJoin("the join token is %d characters long, more than any join token", len(s))
	}
	if strings.HasPrefix(s, APIPrefix) {
		return Join{}, badJoin("this is an API token (vsapi1_...), not a join token")
	}
	if !strings.HasPrefix(s, JoinPrefix) {
		return Join{}, badJoin("the join token does not start with %s", JoinPrefix)
	}
	b, err := b64.DecodeString(s[len(JoinPrefix):])
	if err != nil {
		return Join{}, badJoin("the join token is damaged (not base64url)")
	}
	if len(b) < 1 {
		return Join{}, badJoin("the join token is truncated")
	}
	n := int(b[0])
	if len(b) != 1+n+fpLen+joinSecretLen+8 {
		return Join{}, badJoin("the join token is truncated or damaged")
	}
	name := string(b[1 : 1+n])
	if err := vipsmart.ValidateName("name", name); err != nil {
		return Join{}, badJoin("the join token names no valid DC")
	}
	rest := b[1+n:]
	j := Join{
		DC:       name,
		Identity: vipsmart.IdentityPrefix + hex.EncodeToString(rest[:fpLen]),
		Secret:   append([]byte(nil), rest[fpLen:fpLen+joinSecretLen]...),
		Expires:  time.Unix(int64(binary.BigEndian.Uint64(rest[fpLen+joinSecretLen:])), 0).UTC(),
	}
	return j, nil
}

// NewJoin makes a join token for DC name with key identity, valid until
// expires.
func NewJoin(name, identity string, expires time.Time) (Join, error) {
	if err := vipsmart.ValidateName("name", name); err != nil {
		return Join{}, err
	}
	if err := vipsmart.ValidateIdentity("identity", identity); err != nil {
		return Join{}, err
	}
	sec := make([]byte, joinSecretLen)
	if _, err := rand.Read(sec); err != nil {
		return Join{}, err
	}
	return Join{DC: name, Identity: identity, Secret: sec, Expires: expires.Truncate(time.Second).UTC()}, nil
}

// API is a decoded API token.
type API struct {
	Name   string
	Secret []byte
}

// String encodes a: APIPrefix, the name, '_' and the base64url secret.
func (a API) String() string { return APIPrefix + a.Name + "_" + b64.EncodeToString(a.Secret) }

// NewAPI makes an API token named name.
func NewAPI(name string) (API, error) {
	if err := vipsmart.ValidateName("name", name); err != nil {
		return API{}, err
	}
	sec := make([]byte, apiSecretLen)
	if _, err := rand.Read(sec); err != nil {
		return API{}, err
	}
	return API{Name: name, Secret: sec}, nil
}

func badAPI(format string, args ...any) error {
	e := vipsmart.Errorf(vipsmart.EUNAUTHORIZED, "token", format, args...)
	e.Message += ": give the token `vipsmart token create` printed (--token or VIPSMART_TOKEN)"
	return e
}

// ParseAPI decodes an API token (EUNAUTHORIZED if it is not one).
func ParseAPI(s string) (API, error) {
	if len(s) > MaxLen {
		return API{}, badAPI("the API token is %d characters long, more than any API token", len(s))
	}
	if strings.HasPrefix(s, JoinPrefix) {
		return API{}, badAPI("this is a join token (vsjoin1_...), not an API token")
	}
	if !strings.HasPrefix(s, APIPrefix) {
		return API{}, badAPI("the API token does not start with %s", APIPrefix)
	}
	name, sec, ok := strings.Cut(s[len(APIPrefix):], "_")
	if !ok || vipsmart.ValidateName("name", name) != nil {
		return API{}, badAPI("the API token is damaged (no valid name)")
	}
	b, err := b64.DecodeString(sec)
	if err != nil || len(b) != apiSecretLen {
		return API{}, badAPI("the API token is damaged")
	}
	return API{Name: name, Secret: b}, nil
}

// Hash returns the stored form of a secret: the hex SHA-256. Secrets are
// 128 or 256 random bits, so a plain hash is as strong as a slow one.
func Hash(secret []byte) string {
	s := sha256.Sum256(secret)
	return hex.EncodeToString(s[:])
}

// equalHash compares two hashes in constant time.
func equalHash(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
