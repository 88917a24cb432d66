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
// answer has been sent (vipsmart.AfterAnswer), and at most holdBound;
// while they are held, whatever else the loop sends (heartbeats and their
// answers too: they carry the last decision) waits behind them, so every
// peer still gets the messages in the order the node made them (on each
// lane, peers.go), and no member learns the decision from a heartbeat
// before the answer left.
// Nothing waits on a commit message (the protocol lets one be lost: a
// member learns the decision from the next message that carries it), and
// the commit was stored before it is held, as before any send.
type heldSends struct {
	mu   sync.Mutex
	msgs []federation.Message
	on   bool // a hold runs: what the loop sends waits behind it
}

// maxHold bounds how long the commit messages of a change wait for its
// answer (a few hundred bytes: written at once).
const maxHold = 10 * time.Millisecond

// batchAnswerKey marks the request context of an apply of a batch, whose
// answer is megabytes (10,000 changes: encoded and compressed in some
// 30 ms of CPU, longer on a busy host).
type batchAnswerKey struct{}

// withBatchAnswer marks ctx as the request of a batch's apply.
func withBatchAnswer(ctx context.Context) context.Context {
	return context.WithValue(ctx, batchAnswerKey{}, true)
}

// holdBound is how long the messages held for the answer to ctx may
// wait: maxHold; for a batch's apply, a quarter of the time a member
// waits before it calls this DC unreachable beyond the interval of its
// heartbeats (interval x (misses - 1) / 4: 100 ms at the defaults), so
// that a member hears from this DC at most that much later than usual,
// far inside its window even when its own loop lags on a busy host.
func holdBound(ctx context.Context, t federation.Config) time.Duration {
	if ctx.Value(batchAnswerKey{}) == nil {
		return maxHold
	}
	hb, misses := t.HeartbeatInterval, t.HeartbeatMisses
	if hb <= 0 {
		hb = federation.DefaultHeartbeatInterval
	}
	if misses <= 0 {
		misses = federation.DefaultHeartbeatMisses
	}
	return max(maxHold, hb*time.Duration(misses-1)/4)
}

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
// bound passed, whichever comes first.
func (d *Daemon) hold(ctx context.Context, msgs []federation.Message, bound time.Duration) {
	if len(msgs) == 0 {
		return
	}
	d.held.mu.Lock()
	d.held.msgs = append(d.held.msgs, msgs...)
	d.held.on = true
	d.held.mu.Unlock()
	if !vipsmart.AfterAnswer(ctx, d.flushHeld) {
		d.flushHeld()
		return
	}
	time.AfterFunc(bound, d.flushHeld)
}

// sendAll sends msgs, behind the held messages while a hold runs.
func (d *Daemon) sendAll(msgs []federation.Message) {
	d.held.mu.Lock()
	if d.held.on {
		d.held.msgs = append(d.held.msgs, msgs...)
		d.held.mu.Unlock()
		return
	}
	d.held.mu.Unlock()
	for _, m := range msgs {
		d.send(m)
	}
}

// flushHeld sends the held messages, if any, and ends the hold. Safe from
// any goroutine.
func (d *Daemon) flushHeld() {
	d.held.mu.Lock()
	defer d.held.mu.Unlock()
	if len(d.held.msgs) > 0 {
	}
	for _, m := range d.held.msgs {
		d.send(m)
	}
	d.held.msgs, d.held.on = nil, false
}
