package daemon

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/federation"
)

// The heartbeat keeper (docs/ha.md, "A store write in flight"). The loop
// waits for every store write it makes (nothing is sent before it is
// stored), and a write to etcd while etcd elects a leader can take up to
// its request timeout (5 s): longer than the other DCs' detection window
// (600 ms at defaults). So that the other DCs keep hearing the DC
// meanwhile, the keeper, a goroutine beside the loop, watches the loop's
// ticks; when the loop has not ticked for half a heartbeat interval and
// no heartbeat went out for one interval, it
//
//   - sends the DC's heartbeats itself, once per interval, built from the
//     last record the loop stored and its last report
//     (federation.StandbyHeartbeats, as a follower node does while the DC
//     has no reachable leader): nothing it sends says more than what is
//     stored, so the rule "persist, then send" holds;
//   - takes the heartbeats (and their answers) that members send
//     while the loop has not ticked for one interval (from the key the
//     stored record pins for the sender),
//     answering 202 at once, and holds the latest of each sender until
//     the loop ticks again, when they are stepped, before the tick judges
//     reachability: this DC does not see its peers unreachable because it
//     was not listening. A message from a key the record does not pin
//     for its sender waits for the loop, which refuses it (403).
//
// Every other message, and every operator request, waits for the loop as
// before. The keeper only reads what the loop handed it (under its
// mutex): it never touches the federation node.
//
// So the keeper covers any stall of the loop, not only a store write: a
// batch of 10,000 GIPs being checked or evaluated, a loop starved of CPU.
// It starts after half an interval without a tick (the loop ticks every
// quarter of one) so that, with the heartbeat lane of each peer
// (peers.go), a stalled DC's heartbeats are at most about one interval
// apart, well inside the peers' detection window (three intervals).
type keeper struct {
	loopAt atomic.Int64 // time.Now().UnixNano() at the loop's last tick
	hb     atomic.Int64 // the heartbeat interval
	sentAt atomic.Int64 // time.Now().UnixNano() when heartbeats last went out

	mu     sync.Mutex
	record []byte            // the last federation record stored
	pins   map[string]string // the keys record pins, by member; nil: not read yet
	self   vipsmart.DC       // the DC as the loop last knew itself
	report federationReport  // the loop's last report
	held   map[string]func()
	order  []string
}

// maxHeld bounds the heartbeats held while the loop is held (one per
// sender; a federation has far fewer members).
const maxHeld = 256

// keepRecord notes a federation record the loop stored.
func (d *Daemon) keepRecord(rec []byte) {
	if rec == nil {
		return
	}
	d.keep.mu.Lock()
	d.keep.record, d.keep.pins = rec, nil
	d.keep.mu.Unlock()
}

// ticked runs on the loop at every tick: it notes the tick and the
// loop's view for the keeper, then steps the heartbeats held meanwhile.
func (d *Daemon) ticked() {
	d.keep.loopAt.Store(time.Now().UnixNano())
	d.keep.mu.Lock()
	d.keep.self, d.keep.report = d.node.Self(), d.lastReport
	held, order := d.keep.held, d.keep.order
	d.keep.held, d.keep.order = nil, nil
	d.keep.mu.Unlock()
	for _, from := range order {
		held[from]()
	}
}

// stepHeld steps, on the loop, what is held from sender from, so that a
// message stepped at once from it never overtakes one it sent earlier.
func (d *Daemon) stepHeld(from string) {
	d.keep.mu.Lock()
	if len(d.keep.held) == 0 {
		d.keep.mu.Unlock()
		return
	}
	var run []func()
	for _, typ := range heldTypes {
		k := from + " " + string(typ)
		if f, ok := d.keep.held[k]; ok {
			run = append(run, f)
			delete(d.keep.held, k)
		}
	}
	if len(run) > 0 {
		d.keep.order = slices.DeleteFunc(d.keep.order, func(k string) bool { _, ok := d.keep.held[k]; return !ok })
	}
	d.keep.mu.Unlock()
	for _, f := range run {
		f()
	}
}

var heldTypes = []federation.MsgType{federation.MsgHeartbeat, federation.MsgHeartbeatResp}

// pinned reports whether the last stored record pins key for member dc.
// The record's members are read once per stored record (it holds a
// batch of 10,000 GIPs while one is locked: megabytes), off the keeper's
// mutex.
func (d *Daemon) pinned(dc, key string) bool {
	if key == "" {
		return false
	}
	d.keep.mu.Lock()
	rec, pins := d.keep.record, d.keep.pins
	d.keep.mu.Unlock()
	if pins == nil {
		members, err := federation.RecordMembers(rec)
		pins = make(map[string]string, len(members))
		if err == nil {
			for _, m := range members {
				pins[m.Name] = m.Identity
			}
		}
		d.keep.mu.Lock()
		if sameRecord(d.keep.record, rec) {
			d.keep.pins = pins
		}
		d.keep.mu.Unlock()
	}
	id, ok := pins[dc]
	return ok && id == key
}

// sameRecord reports whether a and b are the same stored record (the
// same slice: a record is never changed in place).
func sameRecord(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// loopHeld reports whether the loop has not ticked for one heartbeat
// interval.
func (d *Daemon) loopHeld() bool {
	return d.loopHeldFor(time.Duration(d.keep.hb.Load()))
}

// loopHeldFor reports whether the loop has not ticked for dur.
func (d *Daemon) loopHeldFor(dur time.Duration) bool {
	at := d.keep.loopAt.Load()
	return at != 0 && time.Since(time.Unix(0, at)) >= dur
}

// heartbeatsSent notes that heartbeats went out (from the loop or the
// keeper).
func (d *Daemon) heartbeatsSent() { d.keep.sentAt.Store(time.Now().UnixNano()) }

// startKeeper starts the keeper's goroutine (until ctx ends); Run calls
// it.
func (d *Daemon) startKeeper(ctx context.Context) {
	hb := d.cfg.Federation.HeartbeatInterval
	if hb <= 0 {
		hb = federation.DefaultHeartbeatInterval
	}
	d.keep.hb.Store(int64(hb))
	d.keep.loopAt.Store(time.Now().UnixNano())
	go d.keepHeartbeats(ctx, hb)
}

func (d *Daemon) keepHeartbeats(ctx context.Context, hb time.Duration) {
	t := time.NewTicker(max(hb/4, time.Millisecond))
	defer t.Stop()
	var episode int64 // the loop's tick before the stall last logged
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !d.loopHeldFor(hb/2) || time.Since(time.Unix(0, d.keep.sentAt.Load())) < hb*9/10 {
			continue
		}
		d.keep.mu.Lock()
		rec, self, rep := d.keep.record, d.keep.self, d.keep.report
		d.keep.mu.Unlock()
		if self.Name == "" {
			continue
		}
		msgs, err := federation.StandbyHeartbeats(rec, self, &rep)
		if err != nil {
			d.log.Warn("heartbeats while the loop is busy", "err", err)
			continue
		}
		if at := d.keep.loopAt.Load(); at != episode {
			episode = at
			d.log.Info("the loop is busy (a store write, a large batch): heartbeats go out from the stored record meanwhile", "busy_for", time.Since(time.Unix(0, at)).Round(time.Millisecond), "to", len(msgs))
		}
		d.heartbeatsSent()
		for _, m := range msgs {
			d.send(m)
		}
	}
}

// callOrHold is call for a delivered federation message f handles,
// except that a heartbeat or its answer from a member (key is the key
// its connection presented) that the loop does not take within one
// heartbeat interval (the loop waits for the store) is held for the
// loop's next tick and accepted at once: held, not f, runs then (f may
// keep the answer for this request's response, which has gone by then).
//
// A heartbeat stepped at once first steps what is held from its sender
// (stepHeld), so that it never overtakes a message its sender sent
// earlier; a heartbeat and its answer are held apart (one of each per
// sender).
func (d *Daemon) callOrHold(ctx context.Context, m federation.Message, key string, f, held func() error) error {
	if m.Type != federation.MsgHeartbeat && m.Type != federation.MsgHeartbeatResp {
		return d.call(ctx, f)
	}
	if !d.loopHeld() {
		from := m.From.Name
		if d.tryOwn() { // owner.go: the loop is idle, step it here
			return d.runOwned(ctx, func() error { d.stepHeld(from); return f() })
		}
		done := make(chan error, 1)
		wait := time.NewTimer(time.Duration(max(d.keep.hb.Load(), int64(time.Millisecond))))
		defer wait.Stop()
		select {
		case d.reqs <- func() { d.stepHeld(from); done <- f() }:
			select {
			case err := <-done:
				return err
			case <-d.stopped:
				return errStopped
			}
		case <-wait.C:
		case <-ctx.Done():
			return ctxErr(ctx)
		case <-d.stopped:
			return errStopped
		}
	}
	if m.From.Identity != key || !d.pinned(m.From.Name, key) {
		return d.call(ctx, f) // not believed: the loop refuses it
	}
	d.keep.mu.Lock()
	defer d.keep.mu.Unlock()
	k := m.From.Name + " " + string(m.Type)
	if _, ok := d.keep.held[k]; !ok {
		if len(d.keep.order) >= maxHeld {
			return nil // dropped: heartbeats are periodic
		}
		d.keep.order = append(d.keep.order, k)
	}
	if d.keep.held == nil {
		d.keep.held = map[string]func(){}
	}
	d.keep.held[k] = func() { _ = held() }
	return nil
}
