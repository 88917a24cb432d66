package daemon

import (
	"fmt"
	"slices"
	"strings"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/federation"
)

// quorumState is what the last evaluation decided for the GIPs with the
// consistent partition policy (federation/quorum.go has the rule).
type quorumState struct {
	view federation.QuorumView
	why  map[string]federation.ConsistentState
	// consistent: whether the federation holds any consistent GIP (then
	// the loop evaluates at every tick: leases run out with time).
	consistent bool
}

// quorumView is view as consistent GIPs see it: a member counts as
// unreachable only once a majority has lost it (before, it may still hold
// its GIPs, and the majority waits).
func quorumView(view vipsmart.HealthView, qv federation.QuorumView, self string) vipsmart.HealthView {
	out := vipsmart.HealthView{Reachable: make(map[string]bool, len(view.Reachable)), VIPUp: view.VIPUp}
	for dc := range view.Reachable {
		out.Reachable[dc] = dc == self || !slices.Contains(qv.Lost, dc)
	}
	return out
}

// applyQuorum decides the consistent GIPs of gs: act (computed from the
// local view) is replaced, for each, by the placement chosen under the
// quorum view, without this DC unless the quorum rule makes it active.
// It runs at every evaluation, even without consistent GIPs, so that the
// events record every change of the majority.
func (d *Daemon) applyQuorum(gs []vipsmart.GIP, act map[string][]string, view vipsmart.HealthView) {
	now := d.cfg.Now()
	self := d.cfg.Self.Name
	qv := d.node.Quorum(now)
	qview := quorumView(view, qv, self)
	var cgs []federation.ConsistentGIP
	d.q.consistent = false
	for _, g := range gs {
		if !g.Consistent() {
			continue
		}
		d.q.consistent = true
		a := vipsmart.ActivePlacements(g, qview, d.prevActive(g, qview))
		act[g.Name] = a
		cg := federation.ConsistentGIP{Name: g.Name, Chosen: slices.Contains(a, self)}
		for _, p := range g.Placements {
			if p.DC != self {
				cg.Others = append(cg.Others, p.DC)
			}
		}
		cgs = append(cgs, cg)
	}
	d.q.view, d.q.why = d.node.Consistent(now, cgs)
	for _, cg := range cgs {
		if cg.Chosen && !d.q.why[cg.Name].Active {
			act[cg.Name] = slices.DeleteFunc(act[cg.Name], func(s string) bool { return s == self })
		}
	}
}

// quorumKey is the part of activeKey that the quorum adds: with consistent
// GIPs the evaluation runs at every tick (leases run out with time);
// without, it runs when the majority or the lost members change.
func (d *Daemon) quorumKey() string {
	now := d.cfg.Now()
	if d.q.consistent {
		return "|q:" + now.String()
	}
	v := d.node.Quorum(now)
	return fmt.Sprintf("|q:%t:%v", v.InMajority, v.Lost)
}

// standbyAllowed reports whether this DC may pre-announce a standby
// placement of g: a consistent GIP only where the DC is in the majority.
func (d *Daemon) standbyAllowed(g vipsmart.GIP) bool {
	return !g.Consistent() || d.q.view.InMajority
}

// quorumInfo is what gip show says of a consistent GIP here: whether this
// DC is in the majority and why it is or is not active.
func (d *Daemon) quorumInfo(g vipsmart.GIP, active []string) *vipsmart.GIPQuorum {
	if !g.Consistent() {
		return nil
	}
	self := d.cfg.Self.Name
	v := d.q.view
	q := &vipsmart.GIPQuorum{InMajority: v.InMajority, Members: v.Members, Supporters: slices.Clone(v.Supporters), Lost: slices.Clone(v.Lost)}
	if q.Supporters == nil {
		q.Supporters = []string{}
	}
	if q.Lost == nil {
		q.Lost = []string{}
	}
	st := d.q.why[g.Name]
	switch {
	case d.cfg.Self.Witness:
		q.Why = "this DC is a witness: it only votes"
	case !slices.ContainsFunc(g.Placements, func(p vipsmart.Placement) bool { return p.DC == self }):
		q.Why = "no placement here; " + v.Why()
	case slices.Contains(active, self):
		q.Why = "active here: " + v.Why() + ", and no other placement can hold it"
	case !v.InMajority:
		q.Why = "inactive here: " + v.Why() + " (a DC out of the majority announces no consistent GIP, not even as standby)"
	case st.Why != "":
		q.Why = "inactive here: " + st.Why
	default:
		q.Why = "inactive here: another placement is chosen; " + v.Why()
	}
	return q
}

// checkWitnessPlacements refuses a placement on a witness member.
func (d *Daemon) checkWitnessPlacements(g vipsmart.GIP) error {
	st := d.node.Status(d.cfg.Now())
	if st.Federation == nil {
		return nil
	}
	var w []string
	for _, m := range st.Federation.Members {
		if m.Witness && slices.ContainsFunc(g.Placements, func(p vipsmart.Placement) bool { return p.DC == m.Name }) {
			w = append(w, m.Name)
		}
	}
	if len(w) > 0 {
		return vipsmart.Errorf(vipsmart.EINVALID, "placements", "%s is a witness (serve --witness): it only votes and holds no GIP; place the GIP in other DCs", strings.Join(w, ", "))
	}
	return nil
}

// refuseOnWitness refuses VIPs on a witness.
func (d *Daemon) refuseOnWitness() error {
	if d.cfg.Self.Witness {
		return vipsmart.Errorf(vipsmart.ESTATE, "", "%s is a witness (serve --witness): it holds no VIPs and announces nothing", d.cfg.Self.Name)
	}
	return nil
}

// samePartition compares policies, "" counting as available.
func samePartition(a, b vipsmart.GIP) bool {
	pa, pb := a.Partition, b.Partition
	if pa == "" {
		pa = vipsmart.PartitionAvailable
	}
	if pb == "" {
		pb = vipsmart.PartitionAvailable
	}
	return pa == pb
}

// inactiveReason says why this DC just became inactive for g (the event):
// for a consistent GIP that its view still chooses, the quorum's reason.
func (d *Daemon) inactiveReason(g vipsmart.GIP, view vipsmart.HealthView, act []string) string {
	if g.Consistent() {
		if st, ok := d.q.why[g.Name]; ok && st.Why != "" {
			return st.Why
		}
	}
	return vipsmart.ExplainPlacements(g, view, act)[d.cfg.Self.Name]
}
