package daemon

import (
	"context"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/federation"
)

// ReplyTransport is a Transport that can bring the answer to a request
// back in the same exchange (httpapi.PeerClient): one request per
// heartbeat and per phase answer instead of one each way. reply is nil
// when the peer sent its answer apart (a daemon of an earlier version).
type ReplyTransport interface {
	SendForReply(ctx context.Context, m federation.Message, want federation.MsgType) (reply *federation.Message, err error)
}

// replyTypes are the requests whose answer may come back in the response,
// with the type of that answer. A commit has no answer; a whole state
// (fetch-state) goes apart.
var replyTypes = map[federation.MsgType]federation.MsgType{
	federation.MsgHeartbeat: federation.MsgHeartbeatResp,
	federation.MsgInvite:    federation.MsgInviteResp,
	federation.MsgLock:      federation.MsgLockResp,
	federation.MsgPrepare:   federation.MsgPrepareResp,
	federation.MsgAbort:     federation.MsgAbortResp,
	federation.MsgProbe:     federation.MsgProbeResp,
}

// replySlot catches, in processReady, the answer to the request being
// delivered (a message of type want to its sender, of its operation)
// instead of sending it.
type replySlot struct {
	want federation.MsgType
	to   string
	op   string
	msg  *federation.Message
}

// take keeps m if it is the answer the slot waits for.
func (s *replySlot) take(m federation.Message) bool {
	if s == nil || s.msg != nil || m.Type != s.want || m.To.Name != s.to || m.OpID != s.op {
		return false
	}
	s.msg = &m
	return true
}

// DeliverForReply implements httpapi.PeerReplier: it is Deliver for a
// request whose answer of type want goes back in the HTTP response. The
// answer is handed back only after the Ready that made it was persisted
// (as any message is sent only then: a lock is durable before its
// lock-resp leaves): the loop persists it before it returns. A want that
// is not m's answer type is not waited for (m is delivered as usual).
func (d *Daemon) DeliverForReply(ctx context.Context, m federation.Message, want federation.MsgType) (*federation.Message, error) {
	if replyTypes[m.Type] != want {
		return nil, d.deliver(ctx, m, nil)
	}
	slot := &replySlot{want: want, to: m.From.Name, op: m.OpID}
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
			d.log.Warn("persisting before answering a peer failed", "err", perr)
		}
		return nil
	}
}

// transmit sends m; a request with an answer goes by SendForReply where
// the transport has it, and its answer is returned.
func (d *Daemon) transmit(ctx context.Context, m federation.Message) (*federation.Message, error) {
	rt, ok := d.cfg.Transport.(ReplyTransport)
	want := replyTypes[m.Type]
	if !ok || want == "" {
		return nil, d.cfg.Transport.Send(ctx, m)
	}
	return rt.SendForReply(ctx, m, want)
}

// takeReply delivers the answer to m that came back in its response, as
// a message of m.To authenticated by the key the connection was pinned to
// (m.To.Identity); Deliver admits it as any peer message.
func (d *Daemon) takeReply(ctx context.Context, m, reply federation.Message) {
	c := vipsmart.Caller{Via: vipsmart.ViaPeer, Name: reply.From.Name, Identity: m.To.Identity, Addr: m.To.AddrPort().String()}
	if err := d.Deliver(vipsmart.WithCaller(ctx, c), reply); err != nil {
		d.log.Debug("the answer to a peer request was not taken", "from", m.To.Name, "type", reply.Type, "err", err)
	}
}
