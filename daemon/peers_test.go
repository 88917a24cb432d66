package daemon

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/federation"
)

// stuckTransport holds every message but heartbeats and their answers
// until release is closed, and reports what it delivered.
type stuckTransport struct {
	release chan struct{}
	sent    chan federation.MsgType
}

func (s stuckTransport) Send(ctx context.Context, m federation.Message) error {
	if !heartbeatLane(m) {
		select {
		case <-s.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.sent <- m.Type
	return nil
}

// TestHeartbeatsDoNotWaitBehindOtherMessages: while a message to a peer
// is still being sent (a batch lock to a loaded peer), the heartbeats and
// heartbeat answers to that peer go out on their own lane; the other
// messages still go out in order once the first is through.
func TestHeartbeatsDoNotWaitBehindOtherMessages(t *testing.T) {
	d := newTestDaemon(t)
	tr := stuckTransport{release: make(chan struct{}), sent: make(chan federation.MsgType, 16)}
	d.cfg.Transport = tr
	t.Cleanup(d.stopPeers)
	peer := vipsmart.DC{Name: "dc-2", Address: netip.MustParseAddr("127.0.0.2"), Port: 9610, Identity: "sha256:ab"}
	msg := func(typ federation.MsgType) federation.Message {
		return federation.Message{Type: typ, From: d.cfg.Self, To: peer, OpID: "dc-1-1"}
	}
	d.send(msg(federation.MsgLock))
	d.send(msg(federation.MsgCommit))
	d.send(msg(federation.MsgHeartbeat))
	d.send(msg(federation.MsgHeartbeatResp))
	for _, want := range []federation.MsgType{federation.MsgHeartbeat, federation.MsgHeartbeatResp} {
		select {
		case got := <-tr.sent:
			if got != want {
				t.Fatalf("sent %s; want %s first (the lock is still on its way)", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s not sent while a lock to the same peer was on its way", want)
		}
	}
	close(tr.release)
	for _, want := range []federation.MsgType{federation.MsgLock, federation.MsgCommit} {
		select {
		case got := <-tr.sent:
			if got != want {
				t.Fatalf("sent %s; want %s (the other messages keep their order)", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s not sent", want)
		}
	}
}
