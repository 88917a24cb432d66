package federation

import (
	"slices"
	"strings"
	"time"

	"github.com/vipsmart/vipsmart"
)

// Verdict is what Admit decides about a message from a peer.
type Verdict int

// The verdicts of Admit.
const (
	// Refuse: the message is not believed; it changes nothing.
	Refuse Verdict = iota
	// Accept: Step it.
	Accept
	// NeedsJoinToken: an invite. Step it only if its join token
	// (Message.Token) was made on this DC for its key, is unused and has
	// not expired; else RefuseInvite. The node cannot check the token:
	// the daemon keeps the tokens.
	NeedsJoinToken
	// AnswerOnly: a heartbeat or a state request from a DC outside the
	// federation that says it is (or was) in it, e.g. a removed DC that
	// came back. Answer it (the answer is what fences it out) and change
	// nothing.
	AnswerOnly
)

func (v Verdict) String() string {
	switch v {
	case Accept:
		return "accept"
	case NeedsJoinToken:
		return "needs-join-token"
	case AnswerOnly:
		return "answer-only"
	}
	return "refuse"
}

// Admit decides whether m may be stepped, given key: the fingerprint of
// the key the sender's connection presented (authenticated by the
// transport). The rules (docs/security.md):
//
//   - m.From.Identity must be key: a DC speaks only with its own key;
//   - a DC this node knows (a committed member, the coordinator of its
//     lock, its own candidate, a candidate its forced removal probes, a
//     member named in the invite it accepted)
//     must present the key pinned for it; during a key rotation of DC X
//     that this node has locked for, or doubts, X's new key is pinned too;
//   - an invite always needs a join token (NeedsJoinToken);
//   - a DC it does not know may only ask for a heartbeat answer or the
//     member list, and only if it names this DC's federation, or probe it
//     about changes in doubt (AnswerOnly); anything else is refused.
//
// Admit changes nothing; the error of a refusal says why.
func (n *Node) Admit(m Message, key string) (Verdict, error) {
	if err := m.Validate(); err != nil {
		return Refuse, err
	}
	from := m.From.Name
	if key == "" {
		return Refuse, vipsmart.Errorf(vipsmart.EFORBIDDEN, "", "%s presented no key", from)
	}
	if m.From.Identity != key {
		return Refuse, vipsmart.Errorf(vipsmart.EFORBIDDEN, "", "the message says it is from %s with key %s, but the connection presented key %s", from, vipsmart.ShortIdentity(m.From.Identity), vipsmart.ShortIdentity(key))
	}
	if m.To.Name != n.h.Self.Name && m.Type != MsgInvite {
		return Refuse, vipsmart.Errorf(vipsmart.EFORBIDDEN, "", "the message is for %s, not %s", m.To.Name, n.h.Self.Name)
	}
	if o := n.op; o != nil && o.cand != nil && o.cand.Identity == key && (m.Type == MsgInviteResp || m.Type == MsgPrepareResp) {
		return Accept, nil // the candidate answers (maybe under its real name)
	}
	keys, known := n.keysOf(from)
	if known && !slices.Contains(keys, key) {
		pinned := "no key"
		if len(keys) > 0 {
			short := make([]string, len(keys))
			for i, k := range keys {
				short[i] = vipsmart.ShortIdentity(k)
			}
			pinned = "key " + strings.Join(short, " or ")
		}
		return Refuse, vipsmart.Errorf(vipsmart.EFORBIDDEN, "", "%s is pinned to %s, but the connection presented key %s", from, pinned, vipsmart.ShortIdentity(key))
	}
	if m.Type == MsgInvite {
		return NeedsJoinToken, nil
	}
	if known {
		return Accept, nil
	}
	if (m.Type == MsgHeartbeat || m.Type == MsgFetchState) && n.knowsFed(m.SenderFed) {
		return AnswerOnly, nil
	}
	if m.Type == MsgProbe {
		// A forced removal asks a candidate that no longer knows its
		// federation (it kept no invite of it): it holds nothing of it,
		// and says so (see Answer).
		return AnswerOnly, nil
	}
	fed := "this DC is in no federation"
	if n.h.memberish() {
		fed = "it is not a member of federation " + n.h.FedID
	}
	return Refuse, vipsmart.Errorf(vipsmart.EFORBIDDEN, "", "%s is unknown to %s (%s): a DC joins only by dc add with a join token", from, n.h.Self.Name, fed)
}

// keysOf returns the keys pinned for the DC named name, and whether this
// node knows a DC of that name at all.
func (n *Node) keysOf(name string) (keys []string, known bool) {
	add := func(d vipsmart.DC) {
		if d.Name != name {
			return
		}
		known = true
		if d.Identity != "" && !slices.Contains(keys, d.Identity) {
			keys = append(keys, d.Identity)
		}
	}
	for _, d := range n.h.Members {
		add(d)
	}
	if l := n.h.Lock; l != nil {
		add(l.Coordinator)
		for _, d := range l.Members {
			add(d)
		}
		if l.Change.Kind == RotateIdentity && l.Change.DC != nil {
			add(*l.Change.DC)
		}
	}
	if iv := n.h.Invite; iv != nil && !n.h.memberish() {
		for _, d := range iv.Members {
			add(d)
		}
	}
	for _, d := range n.h.Doubts {
		if d.Change.Kind == RotateIdentity && d.Change.DC != nil {
			add(*d.Change.DC)
		}
	}
	if o := n.op; o != nil && o.cand != nil {
		add(*o.cand)
	}
	if o := n.op; o != nil {
		for _, t := range o.probes {
			add(t.dc) // a candidate a forced removal probes answers
		}
	}
	return keys, known
}

// knowsFed reports whether fed is this DC's federation, or one it was in.
func (n *Node) knowsFed(fed string) bool {
	if fed == "" {
		return false
	}
	if fed == n.h.FedID || (n.h.Last != nil && n.h.Last.FedID == fed) || (n.h.Founding != nil && n.h.Founding.FedID == fed) {
		return true
	}
	return slices.ContainsFunc(n.h.Tombs, func(d Decision) bool { return d.FedID == fed })
}

// Answer answers a message Admit let through as AnswerOnly, changing
// nothing (but for a probe, which can only make this DC renounce joining
// through the changes it names): a heartbeat gets this DC's last decision for the sender's
// federation (which fences out a removed DC that is still at its parent
// epoch); a state request gets the member list without the GIPs (a DC
// not on it turns standalone).
func (n *Node) Answer(now time.Time, m Message) {
	switch m.Type {
	case MsgHeartbeat:
		r := n.reply(MsgHeartbeatResp, m)
		r.Last, r.Founding = n.lastFor(m.SenderFed), n.h.Founding
		n.send(r)
	case MsgFetchState:
		r := n.reply(MsgState, m)
		r.Last, r.Founding = n.lastFor(m.SenderFed), n.h.Founding
		if n.h.memberish() && m.SenderFed == n.h.FedID {
			r.State = &State{FedID: n.h.FedID, Epoch: n.h.Epoch, Members: cloneDCs(n.h.Members), GIPs: []vipsmart.GIP{}, Last: n.h.Last, Founding: n.h.Founding}
		}
		n.send(r)
	case MsgProbe:
		// The sender is unknown, so this DC holds no invite of the
		// sender's federation (the invite would pin the sender's key) and
		// no state of it that lists the sender: it holds none of the
		// changes asked about, and renounces joining through them, as it
		// does for a known sender (onProbe). The probe changes nothing
		// else.
		for _, d := range m.Doubts {
			if n.h.memberish() && n.h.FedID == d.FedID {
				n.refuse(m, MsgProbeResp, vipsmart.ESTATE, "is a member of federation %s, which does not list %s", d.FedID, m.From.Name)
				return
			}
		}
		n.onProbe(now, m)
	}
}

// RefuseInvite answers invite m with a refusal (its join token was not
// accepted): the coordinator's operation fails with reason.
func (n *Node) RefuseInvite(m Message, code vipsmart.ErrorCode, reason string) {
	n.refuse(m, MsgInviteResp, code, "did not accept the join token: %s", reason)
}

// Self returns this DC as the node knows it (its identity changes when a
// rotation of its key commits).
func (n *Node) Self() vipsmart.DC { return n.h.Self }

// Member reports whether this DC is in a federation (member,
// candidate-review or leaving).
func (n *Node) Member() bool { return n.h.memberish() }

// CommittedIdentity returns the key the federation has committed for this
// DC ("" if it is in no federation or its entry has none).
func (n *Node) CommittedIdentity() string {
	d, _ := findDC(n.h.Members, n.h.Self.Name)
	return d.Identity
}

// RotationPending reports whether this DC coordinates a rotation of its
// own key that has not committed or failed yet.
func (n *Node) RotationPending() bool {
	return n.op != nil && n.op.change.Kind == RotateIdentity
}
