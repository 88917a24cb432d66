package federation

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/vipsmart/vipsmart"
)

// Propose starts an operator change with this DC as the coordinator. An
// immediate refusal is returned as a *vipsmart.Error; otherwise the outcome
// comes later as a Result with the returned operation id.
func (n *Node) Propose(now time.Time, p Proposal) (string, error) {
	n.now = now
	n.expire(now)
	self := n.h.Self
	if n.op != nil {
		return "", vipsmart.Errorf(vipsmart.EBUSY, "", "federation busy, retry: operation %s of this DC (%s) is still running", n.op.id, self.Name)
	}
	if l := n.h.Lock; l != nil {
		if n.h.Status == vipsmart.StatusInvited {
			return "", vipsmart.Errorf(vipsmart.ESTATE, "", "%s is invited to federation %s by %s (operation %s, %s left): it accepts no changes until the invite commits or expires", self.Name, l.FedID, l.Coordinator.Name, l.OpID, max(0, l.Deadline.Sub(now)).Round(100*time.Millisecond))
		}
		return "", vipsmart.Errorf(vipsmart.EBUSY, "", "federation busy, retry: %s %s", self.Name, n.lockDesc(now))
	}
	c := Change{Kind: p.Kind, By: p.By}
	o := &op{fedID: n.h.FedID, from: n.h.Epoch, acked: map[string]bool{}, token: p.Token}
	switch p.Kind {
	case AddDC:
		d := p.DC
		if d.Port == 0 {
			d.Port = vipsmart.DefaultPort
		}
		if err := d.Validate(); err != nil {
			return "", err
		}
		if d.Name == self.Name {
			return "", vipsmart.Errorf(vipsmart.EINVALID, "name", "%s is this DC: give the name of another DC to add", d.Name)
		}
		if d.AddrPort() == self.AddrPort() {
			return "", vipsmart.Errorf(vipsmart.EINVALID, "address", "%s is the address of this DC (%s): give the address of the DC to add", d.AddrPort(), self.Name)
		}
		for _, m := range n.h.Members {
			if m.Name == d.Name {
				return "", vipsmart.Errorf(vipsmart.ECONFLICT, "name", "%s is already a member of federation %s", d.Name, n.h.FedID)
			}
			if m.AddrPort() == d.AddrPort() || slices.Contains(m.Nodes, d.AddrPort()) {
				return "", vipsmart.Errorf(vipsmart.ECONFLICT, "address", "%s is already the address of member %s", d.AddrPort(), m.Name)
			}
		}
		if !n.h.memberish() && len(n.gips) > 0 {
			return "", vipsmart.Errorf(vipsmart.ESTATE, "", "%s is standalone but holds %d GIP objects: remove them before declaring a federation", self.Name, len(n.gips))
		}
		c.DC = &d
		o.cand = &d
	case RemoveDC:
		if err := n.needMember("remove a DC"); err != nil {
			return "", err
		}
		gone, err := n.checkRemove(now, p)
		if err != nil {
			return "", err
		}
		c.Name, c.Force = gone[0], p.Force
		if len(gone) > 1 {
			c.Names = gone
		}
	case Leave:
		if err := n.needMember("leave"); err != nil {
			return "", err
		}
		c.Name = self.Name
	case PutGIP:
		if err := n.needMember("change GIPs"); err != nil {
			return "", err
		}
		g := cloneGIP(p.GIP)
		if err := g.Validate(); err != nil {
			return "", err
		}
		vipsmart.SortPlacements(g.Placements)
		for _, pl := range g.Placements {
			if _, ok := findDC(n.h.Members, pl.DC); !ok {
				return "", vipsmart.Errorf(vipsmart.EINVALID, "placements", "placement %s is not a member of federation %s (members: %s)", pl.DC, n.h.FedID, names(n.h.Members))
			}
		}
		for _, other := range n.gips {
			if other.Name != g.Name && other.Address == g.Address {
				return "", vipsmart.Errorf(vipsmart.ECONFLICT, "address", "address %s is already used by GIP %s", g.Address, other.Name)
			}
		}
		old, exists := n.gips[g.Name]
		switch {
		case p.Update && !exists:
			return "", vipsmart.Errorf(vipsmart.ENOTFOUND, "name", "GIP %s does not exist: add it first", g.Name)
		case !p.Update && exists:
			return "", vipsmart.Errorf(vipsmart.ECONFLICT, "name", "GIP %s already exists: update it instead", g.Name)
		case exists && gipEqual(old, g):
			return "", vipsmart.Errorf(vipsmart.ECONFLICT, "name", "GIP %s already exists with exactly these settings", g.Name)
		}
		if err := n.checkOwnPlacements(&g); err != nil {
			return "", err
		}
		c.GIP = &g
	case DeleteGIP:
		if err := n.needMember("change GIPs"); err != nil {
			return "", err
		}
		if _, ok := n.gips[p.Name]; !ok {
			return "", vipsmart.Errorf(vipsmart.ENOTFOUND, "name", "GIP %s does not exist", p.Name)
		}
		c.Name = p.Name
	case ApplyGIPs:
		bc, err := n.proposeBatch(now, p)
		if err != nil {
			return "", err
		}
		c = bc
	case SetNodes:
		nc, err := n.proposeNodes(p)
		if err != nil {
			return "", err
		}
		nc.By = c.By
		c = nc
	case RotateIdentity:
		if err := n.needMember("rotate its key"); err != nil {
			return "", err
		}
		d := p.DC
		if d.Name != self.Name {
			return "", vipsmart.Errorf(vipsmart.EINVALID, "name", "a DC rotates only its own key (%s, not %s)", self.Name, d.Name)
		}
		if err := vipsmart.ValidateIdentity("identity", d.Identity); err != nil {
			return "", err
		}
		if me, _ := findDC(n.h.Members, self.Name); me.Identity == d.Identity {
			return "", vipsmart.Errorf(vipsmart.EINVALID, "identity", "key %s is already %s's committed key", d.Identity, self.Name)
		}
		c.DC = &d
	default:
		return "", vipsmart.Errorf(vipsmart.EINVALID, "kind", "unknown proposal %q", p.Kind)
	}

	if why := n.lockBlocked("", self.Name, c); why != "" {
		return "", vipsmart.Errorf(vipsmart.ESTATE, "", "%s %s", self.Name, why)
	}
	o.id = n.newOpID()
	if p.Kind == AddDC && !n.h.memberish() {
		// A standalone DC declares a federation of itself, committed only
		// if the add commits.
		s := self
		s.Nodes = n.localNodesOK(self.AddrPort())
		c.Founder = &s
		o.fedID = "f-" + o.id
	}
	for _, m := range n.h.Members {
		if m.Name == self.Name || (c.Force && c.removes(m.Name)) {
			continue
		}
		o.parts = append(o.parts, m)
	}
	if c.Force && len(n.h.Members) == 2 {
		// Nobody but this DC can witness the removal: the other DC might
		// still run the federation alone, so this side is re-founded under
		// a new id (see docs/federation.md).
		c.NewFedID = "f-" + o.id
	}
	o.change = c
	o.to = o.from + 1
	n.op = o
	n.h.Lock = &lockRec{OpID: o.id, Coordinator: self, Deadline: now.Add(n.ttl(c)), FedID: o.fedID, Epoch: o.from, ToEpoch: o.to, Change: c, Own: true}
	var all []vipsmart.DC
	if o.cand != nil {
		all = append(all, *o.cand)
	}
	all = append(all, o.parts...)
	if c.Force {
		for _, name := range c.removed() {
			if d, ok := findDC(n.h.Members, name); ok {
				all = append(all, d)
			}
		}
	}
	n.h.Coord = &coordRec{OpID: o.id, FedID: o.fedID, Epoch: o.from, Participants: all}
	n.dirty = true
	switch {
	case p.Kind == Leave:
		n.setStatus(now, vipsmart.StatusLeaving, o.id, "leaving federation "+n.h.FedID)
	case n.h.memberish():
		n.setStatus(now, vipsmart.StatusCandidateReview, o.id, "coordinating operation "+o.id)
	}
	n.event(now, vipsmart.EventFederation, o.id, fmt.Sprintf("operation %s started: %s", o.id, describe(c)))
	if o.cand != nil {
		n.enterPhase(now, phInvite)
	} else {
		n.enterPhase(now, phLock)
	}
	return o.id, nil
}

// checkRemove checks a RemoveDC proposal and returns the DCs it removes,
// sorted. A plain removal takes one member. A forced one takes one or
// more members that this DC cannot reach (a reachable one is removed with
// a plain removal), and possibly the candidates of adds in doubt (checked
// once the members' doubts are in); the members that stay must be more
// than half of the members (and of the quorum left by a forced removal of
// several DCs), except in a federation of two, which is re-founded.
func (n *Node) checkRemove(now time.Time, p Proposal) ([]string, error) {
	self := n.h.Self
	var gone []string
	for _, name := range append([]string{p.Name}, p.Names...) {
		if name == "" || slices.Contains(gone, name) {
			continue
		}
		if err := vipsmart.ValidateName("name", name); err != nil {
			return nil, err
		}
		gone = append(gone, name)
	}
	sort.Strings(gone)
	if len(gone) == 0 {
		return nil, vipsmart.Errorf(vipsmart.EINVALID, "name", "no DC to remove: give the NAME of a member")
	}
	if len(gone) > 1 && !p.Force {
		return nil, vipsmart.Errorf(vipsmart.EINVALID, "name", "a plain removal takes one DC (it needs that DC's answer); several DCs at once only with --force")
	}
	var members []string
	for _, name := range gone {
		if name == self.Name {
			return nil, vipsmart.Errorf(vipsmart.EINVALID, "name", "%s is this DC: use dc leave to take this DC out of the federation", name)
		}
		if _, ok := findDC(n.h.Members, name); ok {
			members = append(members, name)
		} else if !p.Force {
			return nil, vipsmart.Errorf(vipsmart.ENOTFOUND, "name", "%s is not a member of federation %s (members: %s)", name, n.h.FedID, names(n.h.Members))
		}
	}
	if len(members) == 0 {
		return nil, vipsmart.Errorf(vipsmart.ENOTFOUND, "name", "%s is not a member of federation %s (members: %s)", strings.Join(gone, ", "), n.h.FedID, names(n.h.Members))
	}
	if !p.Force {
		return gone, nil
	}
	for _, name := range members {
		if pr := n.peers[name]; pr != nil && now.Sub(pr.lastSeen) <= n.window() {
			return nil, vipsmart.Errorf(vipsmart.ESTATE, "name", "%s is reachable (heard %s ago): --force is only for a member that cannot be reached; remove it with a plain dc remove %s", name, max(0, now.Sub(pr.lastSeen)).Round(time.Millisecond), name)
		}
	}
	stay := len(n.h.Members) - len(members)
	if len(n.h.Members) == 2 {
		return gone, nil // re-founded: see Propose
	}
	if 2*stay <= len(n.h.Members) {
		return nil, vipsmart.Errorf(vipsmart.ESTATE, "name", "a forced removal needs more than half of the members to stay and take part: removing %s leaves %d of %d; bring members back first (a forced removal of %d of %d DCs could split the federation)", strings.Join(members, ", "), stay, len(n.h.Members), len(members), len(n.h.Members))
	}
	if q := n.h.Quorum; len(q) > 0 {
		in := 0
		for _, name := range q {
			if _, ok := findDC(n.h.Members, name); ok && !slices.Contains(members, name) {
				in++
			}
		}
		if 2*in <= len(q) {
			return nil, vipsmart.Errorf(vipsmart.ESTATE, "name", "a forced removal needs more than half of the %d DCs that were members before the last forced removal of several DCs (%s) until an ordinary change commits: only %d of them would take part; make any change (for example a gip update) first", len(q), strings.Join(q, ", "), in)
		}
	}
	return gone, nil
}

func (n *Node) needMember(what string) error {
	if !n.h.memberish() {
		return vipsmart.Errorf(vipsmart.ESTATE, "", "%s is %s: it is in no federation, so it cannot %s", n.h.Self.Name, n.h.Status, what)
	}
	return nil
}

// checkOwnPlacements checks g against the coordinator's own VIPs, as every
// member does when it is asked for its lock.
func (n *Node) checkOwnPlacements(g *vipsmart.GIP) error {
	if e := n.ownPlacementProblem(g); e != nil {
		e.Message = n.h.Self.Name + " " + e.Message
		return e
	}
	return nil
}

func gipEqual(a, b vipsmart.GIP) bool {
	return a.Name == b.Name && a.Address == b.Address && a.Mode == b.Mode && a.Preempt == b.Preempt && slices.Equal(a.Placements, b.Placements) && a.Partition == b.Partition
}

func names(ds []vipsmart.DC) string {
	s := ""
	for i, d := range ds {
		if i > 0 {
			s += ", "
		}
		s += d.Name
	}
	return s
}

func describe(c Change) string {
	if c.By != "" {
		by := c.By
		c.By = ""
		return describe(c) + " (asked by " + by + ")"
	}
	switch c.Kind {
	case AddDC:
		s := "add " + c.DC.String()
		if c.Founder != nil {
			s += " (declaring a federation of " + c.Founder.Name + ")"
		}
		return s
	case RemoveDC:
		if c.Force {
			return "force-remove " + strings.Join(c.removed(), ", ")
		}
		return "remove " + c.Name
	case Leave:
		return c.Name + " leaves"
	case PutGIP:
		return "put GIP " + c.GIP.Name
	case DeleteGIP:
		return "delete GIP " + c.Name
	case ApplyGIPs:
		return describeBatch(c)
	case RotateIdentity:
		return "rotate the key of " + c.DC.Name + " to " + vipsmart.ShortIdentity(c.DC.Identity)
	case SetNodes:
		return fmt.Sprintf("record the node addresses of %s: %v", c.DC.Name, c.DC.Nodes)
	}
	return string(c.Kind)
}

// awaited returns the DCs whose answer the current phase waits for.
func (n *Node) awaited() []vipsmart.DC {
	o := n.op
	switch o.phase {
	case phInvite, phPrepare:
		return []vipsmart.DC{*o.cand}
	case phLock, phRelock:
		return o.parts
	case phProbe:
		out := make([]vipsmart.DC, 0, len(o.probes))
		for _, t := range o.probes {
			out = append(out, t.dc)
		}
		return out
	}
	return nil
}

func (n *Node) firstMissing() string {
	for _, d := range n.awaited() {
		if !n.op.acked[d.Name] {
			return d.Name
		}
	}
	return n.h.Self.Name
}

func (n *Node) enterPhase(now time.Time, p phase) {
	o := n.op
	o.phase, o.phaseStart = p, now
	clear(o.acked)
	if p == phLock || p == phRelock {
		if len(o.parts) == 0 {
			n.phaseDone(now)
			return
		}
	}
	n.sendPhase(now, false)
}

// sendPhase sends (or resends) the current phase's message to every DC
// that has not answered.
func (n *Node) sendPhase(now time.Time, resend bool) {
	o := n.op
	o.lastSend = now
	for _, d := range n.awaited() {
		if o.acked[d.Name] {
			continue
		}
		var m Message
		switch o.phase {
		case phInvite:
			m = n.newMsg(MsgInvite, d)
			m.Token = o.token
			m.Members = cloneDCs(n.h.Members)
			if len(m.Members) == 0 {
				m.Members = []vipsmart.DC{n.h.Self}
			}
		case phLock:
			m = n.newMsg(MsgLock, d)
		case phRelock, phPrepare:
			m = n.newMsg(MsgPrepare, d)
			if o.phase == phPrepare {
				st := *o.newState
				m.State = &st
			}
		case phProbe:
			m = n.newMsg(MsgProbe, d)
			for _, t := range o.probes {
				if t.dc.Name == d.Name {
					m.Doubts = t.doubts
				}
			}
		}
		c := o.change
		m.OpID, m.FedID, m.Epoch, m.ToEpoch, m.Change = o.id, o.fedID, o.from, o.to, &c
		n.send(m)
	}
}

// onResponse handles InviteResp, LockResp and PrepareResp.
func (n *Node) onResponse(now time.Time, m Message) {
	o := n.op
	if o == nil || m.OpID != o.id {
		return
	}
	if o.early != nil && o.phase != phPrepare && m.Type == MsgPrepareResp {
		// The answer to the prepare sent with the locks: counted only if
		// it accepts (a refusal comes again in the prepare phase).
		if m.OK && m.From.Name == o.cand.Name {
			o.earlyOK = true
		}
		return
	}
	want := map[phase]MsgType{phInvite: MsgInviteResp, phLock: MsgLockResp, phRelock: MsgPrepareResp, phPrepare: MsgPrepareResp, phProbe: MsgProbeResp}[o.phase]
	if m.Type != want {
		return
	}
	from := m.From.Name
	if o.phase == phInvite || o.phase == phPrepare {
		// The candidate may answer under another name (it refuses then).
		if from != o.cand.Name && m.From.AddrPort() != o.cand.AddrPort() {
			return
		}
		from = o.cand.Name
	} else if !slices.ContainsFunc(n.awaited(), func(d vipsmart.DC) bool { return d.Name == from }) {
		return
	}
	if !m.OK {
		if m.KnownSeq > n.h.Counter {
			// This DC counts below what the others heard of it (its store
			// was restored or rebuilt): count on past it. Every operation
			// up to there may have committed (Committed).
			n.h.Counter, n.h.Committed = m.KnownSeq, m.KnownSeq
			n.dirty = true
		}
		what := map[phase]string{phInvite: "invite", phLock: "lock", phRelock: "epoch raise", phPrepare: "prepare", phProbe: "probe"}[o.phase]
		var err *vipsmart.Error
		if m.Code == vipsmart.EBUSY {
			err = vipsmart.Errorf(vipsmart.EBUSY, "", "federation busy, retry: %s %s", m.From.Name, m.Reason)
		} else {
			code := m.Code
			if code == "" {
				code = vipsmart.ESTATE
			}
			err = vipsmart.Errorf(code, "", "%s (%s) refused the %s: it %s", m.From.Name, m.From.AddrPort(), what, m.Reason)
		}
		n.failOp(now, err)
		return
	}
	if o.acked[from] {
		return
	}
	o.acked[from] = true
	switch o.phase {
	case phInvite:
		n.noteWitness(m)
		n.noteNodes(m)
		if m.SenderEpoch > o.from {
			o.to = m.SenderEpoch + 1
		}
	case phLock:
		o.doubts = append(o.doubts, m.Doubts...)
	}
	for _, d := range n.awaited() {
		if !o.acked[d.Name] {
			return
		}
	}
	n.phaseDone(now)
}

func (n *Node) phaseDone(now time.Time) {
	o := n.op
	switch o.phase {
	case phInvite:
		// The lock was stored with this target at Propose: stored again
		// only if the candidate raised it (one write less on the path of
		// a dc add).
		if n.h.Lock.ToEpoch != o.to {
			n.h.Lock.ToEpoch = o.to
			n.dirty = true
		}
		n.enterPhase(now, phLock)
		n.prepareEarly()
	case phLock:
		if o.change.Force {
			if err := n.checkCandidates(); err != nil {
				n.failOp(now, err)
				return
			}
			if o.probes = n.probeTargets(); len(o.probes) > 0 {
				n.enterPhase(now, phProbe)
				return
			}
		}
		n.raiseEpoch(now)
	case phProbe:
		n.raiseEpoch(now)
	case phRelock:
		n.afterLocks(now)
	case phPrepare:
		n.commitOp(now)
	}
}

// doubtsOfRemoved returns the doubts (this DC's and those its
// participants reported) about operations at the removal's epoch that a
// DC it removes coordinated: they may have committed.
func (n *Node) doubtsOfRemoved() []Doubt {
	o := n.op
	var out []Doubt
	for _, d := range append(slices.Clone(n.h.Doubts), o.doubts...) {
		if d.FedID == o.fedID && d.Epoch == o.from && o.change.removes(d.Coordinator) {
			out = append(out, d)
		}
	}
	return out
}

// raiseEpoch applies the forced-removal epoch rule: if anyone doubts an
// operation of a removed DC at this epoch, the removal commits past the
// epoch that operation may have committed, after telling every
// participant the raised target.
func (n *Node) raiseEpoch(now time.Time) {
	o := n.op
	if o.change.Force {
		to := o.to
		for _, d := range n.doubtsOfRemoved() {
			to = max(to, d.ToEpoch+1)
		}
		if to != o.to {
			o.to = to
			n.h.Lock.ToEpoch = to
			n.dirty = true
			n.enterPhase(now, phRelock)
			return
		}
	}
	n.afterLocks(now)
}

// checkCandidates checks the names of a forced removal that are not
// members: each must be the candidate of an add in doubt of a removed
// member (the operator removes it too, rather than waiting for it).
func (n *Node) checkCandidates() *vipsmart.Error {
	o := n.op
	for _, name := range o.change.removed() {
		if _, ok := findDC(n.h.Members, name); ok {
			continue
		}
		if !slices.ContainsFunc(n.doubtsOfRemoved(), func(d Doubt) bool { return d.Change.Kind == AddDC && d.Change.DC != nil && d.Change.DC.Name == name }) {
			return vipsmart.Errorf(vipsmart.ENOTFOUND, "name", "%s is not a member of federation %s (members: %s), nor the candidate of an add in doubt of a DC this removal removes", name, n.h.FedID, names(n.h.Members))
		}
	}
	return nil
}

// probeTargets returns the candidates of the adds in doubt of the removed
// DCs (not removed themselves): such a candidate may hold the add
// (acknowledged to the operator), so the removal asks it first.
func (n *Node) probeTargets() []probeTarget {
	o := n.op
	var out []probeTarget
	for _, d := range n.doubtsOfRemoved() {
		if d.Change.Kind != AddDC || d.Change.DC == nil {
			continue
		}
		k := *d.Change.DC
		if _, member := findDC(n.h.Members, k.Name); member || k.Name == n.h.Self.Name || o.change.removes(k.Name) {
			continue
		}
		i := slices.IndexFunc(out, func(t probeTarget) bool { return t.dc.Name == k.Name })
		if i < 0 {
			out = append(out, probeTarget{dc: k})
			i = len(out) - 1
		}
		if !slices.ContainsFunc(out[i].doubts, func(x Doubt) bool { return x.OpID == d.OpID }) {
			out[i].doubts = append(out[i].doubts, d)
		}
	}
	return out
}

func (n *Node) afterLocks(now time.Time) {
	o := n.op
	if o.cand == nil {
		n.commitOp(now)
		return
	}
	if e := o.early; e != nil {
		// The state sent early must be the state of the add now: the
		// GIPs unchanged since (their version; comparing 10,000 of them
		// would cost milliseconds), the rest compared field by field.
		rest, cur := *e, n.addState(false)
		rest.GIPs = nil
		if o.earlyGIPs != n.gipVersion || !reflect.DeepEqual(rest, *cur) {
			// Cannot happen while this DC holds its own lock; but the
			// candidate may have acknowledged the other state: start over.
			n.failOp(now, vipsmart.Errorf(vipsmart.EBUSY, "", "federation busy, retry: the federation changed during operation %s", o.id))
			return
		}
		if o.earlyOK {
			n.commitOp(now)
			return
		}
		o.newState = e
	} else {
		o.newState = n.addState(true)
	}
	n.enterPhase(now, phPrepare)
}

// addState is the state an add gives the candidate in its prepare (its
// GIPs only if withGIPs).
func (n *Node) addState(withGIPs bool) *State {
	o := n.op
	d := n.decision()
	members := applyMembers(n.h.Members, o.change)
	var gips []vipsmart.GIP
	if withGIPs && o.change.Founder == nil {
		gips = sortedGIPs(n.gips)
	}
	return &State{FedID: o.fedID, Epoch: o.to, Members: members, GIPs: gips, Last: &d, Founding: n.h.Founding}
}

// prepareEarly sends an add's prepare to the candidate together with the
// locks, once the candidate accepted the invite: the candidate holds the
// state in memory only (it stores nothing before answering), so its
// round trip runs during the lock phase instead of after it. The state
// cannot change while this DC holds its own lock (afterLocks checks it);
// the prepare phase still runs when the candidate has not acknowledged
// by the time every member is locked.
func (n *Node) prepareEarly() {
	o := n.op
	if o == nil || o.phase != phLock || o.cand == nil || o.change.Force || len(o.parts) == 0 {
		return
	}
	o.early, o.earlyGIPs = n.addState(true), n.gipVersion
	m := n.newMsg(MsgPrepare, *o.cand)
	st := *o.early
	m.State = &st
	c := o.change
	m.OpID, m.FedID, m.Epoch, m.ToEpoch, m.Change = o.id, o.fedID, o.from, o.to, &c
	n.send(m)
}

func (n *Node) decision() Decision {
	o := n.op
	return Decision{FedID: o.fedID, FromEpoch: o.from, ToEpoch: o.to, OpID: o.id, Coordinator: n.h.Self.Name, Change: o.change, Seq: n.h.Counter}
}

// commitOp is the decision: the coordinator commits locally.
func (n *Node) commitOp(now time.Time) {
	o := n.op
	if !now.Before(n.h.Lock.Deadline) {
		n.failOp(now, vipsmart.Errorf(vipsmart.ETIMEOUT, "", "operation %s did not finish before its lock expired (%s); it was rolled back", o.id, n.ttl(o.change)))
		return
	}
	d := n.decision()
	oldMembers := n.h.Members
	n.h.Committed = n.h.Counter // the sequence number of this operation (the last one started)
	n.op = nil
	n.h.Coord = nil
	n.h.Lock = nil
	if o.change.Founder != nil {
		n.h.FedID = o.fedID
		n.h.Members = applyMembers(nil, o.change)
		n.setEpoch(o.to)
		n.h.Last = &d
		n.h.Invite = nil
		n.dirty = true
		n.setStatus(now, vipsmart.StatusMember, o.id, "declared federation "+o.fedID)
	} else {
		n.applyDecision(now, d)
	}
	n.results = append(n.results, Result{OpID: o.id})
	n.event(now, vipsmart.EventFederation, o.id, fmt.Sprintf("operation %s committed at epoch %d: %s", o.id, o.to, describe(o.change)))
	targets := slices.Clone(oldMembers)
	if o.cand != nil {
		targets = append(targets, *o.cand)
	}
	for _, t := range targets {
		if t.Name == n.h.Self.Name {
			continue
		}
		m := n.newMsg(MsgCommit, t)
		dd := slimDecision(d)
		m.OpID, m.Last, m.Founding = o.id, &dd, n.h.Founding
		n.send(m)
	}
}

// failOp fails the running operation and aborts every lock it took.
func (n *Node) failOp(now time.Time, err *vipsmart.Error) {
	o := n.op
	if o == nil {
		return
	}
	n.op = nil
	if c := n.h.Coord; c != nil {
		n.abort(now, o.id, o.fedID, o.from, c.Participants)
	}
	n.h.Coord = nil
	n.dirty = true
	if n.h.Lock != nil && n.h.Lock.OpID == o.id {
		n.releaseLock(now, "operation "+o.id+" failed")
	}
	n.results = append(n.results, Result{OpID: o.id, Err: err})
	n.event(now, vipsmart.EventFederation, o.id, fmt.Sprintf("operation %s failed: %s", o.id, err.Message))
}

// abort sends the abort of an operation to its participants, and keeps
// resending it (see resendAborts) until each answered.
func (n *Node) abort(now time.Time, opID, fed string, epoch uint64, to []vipsmart.DC) {
	if len(to) == 0 {
		return
	}
	a := abortRec{OpID: opID, FedID: fed, Epoch: epoch, To: cloneDCs(to), Until: now.Add(2 * max(n.cfg.InviteTTL, n.cfg.ReviewTTL))}
	n.h.Aborts = append(n.h.Aborts, a)
	if len(n.h.Aborts) > 32 {
		n.h.Aborts = n.h.Aborts[len(n.h.Aborts)-32:]
	}
	n.dirty = true
	n.sendAborts(a)
	n.lastAbrt = now
}

func (n *Node) sendAborts(a abortRec) {
	for _, t := range a.To {
		m := n.newMsg(MsgAbort, t)
		m.OpID, m.FedID, m.Epoch = a.OpID, a.FedID, a.Epoch
		n.send(m)
	}
}

// resendAborts resends the unanswered aborts every heartbeat interval,
// and forgets those whose time is up (every lock granted for them has
// expired by then).
func (n *Node) resendAborts(now time.Time) {
	if len(n.h.Aborts) == 0 {
		return
	}
	if slices.ContainsFunc(n.h.Aborts, func(a abortRec) bool { return !now.Before(a.Until) }) {
		n.h.Aborts = slices.DeleteFunc(n.h.Aborts, func(a abortRec) bool { return !now.Before(a.Until) })
		n.dirty = true
	}
	if now.Sub(n.lastAbrt) < n.cfg.HeartbeatInterval && !now.Before(n.lastAbrt) {
		return
	}
	n.lastAbrt = now
	for _, a := range n.h.Aborts {
		n.sendAborts(a)
	}
}

// ReportUndelivered tells the node that the transport could not deliver m
// (reason says why). Like ReportUnreachable, but a message of another
// operation (an abort being resent), or one to another DC under the name
// the operation waits for (a candidate with another key or address),
// fails nothing.
func (n *Node) ReportUndelivered(now time.Time, m Message, reason string) {
	o := n.op
	if o == nil || (m.OpID != "" && m.OpID != o.id) {
		return
	}
	if d, ok := n.dcByName(m.To.Name); !ok || d.AddrPort() != m.To.AddrPort() || d.Identity != m.To.Identity {
		return
	}
	n.ReportUnreachable(now, m.To.Name, reason)
}

// ReportUnreachable tells the node that the transport could not deliver to
// dc: an operation waiting for dc fails at once with that reason.
func (n *Node) ReportUnreachable(now time.Time, dc string, reason string) {
	n.now = now
	o := n.op
	if o == nil || o.acked[dc] {
		return
	}
	if !slices.ContainsFunc(n.awaited(), func(d vipsmart.DC) bool { return d.Name == dc }) {
		return
	}
	d, _ := n.dcByName(dc)
	if o.phase == phProbe {
		n.failOp(now, vipsmart.Errorf(vipsmart.EUNAVAILABLE, "", "%s could not be reached: %s; %s", n.probeWhat(dc), reason, n.probeAdvice(dc)))
		return
	}
	n.failOp(now, vipsmart.Errorf(vipsmart.EUNAVAILABLE, "", "%s (%s) could not be reached during the %s: %s; the operation was rolled back", dc, d.AddrPort(), o.phase, reason))
}

// probeWhat and probeAdvice phrase the failure of a probe of candidate dc.
func (n *Node) probeWhat(dc string) string {
	for _, t := range n.op.probes {
		if t.dc.Name == dc {
			d := t.doubts[0]
			return fmt.Sprintf("%s (%s), which operation %s of %s may have added (the members are in doubt about it),", dc, t.dc.AddrPort(), d.OpID, d.Coordinator)
		}
	}
	return dc
}

func (n *Node) probeAdvice(dc string) string {
	return fmt.Sprintf("it may hold that change, which the forced removal would lose. Bring %s back and retry (the members then catch up from it), or, if it is gone for good, remove it as well: dc remove --force %s,%s", dc, strings.Join(n.op.change.removed(), ","), dc)
}
