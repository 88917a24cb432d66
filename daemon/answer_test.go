package daemon

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/federation"
)

// recTransport records what reaches the transport.
type recTransport struct{ got chan federation.Message }

func (r recTransport) Send(_ context.Context, m federation.Message) error {
	r.got <- m
	return nil
}

func commitTo(name string, port uint16) federation.Message {
	return federation.Message{Type: federation.MsgCommit, OpID: "op-1", To: vipsmart.DC{Name: name, Address: netip.MustParseAddr("127.0.0.1"), Port: port}}
}

// TestCommitsHeldUntilAnswered: the commit messages of an operator's change
// leave once the answer was sent (Done), not before; without an answer they
// leave after maxHold; with no operator request to wait for, at once.
func TestCommitsHeldUntilAnswered(t *testing.T) {
	d := newTestDaemon(t)
	tr := recTransport{got: make(chan federation.Message, 16)}
	d.cfg.Transport = tr
	t.Cleanup(d.stopPeers)

	ctx, a := vipsmart.WithAnswered(context.Background())
	d.hold(ctx, []federation.Message{commitTo("dc-2", 1), commitTo("dc-3", 2)})
	select {
	case m := <-tr.got:
		t.Fatalf("commit to %s sent before the answer", m.To.Name)
	case <-time.After(maxHold / 2):
	}
	a.Done()
	got := map[string]bool{}
	for range 2 {
		select {
		case m := <-tr.got:
			got[m.To.Name] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("commits not sent after the answer (got %v)", got)
		}
	}
	if !got["dc-2"] || !got["dc-3"] {
		t.Fatalf("sent to %v; want dc-2 and dc-3", got)
	}
	d.held.mu.Lock()
	left := len(d.held.msgs)
	d.held.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d messages still held", left)
	}

	// No answer comes (the client went away): they leave after maxHold.
	// (A fresh daemon: the first hold's timer is still pending here.)
	d = newTestDaemon(t)
	d.cfg.Transport = tr
	t.Cleanup(d.stopPeers)
	ctx2, _ := vipsmart.WithAnswered(context.Background())
	start := time.Now()
	d.hold(ctx2, []federation.Message{commitTo("dc-2", 1)})
	select {
	case <-tr.got:
		if el := time.Since(start); el < maxHold/2 {
			t.Fatalf("sent after %v, before the answer and before maxHold", el)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("commit never sent without an answer")
	}

	// Not an operator request, or one already answered: at once.
	d.hold(context.Background(), []federation.Message{commitTo("dc-3", 2)})
	ctx3, a3 := vipsmart.WithAnswered(context.Background())
	a3.Done()
	d.hold(ctx3, []federation.Message{commitTo("dc-2", 1)})
	for range 2 {
		select {
		case <-tr.got:
		case <-time.After(maxHold / 2):
			t.Fatal("commit held with no answer to wait for")
		}
	}
}

// TestAnswerCtxOnlyForOperatorsSuccess: only a result that succeeded, of
// an operation an operator waits for, holds its commits.
func TestAnswerCtxOnlyForOperatorsSuccess(t *testing.T) {
	d := newTestDaemon(t)
	ctx := context.WithValue(context.Background(), struct{}{}, 1)
	d.answerTo["op-1"] = ctx
	if got := d.answerCtx(federation.Ready{Results: []federation.Result{{OpID: "op-1"}}}); got != ctx {
		t.Fatalf("answerCtx = %v; want the operator's", got)
	}
	if got := d.answerCtx(federation.Ready{Results: []federation.Result{{OpID: "op-2"}}}); got != nil {
		t.Fatal("answerCtx for an operation nobody waits for")
	}
	if got := d.answerCtx(federation.Ready{Results: []federation.Result{{OpID: "op-1", Err: vipsmart.Errorf(vipsmart.EBUSY, "", "busy")}}}); got != nil {
		t.Fatal("answerCtx for a failed operation")
	}
	d.cfg.Fault = &Fault{}
	if got := d.answerCtx(federation.Ready{Results: []federation.Result{{OpID: "op-1"}}}); got != nil {
		t.Fatal("answerCtx with a fault injected")
	}
}
