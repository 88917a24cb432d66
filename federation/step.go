package federation

import (
	"fmt"
	"slices"
	"time"

	"github.com/vipsmart/vipsmart"
)

// Step hands the node a message from a peer. A malformed message is refused
// with EINVALID and changes nothing.
func (n *Node) Step(now time.Time, m Message) error {
	if err := m.Validate(); err != nil {
		return err
	}
	n.now = now
	if m.To.Name != n.h.Self.Name && m.Type != MsgInvite && m.Type != MsgAbort { // an invite under a wrong name is refused with the reason (and aborted)
		return vipsmart.Errorf(vipsmart.EINVALID, "to", "message for %s delivered to %s", m.To.Name, n.h.Self.Name)
	}
	if m.From.Name == n.h.Self.Name {
		return vipsmart.Errorf(vipsmart.EINVALID, "from", "message from %s to itself", m.From.Name)
	}
	n.expire(now)
	n.heard(now, m)
	n.observe(now, m)
	switch m.Type {
	case MsgInvite:
		n.onInvite(now, m)
	case MsgLock:
		n.onLock(now, m)
	case MsgPrepare:
		n.onPrepare(now, m)
	case MsgInviteResp, MsgLockResp, MsgPrepareResp:
		n.onResponse(now, m)
	case MsgCommit:
		n.onCommit(now, m)
	case MsgAbort:
		n.onAbort(now, m)
	case MsgAbortResp:
		n.onAbortResp(m)
	case MsgProbe:
		n.onProbe(now, m)
	case MsgProbeResp:
		n.onResponse(now, m)
	case MsgHeartbeat:
		r := n.reply(MsgHeartbeatResp, m)
		r.Last, r.Founding = n.lastFor(m.SenderFed), n.h.Founding
		r.Report = n.report()
		n.quorumOut(now, &r)
		n.send(r)
	case MsgHeartbeatResp:
	case MsgFetchState:
		r := n.reply(MsgState, m)
		r.Last, r.Founding = n.lastFor(m.SenderFed), n.h.Founding
		if n.h.memberish() {
			r.State = n.state()
		}
		n.send(r)
	case MsgState:
		if m.State != nil {
			n.onState(now, *m.State)
		}
	}
	return nil
}

// lastFor returns the decision to hand a DC of federation fed: this DC's
// last one if it is in fed, else the tombstone of its departure from fed.
func (n *Node) lastFor(fed string) *Decision {
	if fed == "" || (n.h.memberish() && fed == n.h.FedID) {
		return n.h.Last
	}
	for i := len(n.h.Tombs) - 1; i >= 0; i-- {
		if n.h.Tombs[i].FedID == fed {
			t := n.h.Tombs[i]
			return &t
		}
	}
	return n.h.Last
}

func (n *Node) state() *State {
	return &State{FedID: n.h.FedID, Epoch: n.h.Epoch, Members: cloneDCs(n.h.Members), GIPs: sortedGIPs(n.gips), Last: n.h.Last, Founding: n.h.Founding, Quorum: slices.Clone(n.h.Quorum)}
}

func cloneDCs(ds []vipsmart.DC) []vipsmart.DC { return append([]vipsmart.DC(nil), ds...) }

func (n *Node) heard(now time.Time, m Message) {
	p := n.peers[m.From.Name]
	if p == nil {
		p = &peer{}
		n.peers[m.From.Name] = p
	}
	if now.After(p.lastSeen) {
		p.lastSeen = now
	}
	p.lastEpoch, p.status = m.SenderEpoch, m.Status
	if m.Type == MsgHeartbeat || m.Type == MsgHeartbeatResp {
		p.report = Report{}
		if m.Report != nil {
			p.report = m.Report.clone()
		}
		n.quorumIn(m)
	}
	if m.Seq > p.seq || (m.Seq == p.seq && !m.Running) {
		p.seq, p.running = m.Seq, m.Running
	}
	n.pastOps(now, m)
}

// pastOps drops what this DC holds for operations of m's sender that m
// shows ended without committing: m was sent after the operation ended
// (its sequence number is past it), and either the last operation the
// sender committed is an earlier one, or the sender was still below the
// operation's epoch (committing would have raised it there, and epochs
// never go down). The lock is released at once and the doubt dropped.
//
// The decisions m carries (whoever sent it) tell the same of their
// coordinators: a decision of operation number k of coordinator C from
// epoch e shows that C's operations before k whose target is above e did
// not commit (C was still at e after them).
func (n *Node) pastOps(now time.Time, m Message) {
	from := m.From.Name
	gone := func(coord string, seq, to uint64) bool {
		if seq == 0 {
			return false
		}
		if coord == from && (m.Seq > seq || (m.Seq == seq && !m.Running)) && (m.Committed < seq || m.SenderEpoch < to) {
			return true
		}
		for _, d := range []*Decision{m.Last, m.Founding} {
			if d != nil && d.Coordinator == coord && d.Seq > seq && d.FromEpoch < to {
				return true
			}
		}
		return false
	}
	if l := n.h.Lock; l != nil && !l.Own && gone(l.Coordinator.Name, l.Seq, l.ToEpoch) {
		n.releaseLock(now, fmt.Sprintf("operation %s of %s ended without committing (%s has moved on)", l.OpID, l.Coordinator.Name, l.Coordinator.Name))
	}
	if slices.ContainsFunc(n.h.Doubts, func(d Doubt) bool { return gone(d.Coordinator, d.Seq, d.ToEpoch) }) {
		n.h.Doubts = slices.DeleteFunc(slices.Clone(n.h.Doubts), func(d Doubt) bool { return gone(d.Coordinator, d.Seq, d.ToEpoch) })
		n.dirty = true
	}
}

// observe is the anti-entropy every message drives: apply a decision the
// sender carries when this DC is exactly at its parent epoch; fetch the
// state from a sender of this DC's federation (or of the federation it was
// invited to) that is ahead.
func (n *Node) observe(now time.Time, m Message) {
	for _, d := range []*Decision{m.Last, m.Founding} {
		switch {
		case d == nil:
		case n.canApply(*d):
			n.event(now, vipsmart.EventFederation, d.OpID, fmt.Sprintf("caught up with operation %s of %s (epoch %d -> %d) from %s", d.OpID, d.Coordinator, d.FromEpoch, d.ToEpoch, m.From.Name))
			n.applyDecision(now, *d)
		case n.refoundedWithout(*d):
			n.event(now, vipsmart.EventFederation, d.OpID, fmt.Sprintf("fenced out of federation %s: operation %s of %s re-founded it as %s from epoch %d without %s", d.FedID, d.OpID, d.Coordinator, d.Change.NewFedID, d.FromEpoch, n.h.Self.Name))
			t := *d
			t.Tomb, t.Members = true, nil
			if c, ok := findDC(n.h.Members, d.Coordinator); ok {
				t.Members = []vipsmart.DC{c}
			}
			n.tomb(t) // passed on to DCs still in the old federation
			n.setEpoch(d.ToEpoch)
			n.leaveFed(now, "fenced out of federation "+d.FedID)
		case n.aheadTomb(*d):
			if _, listed := findDC(d.Members, n.h.Self.Name); !listed {
				n.event(now, vipsmart.EventFederation, d.OpID, fmt.Sprintf("fenced out of federation %s at epoch %d: %s left it by operation %s, and the members after it do not include %s", d.FedID, d.ToEpoch, m.From.Name, d.OpID, n.h.Self.Name))
				n.tomb(*d) // passed on to DCs still in the old federation
				n.setEpoch(d.ToEpoch)
				n.leaveFed(now, "fenced out of federation "+d.FedID)
				break
			}
			for _, mm := range d.Members {
				if mm.Name != n.h.Self.Name {
					n.fetch(now, mm)
				}
			}
		}
	}
	if m.Type == MsgState || m.SenderFed == "" || m.SenderEpoch <= n.h.Epoch || n.bringsState(m) {
		return
	}
	if (n.h.memberish() && m.SenderFed == n.h.FedID) || n.candidateOf(m.SenderFed) {
		n.fetch(now, m.From)
	}
}

// canApply reports whether decision d can be applied here: this DC is at
// its federation and parent epoch, holds no lock other than the
// operation's own, and d does not go below the floor of the forced
// removals it doubts.
func (n *Node) canApply(d Decision) bool {
	if !n.h.memberish() || n.h.FedID != d.FedID || n.h.Epoch != d.FromEpoch || d.ToEpoch < n.floor() {
		return false
	}
	l := n.h.Lock
	return (l == nil || (l.OpID == d.OpID && !l.Own)) && n.canApplyBatch(d)
}

// aheadTomb reports whether d is the tombstone of a DC that left this
// DC's federation at a later epoch than this DC's: the federation went on
// without this DC hearing of it. Its member list says whether this DC is
// still in it (then it catches up from those members) or fenced out.
func (n *Node) aheadTomb(d Decision) bool {
	return d.Tomb && n.op == nil && n.h.memberish() && n.h.FedID == d.FedID &&
		d.FromEpoch > n.h.Epoch && d.FromEpoch >= n.floor()
}

// refoundedWithout reports whether d re-founded this DC's federation
// without it, and this DC is below d's target: a forced removal in a
// federation of two keeps only its coordinator, so the old federation has
// no future on d's line without it. This DC, behind that re-founding or on
// a line of the old federation that d went past (the removed DC's lone
// commit, which d's epoch rule skipped), turns standalone. It stays when
// it is at or above d's target (d came from a lower line of an earlier
// fork, a single state below this DC's line), or when d descends from
// below the floor of a forced removal it doubts (it waits for that
// removal's line instead).
func (n *Node) refoundedWithout(d Decision) bool {
	return d.Change.NewFedID != "" && n.op == nil && n.h.memberish() && n.h.FedID == d.FedID &&
		d.Coordinator != n.h.Self.Name && n.h.Epoch < d.ToEpoch && d.FromEpoch >= n.floor()
}

// candidateOf reports whether this DC is a candidate of federation fed:
// invited by it, or expired back to standalone remembering its invite and
// having done nothing else since.
func (n *Node) candidateOf(fed string) bool {
	if fed == "" || n.h.memberish() {
		return false
	}
	if l := n.h.Lock; l != nil {
		return n.h.Status == vipsmart.StatusInvited && l.FedID == fed
	}
	return n.h.Invite != nil && n.h.Invite.FedID == fed && len(n.gips) == 0
}

func (n *Node) fetch(now time.Time, from vipsmart.DC) {
	if t, ok := n.lastFtch[from.Name]; ok && now.Sub(t) < n.cfg.HeartbeatInterval && !now.Before(t) {
		return
	}
	n.lastFtch[from.Name] = now
	n.send(n.newMsg(MsgFetchState, from))
}

func (n *Node) onState(now time.Time, st State) {
	if st.FedID == "" || st.Epoch <= n.h.Epoch {
		return
	}
	_, listed := findDC(st.Members, n.h.Self.Name)
	if n.h.memberish() && st.FedID == n.h.FedID {
		if l := n.h.Lock; l != nil && !(st.Last != nil && st.Last.OpID == l.OpID && !l.Own) {
			return // a newer state not made by the op holding the lock waits for the lock to end
		}
		if st.Epoch < n.floor() {
			return // a line that a forced removal this DC doubts has fenced out
		}
		if listed {
			n.event(now, vipsmart.EventFederation, "", fmt.Sprintf("caught up with federation %s: epoch %d -> %d", st.FedID, n.h.Epoch, st.Epoch))
			n.adopt(now, st)
		} else {
			n.fence(now, st)
		}
		return
	}
	if n.candidateOf(st.FedID) && listed {
		if st.Last != nil && slices.Contains(n.h.Renounced, st.Last.OpID) {
			return // an add it told a forced removal it will not join through (seed 28197: invited again by another member, it adopted that add's state)
		}
		n.adopt(now, st)
	}
}

func (n *Node) adopt(now time.Time, st State) {
	opID := ""
	if st.Last != nil {
		opID = st.Last.OpID
	}
	n.h.FedID = st.FedID
	n.h.Members = cloneDCs(st.Members)
	sortDCs(n.h.Members)
	n.setEpoch(st.Epoch)
	n.h.Last, n.h.Founding = st.Last, st.Founding
	n.h.Quorum = slices.Clone(st.Quorum)
	n.h.Lock, n.h.Doubts, n.h.Invite = nil, nil, nil
	n.prep = nil
	n.setGIPs(st.GIPs)
	n.dirty = true
	n.setStatus(now, vipsmart.StatusMember, opID, fmt.Sprintf("member of federation %s at epoch %d", st.FedID, st.Epoch))
}

// fence turns this DC standalone: a newer state of its federation does not
// list it.
func (n *Node) fence(now time.Time, st State) {
	n.event(now, vipsmart.EventFederation, "", fmt.Sprintf("fenced out of federation %s at epoch %d: the federation no longer lists %s", st.FedID, st.Epoch, n.h.Self.Name))
	n.setEpoch(st.Epoch) // it has seen that epoch: it never joins that federation below it again
	if st.Last != nil && st.Last.FedID == st.FedID && st.Last.ToEpoch == st.Epoch {
		t := *st.Last
		t.Tomb, t.Members = true, cloneDCs(st.Members)
		n.tomb(t)
	}
	n.leaveFed(now, "fenced out of federation "+st.FedID)
}

// leaveFed drops the federation, its DC and GIP objects (the last decision
// stays as a tombstone).
func (n *Node) leaveFed(now time.Time, why string) {
	n.h.FedID, n.h.Members, n.h.Founding, n.h.Quorum = "", nil, nil, nil
	n.h.Lock, n.h.Doubts, n.h.Invite = nil, nil, nil
	n.setGIPs(nil)
	n.dirty = true
	n.setStatus(now, vipsmart.StatusStandalone, "", why)
}

// applyDecision applies d to this DC (which is at d's parent state).
func (n *Node) applyDecision(now time.Time, d Decision) {
	members := applyMembers(n.h.Members, d.Change)
	quorum := quorumAfter(n.h.Members, d.Change)
	put, del := gipChanges(n.gips, n.withBatch(d.Change))
	d = slimDecision(d)
	n.h.Lock = nil
	n.h.Last = &d
	n.setEpoch(d.ToEpoch)
	n.h.Doubts = nil
	n.dirty = true
	if _, ok := findDC(members, n.h.Self.Name); !ok {
		t := d
		t.Tomb, t.Members = true, cloneDCs(members)
		n.tomb(t)
		n.leaveFed(now, fmt.Sprintf("left federation %s by operation %s at epoch %d", d.FedID, d.OpID, d.ToEpoch))
		return
	}
	if d.Change.NewFedID != "" {
		// This DC leaves the old federation id too: a DC still in it
		// learns the re-founding from this tombstone, whatever this DC
		// does next.
		t := d
		t.Tomb, t.Members = true, cloneDCs(members)
		n.tomb(t)
		n.h.FedID = d.Change.NewFedID
		dd := d
		n.h.Founding = &dd
	}
	n.h.Members = members
	n.h.Quorum = quorum
	if d.Change.Kind == RotateIdentity && d.Change.DC != nil && d.Change.DC.Name == n.h.Self.Name {
		n.h.Self.Identity = d.Change.DC.Identity
	}
	if !n.putBatch(put, del) { // gipset.go
		n.growGIPs(len(put))
		for _, g := range put {
			n.putGIP(g)
		}
		for _, name := range del {
			n.delGIP(name)
		}
	}
	n.setStatus(now, vipsmart.StatusMember, d.OpID, fmt.Sprintf("operation %s committed (epoch %d)", d.OpID, d.ToEpoch))
}

// tomb keeps d as the tombstone of this DC's departure from federation
// d.FedID (one per federation, the newest 16).
func (n *Node) tomb(d Decision) {
	n.h.Tombs = slices.DeleteFunc(n.h.Tombs, func(t Decision) bool { return t.FedID == d.FedID })
	n.h.Tombs = append(n.h.Tombs, d)
	if len(n.h.Tombs) > 16 {
		n.h.Tombs = n.h.Tombs[len(n.h.Tombs)-16:]
	}
}

func (n *Node) refuse(m Message, t MsgType, code vipsmart.ErrorCode, format string, args ...any) {
	r := n.reply(t, m)
	r.Code = code
	r.Reason = fmt.Sprintf(format, args...)
	n.send(r)
}

// refuseLate refuses a lock or invite of an operation that this DC knows
// has ended: it heard the coordinator past it. The refusal carries the
// highest sequence number it heard from the coordinator (KnownSeq): a
// coordinator that counts below it (its store was restored or rebuilt)
// counts on from there.
func (n *Node) refuseLate(m Message, t MsgType, what string) {
	r := n.reply(t, m)
	r.Code = vipsmart.ESTATE
	r.Reason = fmt.Sprintf("knows that operation %s of %s has ended (it heard %s past it): a late %s is refused", m.OpID, m.From.Name, m.From.Name, what)
	if p := n.peers[m.From.Name]; p != nil {
		r.KnownSeq = p.seq
	}
	n.send(r)
}

func (n *Node) onInvite(now time.Time, m Message) {
	self := n.h.Self
	c := m.Change
	if l := n.h.Lock; l != nil && l.OpID == m.OpID && n.h.Status == vipsmart.StatusInvited {
		r := n.reply(MsgInviteResp, m)
		r.OK = true
		r.From.Nodes = n.inviteNodes() // nodes.go
		n.send(r)
		return
	}
	switch {
	case c.DC.Name != self.Name:
		n.refuse(m, MsgInviteResp, vipsmart.EINVALID, "is named %s, not %s (check the NAME given to dc add)", self.Name, c.DC.Name)
	case n.peers[m.From.Name].ended(m.Seq):
		n.refuseLate(m, MsgInviteResp, "invite")
	case slices.Contains(n.h.Renounced, m.OpID):
		n.refuse(m, MsgInviteResp, vipsmart.ESTATE, "told a forced removal that it holds nothing of operation %s and will not join through it", m.OpID)
	case n.h.memberish():
		n.refuse(m, MsgInviteResp, vipsmart.ESTATE, "is already a member of federation %s (leave it first or pick another DC)", n.h.FedID)
	case n.h.Status == vipsmart.StatusInvited:
		l := n.h.Lock
		n.refuse(m, MsgInviteResp, vipsmart.EBUSY, "is invited to federation %s by %s (operation %s, %s left)", l.FedID, l.Coordinator.Name, l.OpID, max(0, l.Deadline.Sub(now)).Round(100*time.Millisecond))
	case n.h.Lock != nil:
		n.refuse(m, MsgInviteResp, vipsmart.EBUSY, "is coordinating operation %s", n.h.Lock.OpID)
	case len(n.gips) > 0:
		n.refuse(m, MsgInviteResp, vipsmart.ESTATE, "holds %d GIP objects (a candidate must hold no DC or GIP objects: remove them first)", len(n.gips))
	default:
		n.h.Lock = &lockRec{OpID: m.OpID, Coordinator: m.From, Deadline: now.Add(n.cfg.InviteTTL), FedID: m.FedID, Epoch: m.Epoch, ToEpoch: m.ToEpoch, Change: *c, Members: cloneDCs(m.Members), Seq: m.Seq}
		n.h.Invite = &inviteMemo{FedID: m.FedID, OpID: m.OpID, Coordinator: m.From.Name, Members: cloneDCs(m.Members)}
		n.prep = nil
		n.dirty = true
		n.setStatus(now, vipsmart.StatusInvited, m.OpID, fmt.Sprintf("invited to federation %s by %s", m.FedID, m.From.Name))
		r := n.reply(MsgInviteResp, m)
		r.OK = true
		r.From.Nodes = n.inviteNodes() // nodes.go
		n.send(r)
	}
}

func (n *Node) onLock(now time.Time, m Message) {
	self := n.h.Self
	if l := n.h.Lock; l != nil && l.OpID == m.OpID && !l.Own && n.h.memberish() {
		r := n.reply(MsgLockResp, m)
		r.OK, r.Doubts = true, n.h.Doubts
		n.send(r)
		return
	}
	switch {
	case n.h.Last != nil && n.h.Last.OpID == m.OpID:
		n.refuse(m, MsgLockResp, vipsmart.ESTATE, "has already committed operation %s (epoch %d)", m.OpID, n.h.Last.ToEpoch)
	case n.peers[m.From.Name].ended(m.Seq):
		n.refuseLate(m, MsgLockResp, "lock")
	case !n.h.memberish() && n.h.Status == vipsmart.StatusInvited:
		l := n.h.Lock
		n.refuse(m, MsgLockResp, vipsmart.EBUSY, "is invited to federation %s by %s (operation %s, %s left)", l.FedID, l.Coordinator.Name, l.OpID, max(0, l.Deadline.Sub(now)).Round(100*time.Millisecond))
	case !n.h.memberish():
		n.refuse(m, MsgLockResp, vipsmart.ESTATE, "is not a member of federation %s (it is standalone)", m.FedID)
	case n.h.FedID != m.FedID:
		n.refuse(m, MsgLockResp, vipsmart.ESTATE, "is not a member of federation %s (it is a member of federation %s)", m.FedID, n.h.FedID)
	case n.h.Lock != nil:
		n.refuse(m, MsgLockResp, vipsmart.EBUSY, "%s", n.lockDesc(now))
	case m.Epoch < n.h.Epoch:
		n.refuse(m, MsgLockResp, vipsmart.EBUSY, "is at epoch %d, ahead of the epoch %d the operation expected: the federation changed meanwhile (%s is catching up)", n.h.Epoch, m.Epoch, m.From.Name)
	case m.Epoch > n.h.Epoch:
		n.refuse(m, MsgLockResp, vipsmart.EBUSY, "is at epoch %d, behind the epoch %d the operation expected (it is catching up)", n.h.Epoch, m.Epoch)
	case n.lockBlocked(m.OpID, m.From.Name, *m.Change) != "":
		code := vipsmart.ESTATE
		n.refuse(m, MsgLockResp, code, "%s", n.lockBlocked(m.OpID, m.From.Name, *m.Change))
	case m.Change.Kind == ApplyGIPs && n.batchProblem(m.Change.Batch) != nil:
		e := n.batchProblem(m.Change.Batch)
		n.refuse(m, MsgLockResp, e.Code, "%s", e.Message)
	case m.Change.Kind == PutGIP && n.ownPlacementProblem(m.Change.GIP) != nil:
		e := n.ownPlacementProblem(m.Change.GIP)
		n.refuse(m, MsgLockResp, e.Code, "%s", e.Message)
	default:
		n.h.Lock = &lockRec{OpID: m.OpID, Coordinator: m.From, Deadline: now.Add(n.cfg.ReviewTTL), FedID: m.FedID, Epoch: m.Epoch, ToEpoch: m.ToEpoch, Change: *m.Change, Seq: m.Seq}
		n.h.Doubts = slices.DeleteFunc(n.h.Doubts, func(d Doubt) bool { return d.OpID == m.OpID })
		n.dirty = true
		st := vipsmart.StatusCandidateReview
		if (m.Change.Kind == RemoveDC || m.Change.Kind == Leave) && m.Change.removes(self.Name) {
			st = vipsmart.StatusLeaving
		}
		n.setStatus(now, st, m.OpID, fmt.Sprintf("locked by operation %s of %s: %s", m.OpID, m.From.Name, describe(*m.Change)))
		r := n.reply(MsgLockResp, m)
		r.OK, r.Doubts = true, n.h.Doubts
		n.send(r)
	}
}

// ownPlacementProblem checks GIP g against this DC's own VIPs: a placement
// on this DC must name an existing VIP, and g's address must not be one of
// this DC's VIP addresses. The message is phrased to follow the DC's name.
func (n *Node) ownPlacementProblem(g *vipsmart.GIP) *vipsmart.Error {
	if e := n.witnessPlacementProblem(g); e != nil {
		return e
	}
	if n.vips == nil || g == nil {
		return nil
	}
	for _, pl := range g.Placements {
		if pl.DC == n.h.Self.Name && pl.VIP != "" {
			if _, ok := n.vips[pl.VIP]; !ok {
				return vipsmart.Errorf(vipsmart.EINVALID, "placements", "has no VIP named %s to back GIP %s (add the VIP there first or leave the placement's vip empty)", pl.VIP, g.Name)
			}
		}
	}
	for _, name := range sortedKeys(n.vips) {
		if n.vips[name] == g.Address {
			return vipsmart.Errorf(vipsmart.ECONFLICT, "address", "has VIP %s at %s: a GIP cannot take the address of a VIP (pick another address)", name, g.Address)
		}
	}
	return nil
}

func (n *Node) onPrepare(now time.Time, m Message) {
	l := n.h.Lock
	if l == nil || l.Own || l.OpID != m.OpID || l.Coordinator.Name != m.From.Name {
		n.refuse(m, MsgPrepareResp, vipsmart.ESTATE, "holds no lock of operation %s (its lock expired or was aborted)", m.OpID)
		return
	}
	if n.h.Status == vipsmart.StatusInvited {
		if m.State == nil {
			n.refuse(m, MsgPrepareResp, vipsmart.EINVALID, "got a prepare without the federation state")
			return
		}
		n.prep = &prepared{opID: m.OpID, state: *m.State}
	} else if m.ToEpoch > l.ToEpoch {
		l.ToEpoch = m.ToEpoch
		n.dirty = true
	}
	r := n.reply(MsgPrepareResp, m)
	r.OK = true
	n.send(r)
}

// bringsState reports whether m, to this DC invited by m's sender, is the
// prepare that carries the state of the add, or the commit of the add
// whose state this DC was prepared with (onCommit adopts it). Fetching the
// state from the coordinator then would bring, during the add, its state
// before the add (which does not list this DC), or after it the state
// this DC adopts anyway: all the GIPs again, for nothing.
func (n *Node) bringsState(m Message) bool {
	l := n.h.Lock
	if l == nil || n.h.Status != vipsmart.StatusInvited || l.OpID != m.OpID || l.Coordinator.Name != m.From.Name {
		return false
	}
	switch m.Type {
	case MsgPrepare:
		return m.State != nil
	case MsgCommit:
		p := n.prep
		return p != nil && p.opID == m.OpID && p.state.Epoch > n.h.Epoch && p.state.Epoch >= m.SenderEpoch
	}
	return false
}

func (n *Node) onCommit(now time.Time, m Message) {
	l := n.h.Lock
	if l == nil || n.h.Status != vipsmart.StatusInvited || l.OpID != m.OpID {
		return // members applied it in observe (or will catch up)
	}
	if p := n.prep; p != nil && p.opID == m.OpID && p.state.Epoch > n.h.Epoch {
		n.adopt(now, p.state)
	}
	// Otherwise observe has asked the coordinator for the state.
}

func (n *Node) onAbort(now time.Time, m Message) {
	r := n.reply(MsgAbortResp, m)
	r.OK = true
	n.send(r)
	if l := n.h.Lock; l != nil && !l.Own && l.OpID == m.OpID && l.Coordinator.Name == m.From.Name {
		n.releaseLock(now, fmt.Sprintf("operation %s aborted by %s", m.OpID, m.From.Name))
	}
	if n.h.Invite != nil && n.h.Invite.OpID == m.OpID {
		n.h.Invite = nil
		n.dirty = true
	}
	for i, d := range n.h.Doubts {
		if d.OpID == m.OpID && d.Coordinator == m.From.Name {
			n.h.Doubts = append(n.h.Doubts[:i:i], n.h.Doubts[i+1:]...)
			n.dirty = true
			break
		}
	}
}

// onAbortResp: a participant answered an abort; stop resending it there.
func (n *Node) onAbortResp(m Message) {
	for i := range n.h.Aborts {
		a := &n.h.Aborts[i]
		if a.OpID != m.OpID {
			continue
		}
		to := slices.DeleteFunc(slices.Clone(a.To), func(d vipsmart.DC) bool { return d.Name == m.From.Name || d.AddrPort() == m.From.AddrPort() })
		if len(to) != len(a.To) {
			a.To = to
			n.dirty = true
		}
	}
	n.h.Aborts = slices.DeleteFunc(n.h.Aborts, func(a abortRec) bool { return len(a.To) == 0 })
}

// onProbe answers a forced removal that asks this DC, the candidate of an
// add in doubt, whether it holds that change. It refuses (and the removal
// fails) if it holds it or may still join through it; otherwise it
// renounces the change for good: it will not join through it later.
func (n *Node) onProbe(now time.Time, m Message) {
	for _, d := range m.Doubts {
		if n.h.memberish() && n.h.FedID == d.FedID && n.h.Epoch > d.Epoch {
			n.refuse(m, MsgProbeResp, vipsmart.EBUSY, "holds federation %s at epoch %d, past the epoch %d of operation %s of %s that the other members missed: they catch up from it", n.h.FedID, n.h.Epoch, d.Epoch, d.OpID, d.Coordinator)
			return
		}
		if l := n.h.Lock; l != nil && n.h.Status == vipsmart.StatusInvited && l.OpID == d.OpID {
			n.refuse(m, MsgProbeResp, vipsmart.EBUSY, "is invited by operation %s of %s and may still join through it (at the latest for %s more)", d.OpID, d.Coordinator, max(0, l.Deadline.Sub(now)).Round(100*time.Millisecond))
			return
		}
	}
	for _, d := range m.Doubts {
		if !slices.Contains(n.h.Renounced, d.OpID) {
			n.h.Renounced = append(n.h.Renounced, d.OpID)
			if len(n.h.Renounced) > 64 {
				n.h.Renounced = n.h.Renounced[len(n.h.Renounced)-64:]
			}
		}
		if n.h.Invite != nil && n.h.Invite.OpID == d.OpID {
			n.h.Invite = nil
		}
		if n.prep != nil && n.prep.opID == d.OpID {
			n.prep = nil
		}
		n.dirty = true
	}
	r := n.reply(MsgProbeResp, m)
	r.OK = true
	n.send(r)
}

// Validate checks that m is well formed (EINVALID otherwise).
func (m *Message) Validate() error {
	bad := func(format string, args ...any) error {
		return vipsmart.Errorf(vipsmart.EINVALID, "message", "malformed %s message: %s", m.Type, fmt.Sprintf(format, args...))
	}
	switch m.Type {
	case MsgInvite, MsgInviteResp, MsgLock, MsgLockResp, MsgPrepare, MsgPrepareResp, MsgCommit, MsgAbort, MsgAbortResp, MsgProbe, MsgProbeResp:
		if m.OpID == "" {
			return bad("no op_id")
		}
	case MsgHeartbeat, MsgHeartbeatResp, MsgFetchState, MsgState:
	default:
		return vipsmart.Errorf(vipsmart.EINVALID, "type", "unknown message type %q", m.Type)
	}
	if err := m.From.Validate(); err != nil {
		return bad("from: %v", err)
	}
	if err := vipsmart.ValidateName("to", m.To.Name); err != nil {
		return bad("to: %v", err)
	}
	if m.Status != "" && !m.Status.Valid() {
		return bad("unknown status %q", m.Status)
	}
	if err := m.Quorum.validate(); err != nil {
		return bad("%v", err)
	}
	if len(m.Token) > 512 {
		return bad("token: %d characters, more than any join token", len(m.Token))
	}
	for _, d := range m.Members {
		if err := d.Validate(); err != nil {
			return bad("members: %v", err)
		}
	}
	switch m.Type {
	case MsgInvite, MsgLock:
		if m.Change == nil {
			return bad("no change")
		}
		if m.FedID == "" {
			return bad("no fed_id")
		}
		if m.Type == MsgLock && m.Change.Kind == ApplyGIPs && m.Change.Batch != nil && !m.Change.Batch.full() {
			// Only decisions carry a batch slim: a member checks a
			// lock's batch against its own VIPs before it grants it.
			return bad("a lock of %s carries its batch without its changes (count %d): a lock carries the whole batch", ApplyGIPs, m.Change.Batch.Count)
		}
	case MsgCommit:
		if m.Last == nil || m.Last.OpID != m.OpID {
			return bad("no decision for operation %s", m.OpID)
		}
	case MsgProbe:
		if len(m.Doubts) == 0 {
			return bad("a probe names no change in doubt")
		}
	}
	for _, d := range m.Doubts {
		if d.FedID == "" || d.OpID == "" {
			return bad("bad doubt %+v", d)
		}
		if err := d.Change.validate(); err != nil {
			return bad("doubt: %v", err)
		}
		if err := validateNodesChange(&d.Change, d.Coordinator); err != nil {
			return bad("doubt: %v", err)
		}
	}
	if m.Type == MsgInvite && (m.Change.Kind != AddDC || m.Change.DC == nil) {
		return bad("the invite names no candidate")
	}
	if c := m.Change; c != nil {
		if err := c.validate(); err != nil {
			return bad("%v", err)
		}
		if err := validateNodesChange(c, m.From.Name); err != nil {
			return bad("%v", err)
		}
	}
	for _, d := range []*Decision{m.Last, m.Founding} {
		if d != nil {
			if d.FedID == "" || d.OpID == "" || d.ToEpoch <= d.FromEpoch {
				return bad("bad decision %+v", *d)
			}
			for _, mm := range d.Members {
				if err := mm.Validate(); err != nil {
					return bad("decision member: %v", err)
				}
			}
			if err := d.Change.validate(); err != nil {
				return bad("%v", err)
			}
			if err := validateNodesChange(&d.Change, d.Coordinator); err != nil {
				return bad("%v", err)
			}
		}
	}
	if s := m.State; s != nil {
		for _, q := range s.Quorum {
			if err := vipsmart.ValidateName("quorum", q); err != nil {
				return bad("state quorum: %v", err)
			}
		}
		for _, d := range s.Members {
			if err := d.Validate(); err != nil {
				return bad("state member: %v", err)
			}
		}
		for _, g := range s.GIPs {
			if err := g.Validate(); err != nil {
				return bad("state GIP %s: %v", g.Name, err)
			}
		}
	}
	return nil
}

func (c *Change) validate() error {
	switch c.Kind {
	case AddDC:
		if c.DC == nil {
			return fmt.Errorf("add-dc without a DC")
		}
		return c.DC.Validate()
	case RemoveDC, Leave, DeleteGIP:
		if err := vipsmart.ValidateName("name", c.Name); err != nil {
			return err
		}
		if len(c.Names) > 0 {
			if c.Kind != RemoveDC || !c.Force || len(c.Names) < 2 || c.Names[0] != c.Name {
				return fmt.Errorf("names is only for a forced removal of several DCs, starting with name")
			}
			for i, name := range c.Names {
				if err := vipsmart.ValidateName("names", name); err != nil {
					return err
				}
				if i > 0 && c.Names[i-1] >= name {
					return fmt.Errorf("names must be sorted and distinct")
				}
			}
		}
		return nil
	case PutGIP:
		if c.GIP == nil {
			return fmt.Errorf("put-gip without a GIP")
		}
		g := cloneGIP(*c.GIP)
		return g.Validate()
	case ApplyGIPs:
		if c.DC != nil || c.Name != "" || c.Force || len(c.Names) > 0 || c.GIP != nil || c.Founder != nil || c.NewFedID != "" {
			// Those fields mean something to other kinds only (new_fed_id
			// would re-found the federation at the commit).
			return fmt.Errorf("%s carries its batch and by only (no dc, name, force, names, gip, founder or new_fed_id)", ApplyGIPs)
		}
		return c.Batch.validate()
	case RotateIdentity:
		if c.DC == nil {
			return fmt.Errorf("rotate-identity without a DC")
		}
		if err := c.DC.Validate(); err != nil {
			return err
		}
		return vipsmart.ValidateIdentity("identity", c.DC.Identity)
	case SetNodes:
		if c.DC == nil {
			return fmt.Errorf("set-nodes without a DC")
		}
		return c.DC.Validate()
	}
	return fmt.Errorf("unknown change %q", c.Kind)
}
