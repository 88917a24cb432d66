package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/vipsmart/vipsmart/federation"
)

// PeerReceiver takes a federation message from another daemon.
type PeerReceiver interface {
	Deliver(ctx context.Context, m federation.Message) error
}

// PeerPath is the route peers POST federation messages to.
const PeerPath = "/v1/peer/message"

const messageFields = "the fields of a federation message (see docs/federation.md)"

func (s *Server) peerRoutes(handle func(string, route)) {
	handle(PeerPath, route{"POST": s.peerMessage})
}

func (s *Server) peerMessage(w http.ResponseWriter, r *http.Request) {
	var m federation.Message
	if st, err := decode(w, r, MaxPeerBody, &m, messageFields); err != nil {
		writeJSONError(w, st, err)
		return
	}
	if err := s.Peer.Deliver(r.Context(), m); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// PeerClient sends federation messages to other daemons' peer routes. It
// implements daemon.Transport. Mutual TLS can be added by giving it an
// HTTP client with a TLS config; the protocol does not change.
type PeerClient struct {
	HTTP   *http.Client
	Scheme string // "http" (default) or "https"
}

// NewPeerClient returns a PeerClient with keep-alive connections, sized for
// a federation of dozens of DCs.
func NewPeerClient() *PeerClient {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	tr.MaxIdleConns = 1024
	return &PeerClient{HTTP: &http.Client{Transport: tr, Timeout: 10 * time.Second}, Scheme: "http"}
}

// Send POSTs m to the daemon at m.To. An answer other than 202 is an error
// carrying the peer's message.
func (p *PeerClient) Send(ctx context.Context, m federation.Message) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encoding %s message: %w", m.Type, err)
	}
	scheme := p.Scheme
	if scheme == "" {
		scheme = "http"
	}
	url := scheme + "://" + m.To.AddrPort().String() + PeerPath
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("%s (%s) cannot be reached: %w", m.To.Name, m.To.AddrPort(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		err := fmt.Errorf("%s (%s) refused a %s message: %w", m.To.Name, m.To.AddrPort(), m.Type, decodeError(resp))
		if resp.StatusCode < 500 {
			return refusal{err}
		}
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}

// refusal is a peer's 4xx answer: it was reached and refused the message.
type refusal struct{ error }

// PeerRefused marks the error as a refusal (daemon.PeerRefusal).
func (refusal) PeerRefused() bool { return true }

func (r refusal) Unwrap() error { return r.error }
