package daemon

import (
	"context"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/federation"
)

// ReplyTransport is a Transport that can bring a heartbeat's answer back
// in the same exchange (httpapi.PeerClient): one request per heartbeat
// instead of one each way. reply is nil when the peer sent its answer
// apart (a daemon of an earlier version).
type ReplyTransport interface {
	SendHeartbeat(ctx context.Context, m federation.Message) (reply *federation.Message, err error)
}

// replySlot catches, in processReady, the answer to the heartbeat being
// delivered (a heartbeat-resp to its sender) instead of sending it.
type replySlot struct {
	to  string
	msg *federation.Message
}

// take keeps m if it is the answer the slot waits for.
func (s *replySlot) take(m federation.Message) bool {
	if s == nil || s.msg != nil || m.Type != federation.MsgHeartbeatResp || m.To.Name != s.to {
		return false
	}
	s.msg = &m
	return true
}

// DeliverForReply implements httpapi.PeerReplier: it is Deliver for a
// heartbeat whose answer goes back in the HTTP response. The answer is
// handed back only after the Ready that made it was persisted (as any
// message is sent only then): the loop persists it before it returns.
func (d *Daemon) DeliverForReply(ctx context.Context, m federation.Message) (*federation.Message, error) {
	slot := &replySlot{to: m.From.Name}
	err := d.deliver(ctx, m, slot)
	return slot.msg, err
}

// replying wraps f, run on the loop, so that with a slot the Ready it
// leaves is processed at once and its answer kept in the slot. If that
// processing fails (the store), nothing was sent and the Ready is still
// pending: the loop's own processReady right after retries it and stops
// the daemon if the store still fails.
func (d *Daemon) replying(ctx context.Context, slot *replySlot, f func() error) func() error {
	if slot == nil || d.cfg.Fault != nil {
		return f
	}
	return func() error {
		err := f()
		if err != nil {
			return err
		}
		d.capture = slot
		defer func() { d.capture = nil }()
		if perr := d.processReady(context.WithoutCancel(ctx)); perr != nil {
			d.log.Warn("persisting before answering a heartbeat failed", "err", perr)
		}
		return nil
	}
}

// transmit sends m; a heartbeat goes by SendHeartbeat where the
// transport has it, and its answer is returned.
func (d *Daemon) transmit(ctx context.Context, m federation.Message) (*federation.Message, error) {
	rt, ok := d.cfg.Transport.(ReplyTransport)
	if !ok || m.Type != federation.MsgHeartbeat {
		return nil, d.cfg.Transport.Send(ctx, m)
	}
	return rt.SendHeartbeat(ctx, m)
}

// takeReply delivers the answer to heartbeat m that came back in its
// response, as a message of m.To authenticated by the key the connection
// was pinned to (m.To.Identity); Deliver admits it as any peer message.
func (d *Daemon) takeReply(ctx context.Context, m, reply federation.Message) {
	c := vipsmart.Caller{Via: vipsmart.ViaPeer, Name: reply.From.Name, Identity: m.To.Identity, Addr: m.To.AddrPort().String()}
	if err := d.Deliver(vipsmart.WithCaller(ctx, c), reply); err != nil {
		d.log.Debug("the answer to a heartbeat was not taken", "from", m.To.Name, "err", err)
	}
}
