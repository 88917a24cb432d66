package daemon

import (
	"context"
	"sync"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/federation"
)

// The answer before the commit messages. Once the coordinator stored the
// commit of an operator's change, the change is done: the operator's
// answer (a loop call for the result's details, then the HTTP response)
// and the commit messages to the members are ready at the same moment.
// Sent at once, the commit messages set every member to work (decode,
// store, log) just as the answer is written, and on a host shared by
// several DCs the answer waits for the CPU behind them. So the commit
// messages of a change asked over the operator API are held until the
// answer has been sent (vipsmart.AfterAnswer), and at most maxHold; any
// message the loop sends meanwhile goes after them (flushHeld first), so
// every peer still gets the messages in the order the node made them.
// Nothing waits on a commit message (the protocol lets one be lost: a
// member learns the decision from the next message that carries it), and
// the commit was stored before it is held, as before any send.
type heldSends struct {
	mu   sync.Mutex
	msgs []federation.Message
}

// maxHold bounds how long commit messages wait for the answer.
const maxHold = 10 * time.Millisecond

// answerCtx returns the request context of an operator waiting for a
// result of rd that succeeded, or nil.
func (d *Daemon) answerCtx(rd federation.Ready) context.Context {
	if d.cfg.Fault != nil {
		return nil
	}
	for _, r := range rd.Results {
		if ctx := d.answerTo[r.OpID]; ctx != nil && r.Err == nil {
			return ctx
		}
	}
	return nil
}

// hold keeps msgs until the answer to the request of ctx was sent, or
// maxHold passed, whichever comes first.
func (d *Daemon) hold(ctx context.Context, msgs []federation.Message) {
	if len(msgs) == 0 {
		return
	}
	d.held.mu.Lock()
	d.held.msgs = append(d.held.msgs, msgs...)
	d.held.mu.Unlock()
	if !vipsmart.AfterAnswer(ctx, d.flushHeld) {
		d.flushHeld()
		return
	}
	time.AfterFunc(maxHold, d.flushHeld)
}

// flushHeld sends the held messages, if any. Safe from any goroutine.
func (d *Daemon) flushHeld() {
	d.held.mu.Lock()
	defer d.held.mu.Unlock()
	for _, m := range d.held.msgs {
		d.send(m)
	}
	d.held.msgs = nil
}
