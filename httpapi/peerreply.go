package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/federation"
)

// The answer to a federation request (a heartbeat's heartbeat-resp, a
// lock's lock-resp, ...) rides back in the HTTP response of the request
// itself, instead of as a request of its own the other way: a sender that
// can take it names the answer's type in ReplyHeader, and a receiver that
// implements PeerReplier answers 202 with that message as the body. That
// saves one request per heartbeat and per phase answer (each a TLS record
// each way and several goroutine wake-ups on both sides). Either side of
// another version falls back to the separate request: a receiver that does
// not know the header answers 202 with no body and sends its answer as
// before, and a sender that does not ask gets it as before. The answer is
// authenticated like any message of that peer: it comes over the
// connection pinned to the peer's key.
const ReplyHeader = "Vipsmart-Reply"

// PeerReplier is a PeerReceiver that can hand back its answer of type want
// to m instead of sending it (nil: no answer yet, or sent apart).
type PeerReplier interface {
	DeliverForReply(ctx context.Context, m federation.Message, want federation.MsgType) (*federation.Message, error)
}

// peerReply delivers m and writes its answer as the response, if the
// sender asked for one and the receiver can; ok is false when it did
// nothing (the caller delivers m as usual).
func (s *Server) peerReply(w http.ResponseWriter, r *http.Request, m federation.Message) (ok bool) {
	rp, can := s.Peer.(PeerReplier)
	want := federation.MsgType(r.Header.Get(ReplyHeader))
	if !can || want == "" {
		return false
	}
	reply, err := rp.DeliverForReply(s.caller(r, m.From.Name), m, want)
	if err != nil {
		writeError(w, err)
		return true
	}
	if reply == nil {
		w.WriteHeader(http.StatusAccepted)
		return true
	}
	b, err := json.Marshal(reply)
	if err != nil {
		writeError(w, fmt.Errorf("encoding the answer to a %s message: %w", m.Type, err))
		return true
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b))) // never chunked
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write(b)
	return true
}

// SendForReply sends m as Send does, asking for its answer of type want
// in the response, and returns that answer if it came back (nil if the
// peer sends it apart, as a daemon of an earlier version does). The answer
// is decoded strictly and checked to be a want message from m.To to
// m.From of m's operation (the receiver validates and admits it as any
// message of that peer); anything else is a refusal.
func (p *PeerClient) SendForReply(ctx context.Context, m federation.Message, want federation.MsgType) (*federation.Message, error) {
	var reply *federation.Message
	err := p.sendWith(ctx, m, func(req *http.Request) { req.Header.Set(ReplyHeader, string(want)) }, func(resp *http.Response) error {
		r, err := decodeReply(resp, m, want)
		reply = r
		return err
	})
	return reply, err
}

// decodeReply reads the answer of type want to m from resp (202): nil for
// an empty body.
func decodeReply(resp *http.Response, m federation.Message, want federation.MsgType) (*federation.Message, error) {
	var body []byte
	var err error
	if n := resp.ContentLength; n >= 0 && n <= MaxPeerBody {
		body = make([]byte, n) // one allocation, not ReadAll's doublings
		_, err = io.ReadFull(resp.Body, body)
	} else {
		body, err = io.ReadAll(io.LimitReader(resp.Body, MaxPeerBody+1))
	}
	if err != nil {
		return nil, fmt.Errorf("%s (%s): reading the answer to a %s message: %w", m.To.Name, m.To.AddrPort(), m.Type, err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	if len(body) > MaxPeerBody {
		return nil, fmt.Errorf("%s (%s): the answer to a %s message is larger than %d bytes", m.To.Name, m.To.AddrPort(), m.Type, MaxPeerBody)
	}
	var r federation.Message
	if !decodeMessageFast(body, &r) { // messagefast.go: the same, faster
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil || dec.More() {
			return nil, fmt.Errorf("%s (%s): the answer to a %s message is not one federation message: %v", m.To.Name, m.To.AddrPort(), m.Type, err)
		}
	}
	if r.Type != want || r.From.Name != m.To.Name || r.To.Name != m.From.Name || r.OpID != m.OpID {
		return nil, vipsmart.Errorf(vipsmart.EINVALID, "type", "%s (%s) answered a %s message with a %s message from %q to %q of operation %q: want a %s from %s to %s of operation %q", m.To.Name, m.To.AddrPort(), m.Type, r.Type, r.From.Name, r.To.Name, r.OpID, want, m.To.Name, m.From.Name, m.OpID)
	}
	return &r, nil
}
