package vipsmart

import (
	"context"
	"strings"
	"time"
)

// IdentityPrefix starts every DC identity: "sha256:" and the SHA-256 of the
// DC's public key (its DER SubjectPublicKeyInfo) in 64 lower-case hex
// digits. The same figure comes out of
//
//	openssl x509 -in identity.crt -pubkey -noout | openssl pkey -pubin -outform der | sha256sum
const IdentityPrefix = "sha256:"

// ValidateIdentity checks that s is an identity in its canonical form:
// "sha256:" and 64 lower-case hex digits.
func ValidateIdentity(field, s string) error {
	if !strings.HasPrefix(s, IdentityPrefix) || len(s) != len(IdentityPrefix)+64 {
		return Errorf(EINVALID, field, "%s %q is not a key fingerprint: give sha256: and 64 hex digits, as `vipsmart status` shows it", field, clip(s))
	}
	for _, c := range s[len(IdentityPrefix):] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return Errorf(EINVALID, field, "%s %q is not a key fingerprint: give sha256: and 64 hex digits (0-9, a-f), as `vipsmart status` shows it", field, clip(s))
		}
	}
	return nil
}

// ParseIdentity reads a fingerprint as an operator may type it: with or
// without the "sha256:" prefix, in either case, with or without ':'
// between the bytes (as openssl prints them). It returns the canonical
// form.
func ParseIdentity(field, s string) (string, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimPrefix(t, IdentityPrefix)
	t = strings.ReplaceAll(t, ":", "")
	id := IdentityPrefix + t
	if err := ValidateIdentity(field, id); err != nil {
		return "", Errorf(EINVALID, field, "%s %q is not a key fingerprint: give the 64 hex digits of a SHA-256 (sha256:... as `vipsmart status` shows it)", field, clip(s))
	}
	return id, nil
}

// ShortIdentity abbreviates an identity for messages: sha256: and its first
// 16 hex digits.
func ShortIdentity(id string) string {
	if len(id) > len(IdentityPrefix)+16 {
		return id[:len(IdentityPrefix)+16] + "…"
	}
	return id
}

// Role is what an API token may do.
type Role string

// The roles of API tokens.
const (
	RoleAdmin Role = "admin" // every operator request
	RoleRead  Role = "read"  // reads only (GET)
)

// ParseRole checks a role name.
func ParseRole(field, s string) (Role, error) {
	switch r := Role(s); r {
	case RoleAdmin, RoleRead:
		return r, nil
	}
	return "", Errorf(EINVALID, field, "%s %q is unknown: give admin or read", field, clip(s))
}

// The ways a request reaches a daemon (Caller.Via).
const (
	ViaSocket = "socket" // the local operator socket (trusted by file permissions)
	ViaToken  = "token"  // the HTTPS operator API, with a bearer token
	ViaPeer   = "peer"   // the federation listener (mutual TLS)
)

// Caller is who asked for a request, as the edge authenticated it. The
// event log names it for every change.
type Caller struct {
	Via string `json:"via"`
	// Name is the socket peer ("uid 1000 (alice)"), the token's name, or
	// the DC a peer claims to be.
	Name string `json:"name"`
	Role Role   `json:"role,omitempty"`
	// Identity is the key fingerprint a peer presented.
	Identity string `json:"identity,omitempty"`
	// Addr is the remote address (empty on the socket).
	Addr string `json:"addr,omitempty"`
}

// String names the caller for the event log.
func (c Caller) String() string {
	switch c.Via {
	case ViaSocket:
		return c.Name + " on the local socket"
	case ViaToken:
		return "token " + c.Name + " (" + string(c.Role) + ") from " + c.Addr
	case ViaPeer:
		return c.Name + " (key " + ShortIdentity(c.Identity) + ") from " + c.Addr
	}
	if c.Name == "" {
		return "an unknown caller"
	}
	return c.Name
}

type callerKey struct{}

// WithCaller returns ctx carrying c.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller ctx carries.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// APIToken describes an API token for remote operators (never its secret).
type APIToken struct {
	Name    string     `json:"name"`
	Role    Role       `json:"role"`
	Created time.Time  `json:"created"`
	Expires *time.Time `json:"expires,omitempty"`
}

// NewAPIToken is an API token just made, with its secret (shown once).
type NewAPIToken struct {
	APIToken
	Token string `json:"token"`
}

// JoinToken is a join token just made on a candidate DC: it binds the
// candidate's name and key and carries a single-use secret.
type JoinToken struct {
	Token    string    `json:"token"`
	DC       string    `json:"dc"`
	Identity string    `json:"identity"`
	Expires  time.Time `json:"expires"`
}

// DefaultJoinTokenTTL is how long a join token is valid by default.
const DefaultJoinTokenTTL = 15 * time.Minute

// TrustService is the part of the operator API that manages trust: join
// tokens, the DC's key, and API tokens. The daemon implements it;
// httpapi.Client implements it over HTTP.
type TrustService interface {
	// CreateJoinToken makes a join token for this DC, valid for ttl.
	CreateJoinToken(ctx context.Context, ttl time.Duration) (JoinToken, error)
	// RotateIdentity makes a new key for this DC and commits its
	// fingerprint as one federation change (every member or none).
	RotateIdentity(ctx context.Context) (StatusInfo, error)
	// CreateToken makes an API token (ttl 0: no expiry).
	CreateToken(ctx context.Context, name string, role Role, ttl time.Duration) (NewAPIToken, error)
	ListTokens(ctx context.Context) ([]APIToken, error)
	RevokeToken(ctx context.Context, name string) error
}
