package daemon

import (
	"context"

	"github.com/vipsmart/vipsmart/federation"
)

// peerQueue sends messages to one peer in order, on its own goroutine, so
// that a slow or dead peer never delays the loop or the other peers. When
// its buffer is full, new messages are dropped: the protocol resends what
// matters.
type peerQueue struct {
	ch     chan federation.Message
	cancel context.CancelFunc
}

const peerQueueLen = 1024

// send queues m for its destination.
func (d *Daemon) send(m federation.Message) {
	key := m.To.Name + "@" + m.To.AddrPort().String()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	q, ok := d.peers[key]
	if !ok {
		ctx, cancel := context.WithCancel(context.Background())
		q = &peerQueue{ch: make(chan federation.Message, peerQueueLen), cancel: cancel}
		d.peers[key] = q
		go d.runPeer(ctx, q)
	}
	select {
	case q.ch <- m:
	default:
		d.log.Warn("peer queue full, dropping message", "to", m.To.Name, "type", m.Type)
	}
}

func (d *Daemon) runPeer(ctx context.Context, q *peerQueue) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-q.ch:
			sctx, cancel := context.WithTimeout(ctx, d.cfg.SendTimeout)
			err := d.cfg.Transport.Send(sctx, m)
			cancel()
			if err != nil && ctx.Err() == nil {
				d.log.Debug("peer send failed", "to", m.To.Name, "type", m.Type, "err", err)
				to, reason := m.To.Name, err.Error()
				select {
				case d.reqs <- func() { d.node.ReportUnreachable(d.cfg.Now(), to, reason) }:
				case <-ctx.Done():
					return
				}
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
