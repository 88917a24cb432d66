package federation

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/vipsmart/vipsmart"
)

// The simulation's DCs run several nodes (nodes.go): dc-i's nodes are
// at 10.0.0.i (its address), 10.1.0.i and 10.2.0.i. A DC's live node set
// changes at random (on every start, and as an operator command), it
// proposes SetNodes, and invites carry the candidate's set. The checker
// adds one rule: a member record lists, for DC X, only a node set that X
// itself named (nodeSets), never another DC's.

// simNodePool returns the node addresses dc-i may run on.
func simNodePool(d *simDC) []netip.AddrPort {
	a := d.dc.Address.As4()
	var out []netip.AddrPort
	for k := range byte(3) {
		out = append(out, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, k, 0, a[3]}), d.dc.Port))
	}
	return out
}

// randomNodes picks a non-empty subset of d's node pool.
func (s *sim) randomNodes(d *simDC) []netip.AddrPort {
	var out []netip.AddrPort
	for _, a := range simNodePool(d) {
		if s.rng.IntN(2) == 0 {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		out = simNodePool(d)[:1]
	}
	return out
}

func nodesKey(nodes []netip.AddrPort) string { return fmt.Sprint(nodes) }

// setLocalNodes gives d a new live node set and remembers it as named by
// d.
func (s *sim) setLocalNodes(d *simDC) {
	nodes := s.randomNodes(d)
	d.node.SetLocalNodes(nodes)
	s.named(d.dc.Name, vipsmart.NormalizeNodes(d.dc.AddrPort(), nodes))
	s.tracef("NODES %s: %v", d.dc.Name, nodes)
}

func (s *sim) named(dc string, nodes []netip.AddrPort) {
	if s.nodeSets == nil {
		s.nodeSets = map[string]map[string]bool{}
	}
	if s.nodeSets[dc] == nil {
		s.nodeSets[dc] = map[string]bool{}
	}
	s.nodeSets[dc][nodesKey(nodes)] = true
}

// nodesProposal is the operator command that records d's node set: most
// often the set changes first (a node joined or left) and d proposes
// what NodesChanged says; sometimes the current set again (refused as
// unchanged), or an address of another DC (refused as a conflict).
func (s *sim) nodesProposal(d *simDC) Proposal {
	switch s.rng.IntN(8) {
	case 0:
		me, _ := findDC(d.node.h.Members, d.dc.Name)
		return Proposal{Kind: SetNodes, DC: me}
	case 1:
		other := s.dcs[s.rng.IntN(len(s.dcs))]
		me := d.dc
		me.Nodes = []netip.AddrPort{d.dc.AddrPort(), other.dc.AddrPort()}
		if other != d {
			s.named(d.dc.Name, vipsmart.NormalizeNodes(d.dc.AddrPort(), me.Nodes)) // refused unless other left; then it is d's to name
		}
		return Proposal{Kind: SetNodes, DC: me}
	}
	s.setLocalNodes(d)
	if p, ok := d.node.NodesChanged(); ok {
		return p
	}
	me, _ := findDC(d.node.h.Members, d.dc.Name)
	return Proposal{Kind: SetNodes, DC: me}
}

// checkNodes: every member record d holds lists for each DC a node set
// that DC named itself.
func (s *sim) checkNodes(d *simDC) {
	for _, m := range d.node.h.Members {
		if len(m.Nodes) == 0 {
			continue
		}
		if !s.nodeSets[m.Name][nodesKey(m.Nodes)] {
			s.failf("%s's record lists nodes %v for %s, which %s never named", d.dc.Name, m.Nodes, m.Name, m.Name)
		}
		if err := vipsmart.ValidateNodes("nodes", m.Nodes); err != nil || !slices.IsSortedFunc(m.Nodes, func(a, b netip.AddrPort) int { return a.Compare(b) }) {
			s.failf("%s's record lists bad nodes %v for %s: %v", d.dc.Name, m.Nodes, m.Name, err)
		}
	}
}
