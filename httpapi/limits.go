package httpapi

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/netutil"

	"github.com/vipsmart/vipsmart"
)

// Limits bound what requests can cost a daemon, so that a flood of large
// or many requests leaves its memory bounded and the daemon answering. A
// Server applies PeerLimits to the peer routes (/v1/peer/...) and
// OperatorLimits to the others, each with its own counters.
//
// A body whose declared length exceeds LargeBody (or that has no declared
// length) is a large body: at most MaxLarge of them are read at once (and
// MaxLargePerSource from one source address); a large request waits up to
// Wait for its turn, so that the bodies being read at once, and the
// memory to decode them, stay bounded. Requests over MaxInFlight (all
// sources) or MaxPerSource (one source) are refused at once. Every refusal
// is a 503 (code unavailable) with Retry-After. A body must arrive within
// ReadTimeout and be at most MaxBody bytes (413 otherwise).
type Limits struct {
	MaxBody           int64
	LargeBody         int64
	MaxLarge          int
	MaxLargePerSource int
	MaxInFlight       int
	MaxPerSource      int
	ReadTimeout       time.Duration
	Wait              time.Duration
}

// The default limits. The largest legitimate peer message is a state
// transfer (prepare, state): about 2.1 MiB for 10,000 GIPs placed in three
// DCs with short names, 13.9 MiB for 10,000 GIPs with 63-character names
// and IPv6 addresses placed in 8 DCs (TestLargestStateFitsThePeerLimit);
// MaxPeerBody (16 MiB) covers both. Memory for bodies is then bounded by
// about MaxLarge x MaxBody + MaxInFlight x LargeBody per listener side,
// plus what decoding them takes (see docs/operations.md for the measured
// RSS under a flood).
var (
	DefaultPeerLimits = Limits{
		MaxBody: MaxPeerBody, LargeBody: 64 << 10, MaxLarge: 2, MaxLargePerSource: 2,
		MaxInFlight: 256, MaxPerSource: 64, ReadTimeout: 30 * time.Second, Wait: 10 * time.Second,
	}
	DefaultOperatorLimits = Limits{
		MaxBody: MaxOperatorBody, LargeBody: 64 << 10, MaxLarge: 4, MaxLargePerSource: 2,
		MaxInFlight: 256, MaxPerSource: 128, ReadTimeout: 10 * time.Second, Wait: 5 * time.Second,
	}
)

// MaxConns is how many connections Harden's listener serves at once; more
// wait in the kernel's accept queue.
const MaxConns = 1024

// Harden sets the server-wide limits of an http.Server serving a Handler:
// header size, header read timeout and idle keep-alive timeout (each only
// if not set already).
func Harden(srv *http.Server) {
	if srv.MaxHeaderBytes == 0 {
		srv.MaxHeaderBytes = 64 << 10
	}
	if srv.ReadHeaderTimeout == 0 {
		srv.ReadHeaderTimeout = 5 * time.Second
	}
	if srv.IdleTimeout == 0 {
		srv.IdleTimeout = 90 * time.Second
	}
}

// LimitListener returns ln serving at most MaxConns connections at once.
func LimitListener(ln net.Listener) net.Listener { return netutil.LimitListener(ln, MaxConns) }

// limiter applies one Limits to the requests it wraps.
type limiter struct {
	l        Limits
	inflight chan struct{}
	large    chan struct{}

	mu  sync.Mutex
	src map[string]*source
}

type source struct {
	refs  int
	all   chan struct{}
	large chan struct{}
}

func newLimiter(l Limits) *limiter {
	return &limiter{l: l, inflight: make(chan struct{}, l.MaxInFlight), large: make(chan struct{}, l.MaxLarge), src: map[string]*source{}}
}

func (lm *limiter) source(key string) *source {
	lm.mu.Lock()
	defer lm.mu.Unlock()
	s := lm.src[key]
	if s == nil {
		s = &source{all: make(chan struct{}, lm.l.MaxPerSource), large: make(chan struct{}, lm.l.MaxLargePerSource)}
		lm.src[key] = s
	}
	s.refs++
	return s
}

func (lm *limiter) done(key string) {
	lm.mu.Lock()
	defer lm.mu.Unlock()
	if s := lm.src[key]; s != nil {
		if s.refs--; s.refs == 0 {
			delete(lm.src, key)
		}
	}
}

func tryAcquire(c chan struct{}) bool {
	select {
	case c <- struct{}{}:
		return true
	default:
		return false
	}
}

func acquire(ctx context.Context, c chan struct{}) bool {
	select {
	case c <- struct{}{}:
		return true
	default:
	}
	select {
	case c <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func overloaded(w http.ResponseWriter, format string, args ...any) {
	w.Header().Set("Retry-After", "1")
	writeHTTPError(w, http.StatusServiceUnavailable, vipsmart.EUNAVAILABLE, fmt.Sprintf(format, args...)+": retry in a moment")
}

func sourceKey(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

func (lm *limiter) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l := lm.l
		if r.ContentLength > l.MaxBody {
			writeHTTPError(w, http.StatusRequestEntityTooLarge, vipsmart.EINVALID, tooLarge(r, l.MaxBody).Error())
			return
		}
		key := sourceKey(r)
		s := lm.source(key)
		defer lm.done(key)
		if !tryAcquire(lm.inflight) {
			overloaded(w, "the daemon is serving %d requests at once, its limit", l.MaxInFlight)
			return
		}
		defer func() { <-lm.inflight }()
		if !tryAcquire(s.all) {
			overloaded(w, "%d requests at once from %s, the limit for one source", l.MaxPerSource, key)
			return
		}
		defer func() { <-s.all }()
		hasBody := r.ContentLength != 0 || len(r.TransferEncoding) > 0
		if hasBody && (r.ContentLength < 0 || r.ContentLength > l.LargeBody) {
			ctx, cancel := context.WithTimeout(r.Context(), l.Wait)
			defer cancel()
			if !acquire(ctx, s.large) {
				overloaded(w, "%d large requests (over %d bytes) from %s are being read already", l.MaxLargePerSource, l.LargeBody, key)
				return
			}
			defer func() { <-s.large }()
			if !acquire(ctx, lm.large) {
				overloaded(w, "%d large requests (over %d bytes) are being read already", l.MaxLarge, l.LargeBody)
				return
			}
			defer func() { <-lm.large }()
		}
		if hasBody {
			// net/http clears the deadline itself once the body is read
			// (it then watches the connection for the client going away).
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(l.ReadTimeout))
			r.Body = http.MaxBytesReader(w, r.Body, l.MaxBody)
		}
		next.ServeHTTP(w, r)
	})
}

// limits routes a request to the peer or the operator limiter.
func (s *Server) limits(next http.Handler) http.Handler {
	pl, ol := DefaultPeerLimits, DefaultOperatorLimits
	if s.PeerLimits != nil {
		pl = *s.PeerLimits
	}
	if s.OperatorLimits != nil {
		ol = *s.OperatorLimits
	}
	peer, op := newLimiter(pl).wrap(next), newLimiter(ol).wrap(next)
	apply := newLimiter(DefaultApplyLimits).wrap(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isPeerPath(r.URL.Path) {
			peer.ServeHTTP(w, r)
			return
		}
		if r.URL.Path == ApplyPath {
			apply.ServeHTTP(w, r)
			return
		}
		op.ServeHTTP(w, r)
	})
}

func isPeerPath(p string) bool {
	return len(p) >= len("/v1/peer/") && p[:len("/v1/peer/")] == "/v1/peer/"
}
