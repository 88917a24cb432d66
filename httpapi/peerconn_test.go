package httpapi

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/federation"
	"github.com/vipsmart/vipsmart/identity"
)

// TestPeerConnsKept: federation messages to one DC go over one kept
// connection, one after the other (heartbeats with their answers, and
// messages answered with no body); a connection the peer closed while
// idle (its idle timeout, a restart) is not reused: the next message goes
// over a new one and is delivered; after ResetConnections (a new key of
// this DC) the next message dials again.
func TestPeerConnsKept(t *testing.T) {
	srvID, cliID := peerIdentities(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	conns := map[net.Conn]http.ConnState{}
	recv := &replier{answer: func(m federation.Message) *federation.Message {
		if m.Type != federation.MsgHeartbeat {
			return nil
		}
		return &federation.Message{Type: federation.MsgHeartbeatResp, From: m.To, To: m.From, FedID: m.FedID, Epoch: m.Epoch, SenderFed: m.FedID, SenderEpoch: m.Epoch, Status: vipsmart.StatusMember}
	}}
	srv := &http.Server{Handler: PeerHandler(recv, identity.PeerFingerprint, nil), ConnState: func(c net.Conn, s http.ConnState) {
		mu.Lock()
		conns[c] = s
		mu.Unlock()
	}}
	go srv.Serve(identity.NewListener(l, srvID.PeerServerConfig(nil), nil))
	t.Cleanup(func() { srv.Close() })
	dialed := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(conns)
	}
	closed := func() (n int) {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range conns {
			if s == http.StateClosed {
				n++
			}
		}
		return n
	}
	ap := netip.MustParseAddrPort(l.Addr().String())
	to := vipsmart.DC{Name: "dc-2", Address: ap.Addr(), Port: ap.Port(), Identity: srvID.Fingerprint()}
	from := vipsmart.DC{Name: "dc-1", Address: netip.MustParseAddr("127.0.0.1"), Port: 1, Identity: cliID.Fingerprint()}
	hb := federation.Message{Type: federation.MsgHeartbeat, From: from, To: to, FedID: "f-1", Epoch: 7, SenderFed: "f-1", SenderEpoch: 7, Status: vipsmart.StatusMember}
	pc := NewPeerClient(cliID.PeerClientConfig)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	send := func(what string) {
		t.Helper()
		r, err := pc.SendForReply(ctx, hb, federation.MsgHeartbeatResp)
		if err != nil || r == nil || r.Type != federation.MsgHeartbeatResp {
			t.Fatalf("%s: heartbeat answered with %v, %v; want its heartbeat-resp", what, r, err)
		}
		if err := pc.Send(ctx, hb); err != nil {
			t.Fatalf("%s: heartbeat without an answer asked: %v", what, err)
		}
	}
	for i := range 5 {
		send("message " + string(rune('1'+i)))
	}
	if n := dialed(); n != 1 {
		t.Fatalf("10 messages one after the other took %d connections; want 1, kept", n)
	}
	// The server drops its connections (as at its idle timeout): the
	// kept one is found closed and the message goes over a new one.
	srv.SetKeepAlivesEnabled(false) // closes idle connections
	for closed() == 0 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	srv.SetKeepAlivesEnabled(true)
	time.Sleep(20 * time.Millisecond) // the close reaches this end
	send("after the server closed the idle connection")
	if n := dialed(); n != 2 {
		t.Fatalf("after the server closed the kept connection: %d connections; want 2", n)
	}
	pc.ResetConnections()
	send("after ResetConnections")
	if n := dialed(); n != 3 {
		t.Fatalf("after ResetConnections: %d connections; want 3", n)
	}
	if got := len(recv.callers()); got != 14 {
		t.Fatalf("the receiver got %d messages; want 14", got)
	}
}
