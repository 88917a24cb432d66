package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/federation"
	"github.com/vipsmart/vipsmart/identity"
)

// replier answers a heartbeat with answer(m) in the response and records
// who the transport said sent it.
type replier struct {
	answer func(m federation.Message) *federation.Message
	mu     sync.Mutex
	got    []vipsmart.Caller
}

func (r *replier) callers() []vipsmart.Caller {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]vipsmart.Caller(nil), r.got...)
}

func (r *replier) Deliver(ctx context.Context, m federation.Message) error {
	c, _ := vipsmart.CallerFrom(ctx)
	r.mu.Lock()
	r.got = append(r.got, c)
	r.mu.Unlock()
	return nil
}

func (r *replier) DeliverForReply(ctx context.Context, m federation.Message, want federation.MsgType) (*federation.Message, error) {
	if err := r.Deliver(ctx, m); err != nil {
		return nil, err
	}
	return r.answer(m), nil
}

// TestHeartbeatAnswerInResponse: a heartbeat sent with SendForReply to
// a PeerReplier comes back with its answer in the response, delivered as
// from the pinned key; a receiver without PeerReplier (an earlier
// version) answers as before, with no body; an answer that is not the
// heartbeat's (wrong type or sender) is refused, as a refusal (the peer
// was reached), and Send of any message carries no reply request.
func TestHeartbeatAnswerInResponse(t *testing.T) {
	srvID, cliID := peerIdentities(t)
	serve := func(recv PeerReceiver) vipsmart.DC {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: PeerHandler(recv, identity.PeerFingerprint, nil)}
		go srv.Serve(identity.NewListener(l, srvID.PeerServerConfig(nil), nil))
		t.Cleanup(func() { srv.Close() })
		ap := netip.MustParseAddrPort(l.Addr().String())
		return vipsmart.DC{Name: "dc-2", Address: ap.Addr(), Port: ap.Port(), Identity: srvID.Fingerprint()}
	}
	from := vipsmart.DC{Name: "dc-1", Address: netip.MustParseAddr("127.0.0.1"), Port: 1, Identity: cliID.Fingerprint()}
	hb := func(to vipsmart.DC) federation.Message {
		return federation.Message{Type: federation.MsgHeartbeat, From: from, To: to, FedID: "f-1", Epoch: 7, SenderFed: "f-1", SenderEpoch: 7, Status: vipsmart.StatusMember}
	}
	ctx := context.Background()
	pc := NewPeerClient(cliID.PeerClientConfig)

	good := &replier{answer: func(m federation.Message) *federation.Message {
		return &federation.Message{Type: federation.MsgHeartbeatResp, From: m.To, To: m.From, FedID: "f-1", Epoch: 7, SenderFed: "f-1", SenderEpoch: 7, Status: vipsmart.StatusMember}
	}}
	to := serve(good)
	r, err := pc.SendForReply(ctx, hb(to), federation.MsgHeartbeatResp)
	if err != nil || r == nil || r.Type != federation.MsgHeartbeatResp || r.From.Name != "dc-2" || r.SenderEpoch != 7 {
		t.Fatalf("SendForReply = %+v, %v; want the heartbeat-resp of dc-2", r, err)
	}
	if got := good.callers(); len(got) != 1 || got[0].Identity != cliID.Fingerprint() || got[0].Via != vipsmart.ViaPeer {
		t.Fatalf("receiver saw callers %+v", got)
	}
	// Send (any message, heartbeats of a peer that cannot reply too)
	// asks for no reply: the receiver's Deliver takes it.
	if err := pc.Send(ctx, hb(to)); err != nil {
		t.Fatal(err)
	}

	old := serve(nopReceiver{}) // no PeerReplier: an earlier version
	if r, err := pc.SendForReply(ctx, hb(old), federation.MsgHeartbeatResp); err != nil || r != nil {
		t.Fatalf("SendForReply to a receiver without replies = %+v, %v; want nil, nil", r, err)
	}

	for name, bad := range map[string]func(m federation.Message) *federation.Message{
		"wrong type": func(m federation.Message) *federation.Message {
			return &federation.Message{Type: federation.MsgCommit, From: m.To, To: m.From}
		},
		"wrong sender": func(m federation.Message) *federation.Message {
			return &federation.Message{Type: federation.MsgHeartbeatResp, From: from, To: m.From}
		},
		"wrong op": func(m federation.Message) *federation.Message {
			return &federation.Message{Type: federation.MsgHeartbeatResp, From: m.To, To: m.From, OpID: "dc-2-9"}
		},
	} {
		r, err := pc.SendForReply(ctx, hb(serve(&replier{answer: bad})), federation.MsgHeartbeatResp)
		if r != nil || err == nil || !isRefusal(err) {
			t.Errorf("%s: SendForReply = %+v, %v; want a refusal and no answer", name, r, err)
		}
	}
}

// TestReplyHasContentLength: an answer riding back in the response is
// sent with its length (not chunked, whatever its size: net/http chunks
// a body of more than 2 KiB written without one), and read back whole.
func TestReplyHasContentLength(t *testing.T) {
	big := strings.Repeat("x", 8000)
	recv := &replier{answer: func(m federation.Message) *federation.Message {
		return &federation.Message{Type: federation.MsgHeartbeatResp, From: m.To, To: m.From, Reason: big}
	}}
	srv := httptest.NewServer((&Server{Peer: recv}).Peers(nil))
	defer srv.Close()
	m := federation.Message{Type: federation.MsgHeartbeat, From: vipsmart.DC{Name: "dc-1"}, To: vipsmart.DC{Name: "dc-2"}}
	body, _ := json.Marshal(m)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+PeerPath, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(ReplyHeader, string(federation.MsgHeartbeatResp))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || resp.ContentLength <= int64(len(big)) || len(resp.TransferEncoding) != 0 {
		t.Fatalf("answer: status %d, Content-Length %d, Transfer-Encoding %v; want 202 with its length", resp.StatusCode, resp.ContentLength, resp.TransferEncoding)
	}
	r, err := decodeReply(resp, m, federation.MsgHeartbeatResp)
	if err != nil || r == nil || r.Reason != big {
		t.Fatalf("decodeReply = %v, %v", r != nil, err)
	}
}

// peerIdentities makes the keys of two DCs for a peer test: dc-2 (the
// server) and dc-1 (the client).
func peerIdentities(t *testing.T) (srv, cli *identity.Identity) {
	t.Helper()
	srv, err := identity.Load(identity.Options{Dir: t.TempDir(), Name: "dc-2"})
	if err != nil {
		t.Fatal(err)
	}
	cli, err = identity.Load(identity.Options{Dir: t.TempDir(), Name: "dc-1"})
	if err != nil {
		t.Fatal(err)
	}
	return srv, cli
}
