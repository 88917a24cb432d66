package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/federation"
)

// A heartbeat's answer rides back in the HTTP response of the heartbeat
// itself, instead of as a request of its own the other way: a sender that
// can take it asks with ReplyHeader, and a receiver that implements
// PeerReplier answers 202 with the heartbeat-resp message as the body.
// That halves the requests between members at rest (each heartbeat was
// two requests, each a TLS record each way and several goroutine
// wake-ups on both sides). Either side of another version falls back to
// the separate request: a receiver that does not know the header answers
// 202 with no body and sends its answer as before, and a sender that does
// not ask gets it as before. The answer is authenticated like any message
// of that peer: it comes over the connection pinned to the peer's key.
const ReplyHeader = "Vipsmart-Reply"

// replyHeartbeat is ReplyHeader's value: answer a heartbeat in the
// response.
const replyHeartbeat = "heartbeat-resp"

// PeerReplier is a PeerReceiver that can hand back its answer to a
// heartbeat instead of sending it (nil: no answer, or sent apart).
type PeerReplier interface {
	DeliverForReply(ctx context.Context, m federation.Message) (*federation.Message, error)
}

// peerReply delivers m and writes its answer as the response, if m is a
// heartbeat whose sender asked for it and the receiver can; ok is false
// when it did nothing (the caller delivers m as usual).
func (s *Server) peerReply(w http.ResponseWriter, r *http.Request, m federation.Message) (ok bool) {
	rp, can := s.Peer.(PeerReplier)
	if !can || m.Type != federation.MsgHeartbeat || r.Header.Get(ReplyHeader) != replyHeartbeat {
		return false
	}
	reply, err := rp.DeliverForReply(s.caller(r, m.From.Name), m)
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
		writeError(w, fmt.Errorf("encoding the answer to a heartbeat: %w", err))
		return true
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write(b)
	return true
}

// SendHeartbeat sends the heartbeat m as Send does and returns the
// peer's answer if it came back in the response (nil if the peer sends
// it apart, as a daemon of an earlier version does). The answer is
// decoded strictly and checked to be a heartbeat-resp from m.To to m.From
// (the receiver validates and admits it as any message of that peer).
func (p *PeerClient) SendHeartbeat(ctx context.Context, m federation.Message) (*federation.Message, error) {
	var reply *federation.Message
	err := p.sendWith(ctx, m, func(req *http.Request) { req.Header.Set(ReplyHeader, replyHeartbeat) }, func(resp *http.Response) error {
		r, err := decodeReply(resp, m)
		reply = r
		return err
	})
	return reply, err
}

// decodeReply reads the answer to heartbeat m from resp (202): nil for an
// empty body.
func decodeReply(resp *http.Response, m federation.Message) (*federation.Message, error) {
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxPeerBody+1))
	if err != nil {
		return nil, fmt.Errorf("%s (%s): reading the answer to a heartbeat: %w", m.To.Name, m.To.AddrPort(), err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	if len(body) > MaxPeerBody {
		return nil, fmt.Errorf("%s (%s): the answer to a heartbeat is larger than %d bytes", m.To.Name, m.To.AddrPort(), MaxPeerBody)
	}
	var r federation.Message
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil || dec.More() {
		return nil, fmt.Errorf("%s (%s): the answer to a heartbeat is not one federation message: %v", m.To.Name, m.To.AddrPort(), err)
	}
	if r.Type != federation.MsgHeartbeatResp || r.From.Name != m.To.Name || r.To.Name != m.From.Name {
		return nil, vipsmart.Errorf(vipsmart.EINVALID, "type", "%s (%s) answered a heartbeat with a %s message from %q to %q: want a %s from %s to %s", m.To.Name, m.To.AddrPort(), r.Type, r.From.Name, r.To.Name, federation.MsgHeartbeatResp, m.To.Name, m.From.Name)
	}
	return &r, nil
}
