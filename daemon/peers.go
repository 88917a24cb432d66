package daemon

import (
	"context"
	"errors"
	"time"

	"github.com/vipsmart/vipsmart/federation"
)

// peerQueue sends messages to one peer in order, on its own goroutine, so
// that a slow or dead peer never delays the loop or the other peers. When
// its buffer is full the oldest message is dropped (the protocol resends
// what matters and heartbeats are periodic). A queue that has been idle
// for peerIdle goes away with its goroutine, so that DCs that left, were
// mistyped or never existed cost nothing for long.
//
// Heartbeats and their answers go on a lane of their own to each peer
// (a second queue and goroutine), never behind the other messages: a
// lock of 10,000 GIPs takes a while to send and to be read by a loaded
// peer, and the answer to a phase request is handed to this DC's loop,
// which may be busy; meanwhile the peer must keep hearing this DC, or it
// sees it unreachable. The protocol takes messages in any order (the
// transport may lose and reorder them; heartbeats are periodic and every
// message says what it is about). The lane holds at most
// heartbeatQueueLen messages: when the peer is slow only the newest
// heartbeats wait.
type peerQueue struct {
	key    string
	ch     chan federation.Message
	cancel context.CancelFunc
}

const (
	peerQueueLen      = 64
	heartbeatQueueLen = 2
	peerIdle          = 30 * time.Second
)

// heartbeatLane reports whether m goes on its destination's heartbeat
// lane.
func heartbeatLane(m federation.Message) bool {
	return m.Type == federation.MsgHeartbeat || m.Type == federation.MsgHeartbeatResp
}

// PeerRefusal is how a Transport reports that the peer answered but
// refused the message (as opposed to not being reachable).
type PeerRefusal interface{ PeerRefused() bool }

// unreachable reports whether a send error means the peer could not be
// reached (and so should fail an operation waiting for it).
func unreachable(err error) bool {
	var r PeerRefusal
	return !(errors.As(err, &r) && r.PeerRefused())
}

// send queues m for its destination.
func (d *Daemon) send(m federation.Message) {
	key, size := m.To.Name+"@"+m.To.AddrPort().String(), peerQueueLen
	if heartbeatLane(m) {
		key, size = key+" heartbeats", heartbeatQueueLen
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	q, ok := d.peers[key]
	if !ok {
		ctx, cancel := context.WithCancel(context.Background())
		q = &peerQueue{key: key, ch: make(chan federation.Message, size), cancel: cancel}
		d.peers[key] = q
		go d.runPeer(ctx, q)
	}
	for {
		select {
		case q.ch <- m:
			return
		default:
		}
		select {
		case old := <-q.ch:
			d.log.Debug("peer queue full, dropping the oldest message", "to", old.To.Name, "type", old.Type)
		default:
		}
	}
}

func (d *Daemon) runPeer(ctx context.Context, q *peerQueue) {
	idle := time.NewTimer(peerIdle)
	defer idle.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-idle.C:
			d.mu.Lock()
			if len(q.ch) == 0 {
				delete(d.peers, q.key)
				d.mu.Unlock()
				q.cancel()
				return
			}
			d.mu.Unlock()
			idle.Reset(peerIdle)
		case m := <-q.ch:
			idle.Reset(peerIdle)
			sctx, cancel := context.WithTimeout(ctx, d.sendTimeout(m))
			start := time.Now()
			reply, err := d.transmit(sctx, m) // reply.go
			cancel()
			if err == nil && m.Type == federation.MsgHeartbeat {
				d.metrics.heartbeat(m.To.Name, time.Since(start))
			}
			if reply != nil {
				d.takeReply(ctx, m, *reply)
			}
			if err == nil || ctx.Err() != nil {
				continue
			}
			d.log.Debug("peer send failed", "to", m.To.Name, "type", m.Type, "err", err)
			if !unreachable(err) {
				d.log.Warn("peer refused a message", "to", m.To.Name, "type", m.Type, "err", err)
				continue
			}
			reason := err.Error()
			select {
			case d.reqs <- func() { d.node.ReportUndelivered(d.cfg.Now(), m, reason) }:
			case <-ctx.Done():
				return
			case <-d.stopped:
				return
			}
		}
	}
}

func (d *Daemon) stopPeers() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	for _, q := range d.peers {
		q.cancel()
	}
}
