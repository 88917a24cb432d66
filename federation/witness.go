package federation

import "github.com/vipsmart/vipsmart"

// A witness (vipsmart.DC.Witness, serve --witness) is a member like any
// other for the protocol (it locks, commits, heartbeats and counts in the
// majority of consistent GIPs) but holds no placement. It says so in its
// own DC (From) when it answers an invite; the coordinator records it in
// the candidate it commits, so every member's list shows it.

// noteWitness records, from the candidate's answer to the invite, whether
// it is a witness.
func (n *Node) noteWitness(m Message) {
	o := n.op
	if o == nil || o.cand == nil || o.change.DC == nil {
		return
	}
	o.cand.Witness = m.From.Witness
	dc := *o.change.DC
	dc.Witness = m.From.Witness
	o.change.DC = &dc
	if l := n.h.Lock; l != nil && l.Own && l.OpID == o.id {
		if l.Change.DC == nil || l.Change.DC.Witness != dc.Witness {
			n.dirty = true // stored only if it changed
		}
		l.Change.DC = &dc
	}
}

// witnessPlacementProblem refuses, on a witness, a GIP placed on it.
func (n *Node) witnessPlacementProblem(g *vipsmart.GIP) *vipsmart.Error {
	if g == nil || !n.h.Self.Witness {
		return nil
	}
	for _, p := range g.Placements {
		if p.DC == n.h.Self.Name {
			return vipsmart.Errorf(vipsmart.EINVALID, "placements", "is a witness (serve --witness): it only votes and holds no GIP (place GIP %s in other DCs)", g.Name)
		}
	}
	return nil
}
