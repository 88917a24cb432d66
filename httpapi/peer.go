package httpapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/federation"
)

// PeerReceiver takes a federation message from another daemon. The
// context carries the sender as the transport authenticated it (a
// vipsmart.Caller via vipsmart.ViaPeer, with the fingerprint of the key
// its connection presented): the receiver decides from it whether the
// message is believed.
type PeerReceiver interface {
	Deliver(ctx context.Context, m federation.Message) error
}

// PeerPath is the route peers POST federation messages to.
const PeerPath = "/v1/peer/message"

const messageFields = "the fields of a federation message (see docs/federation.md)"

// PeerHandler returns the handler of the federation listener: the peer
// routes alone (no operator route is served there), with the default
// peer limits. It expects to be served over mutual TLS: key returns the
// fingerprint of the key the client presented ("" if none).
func PeerHandler(recv PeerReceiver, key func(*tls.ConnectionState) string, log *slog.Logger) http.Handler {
	return (&Server{Peer: recv, Logger: log}).Peers(key)
}

// Peers is PeerHandler for s (its Peer, Logger and PeerLimits).
func (s *Server) Peers(key func(*tls.ConnectionState) string) http.Handler {
	s.peerKey = key
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	s.peerRoutes(func(p string, r route) { mux.Handle(p, r) })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeHTTPError(w, http.StatusNotFound, vipsmart.ENOTFOUND, fmt.Sprintf("no such endpoint %s %s: this is the federation listener, which serves only %s and %s (the operator API is on the local socket or --api-listen)", r.Method, r.URL.Path, PeerPath, RebuildPath))
	})
	return s.logRequests(s.limits(refuseUncleanPaths(mux)))
}

// peerRoutes registers the peer routes: federation messages and, when
// the receiver can hand out its state, the rebuild route (recover.go).
func (s *Server) peerRoutes(handle func(string, route)) {
	handle(PeerPath, route{"POST": s.peerMessage})
	if rs, ok := s.Peer.(RebuildSource); ok {
		handle(RebuildPath, route{"POST": func(w http.ResponseWriter, r *http.Request) { s.rebuild(rs, w, r) }})
	}
}

// caller is who the transport authenticated for a peer request: the DC
// it names itself, and the key its connection presented.
func (s *Server) caller(r *http.Request, name string) context.Context {
	key := ""
	if s.peerKey != nil {
		key = s.peerKey(r.TLS)
	}
	if fwd := r.Header.Get(ForwardedPeerKeyHeader); fwd != "" && s.TrustForward != nil && s.TrustForward(key) {
		key = fwd // a follower node of this DC forwarded it (nodes.go)
	}
	return vipsmart.WithCaller(r.Context(), vipsmart.Caller{Via: vipsmart.ViaPeer, Name: name, Identity: key, Addr: r.RemoteAddr})
}

func (s *Server) peerMessage(w http.ResponseWriter, r *http.Request) {
	var m federation.Message
	if st, err := decodeMessage(w, r, &m); err != nil { // JSON or a batch frame (peerbatch.go)
		writeJSONError(w, st, err)
		return
	}
	if s.peerReply(w, r, m) { // peerreply.go
		return
	}
	if err := s.Peer.Deliver(s.caller(r, m.From.Name), m); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// PeerClient sends federation messages to other daemons' peer routes over
// mutual TLS. It implements daemon.Transport. Each destination (address
// and pinned key) has its own keep-alive connections, made with the TLS
// configuration TLS returns for the destination's key, so that a
// connection is only ever used with the key it was verified against, and
// handshakes stay off the hot path. Federation messages use them from the
// sending goroutine itself (peerconn.go); the rebuild route goes through
// net/http's client.
type PeerClient struct {
	// TLS returns the client TLS configuration for a DC whose key is pin
	// (it must present this DC's certificate and check the pin).
	TLS func(pin string) *tls.Config
	// Timeout bounds one request; default 10s.
	Timeout time.Duration

	conns peerConns // kept connections of federation messages (peerconn.go)

	mu      sync.Mutex
	clients map[string]*http.Client
	nodes   map[string][]string // by pin: the DC's node addresses (nodes.go)
	last    map[string]string   // by pin: the address that answered last

	jsonMu sync.Mutex        // guards jsonOf and json (peerbatch.go)
	jsonOf *federation.Batch // the batch last encoded in JSON for an older peer
	json   []byte
}

// NewPeerClient returns a PeerClient dialing with the TLS configurations
// of tlsFor.
func NewPeerClient(tlsFor func(pin string) *tls.Config) *PeerClient {
	return &PeerClient{TLS: tlsFor, Timeout: 10 * time.Second, clients: map[string]*http.Client{}}
}

func (p *PeerClient) client(addr, pin string) *http.Client {
	key := addr + "|" + pin
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[key]; ok {
		return c
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     p.TLS(pin),
		TLSHandshakeTimeout: 5 * time.Second,
		MaxIdleConns:        16,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
	}
	c := &http.Client{Transport: tr, Timeout: p.Timeout}
	if p.clients == nil {
		p.clients = map[string]*http.Client{}
	}
	p.clients[key] = c
	return c
}

// ResetConnections drops every connection (after this DC's key changed:
// the next connections present the new one).
func (p *PeerClient) ResetConnections() {
	p.conns.reset()
	p.mu.Lock()
	old := p.clients
	p.clients = map[string]*http.Client{}
	p.mu.Unlock()
	for _, c := range old {
		c.CloseIdleConnections()
	}
}

// Send POSTs m to the daemon at m.To, pinning m.To.Identity. An answer
// other than 202 is an error carrying the peer's message.
func (p *PeerClient) Send(ctx context.Context, m federation.Message) error {
	return p.sendWith(ctx, m, nil, nil)
}

// sendWith is Send with prep, if set, run on the request, and ok, if set,
// given the 202 response (peerreply.go).
func (p *PeerClient) sendWith(ctx context.Context, m federation.Message, prep func(*http.Request), ok func(*http.Response) error) error {
	if m.To.Identity == "" {
		return fmt.Errorf("%s (%s): no key is pinned for it, so nothing is sent", m.To.Name, m.To.AddrPort())
	}
	body, size, ctype, err := encodeMessage(m, true) // peerbatch.go
	if err != nil {
		return fmt.Errorf("encoding %s message: %w", m.Type, err)
	}
	addr := m.To.AddrPort().String()
	// The DC may run several nodes (nodes.go): start with the address
	// that answered last, then the member record's address and node
	// addresses, then the others the DC named in its answers.
	tries := p.candidates(m.To.Identity, addr, m.To.Nodes)
	for i, a := range tries {
		err = p.send(ctx, m, a, body, size, ctype, prep, ok)
		if isFrameRefused(err) { // an older DC: send it in JSON (peerbatch.go)
			if body, size, err = encodeJSONMessage(m, p.batchJSON(m)); err != nil {
				return fmt.Errorf("encoding %s message: %w", m.Type, err)
			}
			ctype = "application/json"
			err = p.send(ctx, m, a, body, size, ctype, prep, ok)
		}
		if err == nil || isRefusal(err) || ctx.Err() != nil {
			if err == nil && i > 0 {
				p.prefer(m.To.Identity, a)
			}
			return err
		}
	}
	return err
}

func isRefusal(err error) bool {
	var r refusal
	return errors.As(err, &r)
}

func (p *PeerClient) send(ctx context.Context, m federation.Message, addr string, body func() io.Reader, size int64, ctype string, prep func(*http.Request), ok func(*http.Response) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+PeerPath, body())
	if err != nil {
		return err
	}
	req.ContentLength = size
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(body()), nil }
	req.Header.Set("Content-Type", ctype)
	if prep != nil {
		prep(req)
	}
	resp, err := p.do(req, addr, m.To.Identity) // peerconn.go
	if err != nil {
		return fmt.Errorf("%s (%s) cannot be reached: %w", m.To.Name, addr, err)
	}
	defer resp.Body.Close()
	p.learn(m.To.Identity, resp.Header)
	if resp.StatusCode != http.StatusAccepted {
		err := fmt.Errorf("%s (%s) refused a %s message: %w", m.To.Name, addr, m.Type, decodeError(resp))
		if resp.StatusCode == http.StatusUnsupportedMediaType && ctype == BatchMessageType {
			return frameRefused{refusal{err}}
		}
		if resp.StatusCode < 500 {
			return refusal{err}
		}
		return err
	}
	if ok != nil {
		if err := ok(resp); err != nil {
			return refusal{err} // it was delivered: not a reason to call the peer unreachable
		}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}

// refusal is a peer's 4xx answer: it was reached and refused the message.
type refusal struct{ error }

// PeerRefused marks the error as a refusal (daemon.PeerRefusal).
func (refusal) PeerRefused() bool { return true }

func (r refusal) Unwrap() error { return r.error }
