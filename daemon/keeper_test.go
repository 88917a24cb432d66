package daemon

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/federation"
)

// TestHeldLoopTakesHeartbeatsOnly: while the loop has not ticked for a
// heartbeat interval (here: it does not run at all), a heartbeat or its
// answer is accepted at once and held, the latest of each per sender,
// until the loop's next tick steps it; any other message still waits for
// the loop.
func TestHeldLoopTakesHeartbeatsOnly(t *testing.T) {
	d := newTestDaemon(t)
	d.keep.hb.Store(int64(200 * time.Millisecond))
	d.keep.loopAt.Store(time.Now().Add(-time.Second).UnixNano()) // the loop last ticked a second ago
	key := "sha256:" + strings.Repeat("ab", 32)
	peer := vipsmart.DC{Name: "dc-2", Address: netip.MustParseAddr("127.0.0.2"), Port: 9610, Identity: key}
	// The stored record pins dc-2's key (its encoding: federation's).
	d.keepRecord([]byte(`{"version":1,"self":{"name":"dc-1"},"status":"member","fed_id":"f-1","epoch":2,"members":[{"name":"dc-1","address":"127.0.0.1","port":9610},{"name":"dc-2","address":"127.0.0.2","port":9610,"identity":"` + key + `"}]}`))
	ran := map[string]int{}
	for i, typ := range []federation.MsgType{federation.MsgHeartbeat, federation.MsgHeartbeatResp, federation.MsgHeartbeat} {
		m := federation.Message{Type: typ, From: peer, To: d.cfg.Self}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		start := time.Now()
		err := d.callOrHold(ctx, m, key, func() error { ran[string(typ)] = i; return nil }, func() error { ran[string(typ)] = i; return nil })
		cancel()
		if err != nil || time.Since(start) > 100*time.Millisecond {
			t.Fatalf("%s while the loop is held: %v after %s; want accepted at once", typ, err, time.Since(start))
		}
	}
	if len(ran) != 0 {
		t.Fatalf("held messages ran before the loop ticked: %v", ran)
	}
	lock := federation.Message{Type: federation.MsgLock, From: peer, To: d.cfg.Self, OpID: "dc-2-1"}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	err := d.callOrHold(ctx, lock, key, func() error { t.Error("a lock ran without the loop"); return nil }, nil)
	cancel()
	if vipsmart.ErrorCodeOf(err) != vipsmart.ETIMEOUT {
		t.Fatalf("a lock while the loop is held: %v; want it to wait for the loop (and time out here)", err)
	}
	// A heartbeat from a key the record does not pin for its sender is
	// not taken: it waits for the loop, which refuses it.
	stranger := federation.Message{Type: federation.MsgHeartbeat, From: peer, To: d.cfg.Self}
	stranger.From.Identity = "sha256:" + strings.Repeat("cd", 32)
	for _, k := range []string{stranger.From.Identity, ""} {
		ctx, cancel = context.WithTimeout(context.Background(), 400*time.Millisecond)
		err = d.callOrHold(ctx, stranger, k, func() error { t.Error("a stranger's heartbeat ran without the loop"); return nil }, nil)
		cancel()
		if vipsmart.ErrorCodeOf(err) != vipsmart.ETIMEOUT {
			t.Fatalf("a heartbeat from key %q while the loop is held: %v; want it to wait for the loop", k, err)
		}
	}
	d.ticked() // the loop is back
	if len(ran) != 2 || ran[string(federation.MsgHeartbeat)] != 2 || ran[string(federation.MsgHeartbeatResp)] != 1 {
		t.Fatalf("stepped at the tick: %v; want only the latest heartbeat of dc-2 (the third) and its answer", ran)
	}
	if d.loopHeld() {
		t.Fatal("the loop still counts as held right after a tick")
	}
	ran = map[string]int{}
	d.ticked()
	if len(ran) != 0 {
		t.Fatalf("a held message ran twice: %v", ran)
	}
}

// sentTransport reports the type and destination of each message sent.
type sentTransport chan string

func (s sentTransport) Send(_ context.Context, m federation.Message) error {
	s <- string(m.Type) + " " + m.To.Name
	return nil
}

// TestKeeperSendsAfterHalfAnInterval: the keeper sends the stored
// record's heartbeats once the loop has not ticked for half an interval
// and no heartbeat went out for one, and not while heartbeats go out.
func TestKeeperSendsAfterHalfAnInterval(t *testing.T) {
	d := newTestDaemon(t)
	tr := make(sentTransport, 64)
	d.cfg.Transport = tr
	t.Cleanup(d.stopPeers)
	key := "sha256:" + strings.Repeat("ab", 32)
	d.keepRecord([]byte(`{"version":1,"self":{"name":"dc-1"},"status":"member","fed_id":"f-1","epoch":2,"members":[{"name":"dc-1","address":"127.0.0.1","port":9610},{"name":"dc-2","address":"127.0.0.2","port":9610,"identity":"` + key + `"}]}`))
	d.keep.self = d.cfg.Self
	hb := 200 * time.Millisecond
	d.keep.hb.Store(int64(hb))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sentRecently := true
	var mu sync.Mutex
	// The loop is stalled for 0.6 of an interval, again and again: held
	// for half an interval, never for a whole one.
	go func() {
		for ctx.Err() == nil {
			now := time.Now()
			d.keep.loopAt.Store(now.Add(-hb * 6 / 10).UnixNano())
			mu.Lock()
			if sentRecently {
				d.keep.sentAt.Store(now.UnixNano())
			}
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	go d.keepHeartbeats(ctx, hb)
	select {
	case m := <-tr:
		t.Fatalf("the keeper sent %q while the loop's heartbeats went out", m)
	case <-time.After(3 * hb):
	}
	mu.Lock()
	sentRecently = false
	d.keep.sentAt.Store(time.Now().Add(-2 * hb).UnixNano())
	mu.Unlock()
	select {
	case m := <-tr:
		if m != "heartbeat dc-2" {
			t.Fatalf("the keeper sent %q; want a heartbeat to dc-2", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the keeper sent nothing while the loop was held for half an interval and no heartbeat went out")
	}
}

// TestHeldMessagesAreNotOvertaken: an answer to a heartbeat held while
// the loop was held is stepped before a heartbeat from the same member
// that the loop, back, steps at once. The members' keys follow the stored
// record.
func TestHeldMessagesAreNotOvertaken(t *testing.T) {
	d := newTestDaemon(t)
	d.keep.hb.Store(int64(200 * time.Millisecond))
	d.keep.loopAt.Store(time.Now().Add(-time.Second).UnixNano()) // held
	key := "sha256:" + strings.Repeat("ab", 32)
	rec := func(k string) []byte {
		return []byte(`{"version":1,"self":{"name":"dc-1"},"status":"member","fed_id":"f-1","epoch":2,"members":[{"name":"dc-1","address":"127.0.0.1","port":9610},{"name":"dc-2","address":"127.0.0.2","port":9610,"identity":"` + k + `"}]}`)
	}
	d.keepRecord(rec(key))
	peer := vipsmart.DC{Name: "dc-2", Address: netip.MustParseAddr("127.0.0.2"), Port: 9610, Identity: key}
	var ran []string
	step := func(what string) func() error { return func() error { ran = append(ran, what); return nil } }
	ctx := context.Background()
	resp := federation.Message{Type: federation.MsgHeartbeatResp, From: peer, To: d.cfg.Self}
	if err := d.callOrHold(ctx, resp, key, step("resp"), step("resp")); err != nil {
		t.Fatal(err)
	}
	if len(ran) != 0 {
		t.Fatalf("the answer was stepped before the tick: %v", ran)
	}
	d.keep.loopAt.Store(time.Now().UnixNano()) // the loop is back, before its tick
	loop := make(chan struct{})
	go func() { defer close(loop); (<-d.reqs)() }()
	hb := federation.Message{Type: federation.MsgHeartbeat, From: peer, To: d.cfg.Self}
	if err := d.callOrHold(ctx, hb, key, step("heartbeat"), step("heartbeat")); err != nil {
		t.Fatal(err)
	}
	<-loop
	if strings.Join(ran, ",") != "resp,heartbeat" {
		t.Fatalf("stepped %v; want the held answer, then the heartbeat", ran)
	}
	d.ticked()
	if len(ran) != 2 {
		t.Fatalf("the held answer ran twice: %v", ran)
	}
	// A new record that pins another key for dc-2: the old key's answers
	// are no longer held but left to the loop (which refuses them).
	d.keepRecord(rec("sha256:" + strings.Repeat("cd", 32)))
	d.keep.loopAt.Store(time.Now().Add(-time.Second).UnixNano())
	ctx2, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := d.callOrHold(ctx2, resp, key, step("resp"), step("resp")); vipsmart.ErrorCodeOf(err) != vipsmart.ETIMEOUT {
		t.Fatalf("an answer from a key the new record does not pin: %v; want it to wait for the loop", err)
	}
}
