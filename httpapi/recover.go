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

// RebuildPath is the peer route a DC rebuilding its lost store asks for
// the state of its federation (answered at once, unlike the one-way
// protocol messages: the asking DC runs no protocol yet).
const RebuildPath = "/v1/peer/rebuild"

// RebuildSource hands out the state of the federation to a member that
// rebuilds its lost store (daemon.Daemon does).
type RebuildSource interface {
	RebuildState(ctx context.Context, name, fedID string) (*federation.State, error)
}

// RebuildRequest is the body of POST /v1/peer/rebuild: the DC that
// rebuilds and the federation it was a member of.
type RebuildRequest struct {
	From  vipsmart.DC `json:"from"`
	FedID string      `json:"fed_id"`
}

func (s *Server) rebuild(rs RebuildSource, w http.ResponseWriter, r *http.Request) {
	var req RebuildRequest
	if st, err := decode(w, r, MaxOperatorBody, &req, `"from" and "fed_id"`); err != nil {
		writeJSONError(w, st, err)
		return
	}
	if err := req.From.Validate(); err != nil {
		writeError(w, err)
		return
	}
	if req.FedID == "" {
		writeError(w, vipsmart.Errorf(vipsmart.EINVALID, "fed_id", "fed_id is empty: name the federation to rebuild from"))
		return
	}
	st, err := rs.RebuildState(s.caller(r, req.From.Name), req.From.Name, req.FedID)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// FetchRebuildState asks member `from` for the state of federation fedID,
// for self, which rebuilds its lost store, over mutual TLS pinning
// from.Identity (the member checks self's key against its member list). A refusal comes back as the
// member's *vipsmart.Error.
func (p *PeerClient) FetchRebuildState(ctx context.Context, self, from vipsmart.DC, fedID string) (*federation.State, error) {
	b, err := json.Marshal(RebuildRequest{From: self, FedID: fedID})
	if err != nil {
		return nil, err
	}
	if from.Identity == "" {
		return nil, vipsmart.Errorf(vipsmart.EINVALID, "rebuild-identity", "no key is pinned for %s: give its identity (sha256:..., as `vipsmart status` shows on it)", from.Name)
	}
	addr := from.AddrPort().String()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+RebuildPath, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client(addr, from.Identity).Do(req)
	if err != nil {
		return nil, &vipsmart.Error{Code: vipsmart.EUNAVAILABLE, Message: fmt.Sprintf("%s (%s) cannot be reached", from.Name, from.AddrPort()), Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e := decodeError(resp)
		return nil, fmt.Errorf("%s (%s) refused to hand out the state: %w", from.Name, from.AddrPort(), e)
	}
	var st federation.State
	dec := json.NewDecoder(io.LimitReader(resp.Body, MaxPeerBody))
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("the state from %s does not decode: %w", from.Name, err)
	}
	return &st, nil
}
