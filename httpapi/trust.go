package httpapi

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/vipsmart/vipsmart"
)

// The routes of the trust service (TrustService). The API-token routes
// are served to callers on the local socket only.
const (
	JoinTokensPath = "/v1/join-tokens"
	RotatePath     = "/v1/identity/rotate"
	TokensPath     = "/v1/tokens"
)

func (s *Server) trustRoutes(handle func(string, route)) {
	handle(JoinTokensPath, route{"POST": s.createJoinToken})
	handle(RotatePath, route{"POST": s.rotateIdentity})
	handle(TokensPath, route{"GET": s.socketOnly(s.listTokens), "POST": s.socketOnly(s.createToken)})
	handle(TokensPath+"/{name}", route{"DELETE": s.socketOnly(s.revokeToken)})
}

// JoinTokenRequest is the body of POST /v1/join-tokens (optional).
type JoinTokenRequest struct {
	TTL *vipsmart.Duration `json:"ttl,omitempty"`
}

func (s *Server) createJoinToken(w http.ResponseWriter, r *http.Request) {
	var req JoinTokenRequest
	if r.ContentLength != 0 {
		if st, err := decode(w, r, MaxOperatorBody, &req, `"ttl"`); err != nil {
			writeJSONError(w, st, err)
			return
		}
	}
	ttl := vipsmart.DefaultJoinTokenTTL
	if req.TTL != nil {
		ttl = time.Duration(*req.TTL)
	}
	t, err := s.Trust.CreateJoinToken(r.Context(), ttl)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, t)
}

func (s *Server) rotateIdentity(w http.ResponseWriter, r *http.Request) {
	st, err := s.Trust.RotateIdentity(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// socketOnly refuses callers that are not on the local socket (403).
func (s *Server) socketOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if c, ok := vipsmart.CallerFrom(r.Context()); !ok || c.Via != vipsmart.ViaSocket {
			writeError(w, vipsmart.Errorf(vipsmart.EFORBIDDEN, "", "API tokens are managed on the DC's local socket only (run vipsmart token ... on the DC's host)"))
			return
		}
		h(w, r)
	}
}

// TokenRequest is the body of POST /v1/tokens.
type TokenRequest struct {
	Name string             `json:"name"`
	Role string             `json:"role"`
	TTL  *vipsmart.Duration `json:"ttl,omitempty"`
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var req TokenRequest
	if st, err := decode(w, r, MaxOperatorBody, &req, `"name", "role" and "ttl"`); err != nil {
		writeJSONError(w, st, err)
		return
	}
	if err := vipsmart.ValidateName("name", req.Name); err != nil {
		writeError(w, err)
		return
	}
	role, err := vipsmart.ParseRole("role", req.Role)
	if err != nil {
		writeError(w, err)
		return
	}
	var ttl time.Duration
	if req.TTL != nil {
		ttl = time.Duration(*req.TTL)
	}
	t, err := s.Trust.CreateToken(r.Context(), req.Name, role, ttl)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, t)
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	ts, err := s.Trust.ListTokens(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	if ts == nil {
		ts = []vipsmart.APIToken{}
	}
	writeJSON(w, http.StatusOK, ts)
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	name, ok := pathName(w, r)
	if !ok {
		return
	}
	if err := s.Trust.RevokeToken(r.Context(), name); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// Authenticator checks a bearer token (token.File does).
type Authenticator interface {
	Authenticate(bearer string, now time.Time) (vipsmart.APIToken, error)
}

// RequireToken guards the HTTPS operator API (serve --api-listen): every
// request needs "Authorization: Bearer TOKEN" with a valid API token
// (else 401); a read token may only read, GET or HEAD (else 403). Both
// refusals change nothing; refused (may be nil) is told of each. The
// caller is put in the request's context for the event log.
func RequireToken(auth Authenticator, refused func(remote, who, why string), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fail := func(err *vipsmart.Error, who string) {
			if err.Code == vipsmart.EUNAUTHORIZED {
				w.Header().Set("WWW-Authenticate", `Bearer realm="vipsmart"`)
			}
			if refused != nil {
				refused(r.RemoteAddr, who, fmt.Sprintf("%s %s: %s", r.Method, r.URL.Path, err.Message))
			}
			writeError(w, err)
		}
		h := r.Header.Get("Authorization")
		scheme, bearer, _ := strings.Cut(h, " ")
		if h == "" || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(bearer) == "" {
			fail(vipsmart.Errorf(vipsmart.EUNAUTHORIZED, "", "this API needs a token: send Authorization: Bearer TOKEN (vipsmart --token or VIPSMART_TOKEN; make one with `vipsmart token create` on the DC)"), "")
			return
		}
		t, err := auth.Authenticate(strings.TrimSpace(bearer), time.Now())
		if err != nil {
			e := asVipsmartError(err, vipsmart.EUNAUTHORIZED)
			fail(e, "")
			return
		}
		if t.Role != vipsmart.RoleAdmin && r.Method != http.MethodGet && r.Method != http.MethodHead {
			fail(vipsmart.Errorf(vipsmart.EFORBIDDEN, "", "token %s has role %s: it may only read (GET); %s %s needs an admin token", t.Name, t.Role, r.Method, r.URL.Path), "token "+t.Name)
			return
		}
		c := vipsmart.Caller{Via: vipsmart.ViaToken, Name: t.Name, Role: t.Role, Addr: r.RemoteAddr}
		next.ServeHTTP(w, r.WithContext(vipsmart.WithCaller(r.Context(), c)))
	})
}

func asVipsmartError(err error, code vipsmart.ErrorCode) *vipsmart.Error {
	if e, ok := err.(*vipsmart.Error); ok {
		return e
	}
	return &vipsmart.Error{Code: code, Message: err.Error()}
}

// SocketCaller is an http.Server ConnContext for the local socket: it puts
// the connecting process's user (SO_PEERCRED) in the context as the
// caller.
func SocketCaller(ctx context.Context, c net.Conn) context.Context {
	return vipsmart.WithCaller(ctx, vipsmart.Caller{Via: vipsmart.ViaSocket, Name: peerUser(c)})
}
