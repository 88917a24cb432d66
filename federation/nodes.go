package federation

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/vipsmart/vipsmart"
)

// A DC run by several nodes (docs/ha.md) keeps the federation addresses
// of its nodes in its member record (vipsmart.DC.Nodes), so that peers
// reach it through any of them. The record changes only as every record
// does, all or nothing, one epoch step:
//
//   - a DC that founds a federation lists its nodes in the founding add;
//   - a candidate names its nodes in its answer to the invite, and the
//     coordinator records them with the add (so `dc add` of any one node
//     records all of them);
//   - afterwards the DC itself proposes SetNodes when its live node set
//     changes (the daemon watches it and decides when, daemon/nodes.go).
//
// Rules, checked at the edge (Message.Validate, Propose): a SetNodes
// changes only the node addresses of its coordinator (no DC changes
// another's), its addresses are host addresses with a port, each once,
// at most vipsmart.MaxDCNodes, none the address of another member. The
// state machine never dials them: which address a message goes to is
// the transport's choice.

// SetLocalNodes tells the node the federation addresses of its DC's live
// nodes (this one included). A DC of one node never calls it. They are
// named in invite answers and in a founding add, and compared by
// NodesChanged; nothing is persisted.
func (n *Node) SetLocalNodes(addrs []netip.AddrPort) {
	n.localNodes = slices.Clone(addrs)
	slices.SortFunc(n.localNodes, func(a, b netip.AddrPort) int { return a.Compare(b) })
	n.localNodes = slices.Compact(n.localNodes)
}

// localNodesOK is the local node set as a member record whose address is
// primary lists it (vipsmart.NormalizeNodes), or none if it is not fit
// for a member record (it would be refused at the edge).
func (n *Node) localNodesOK(primary netip.AddrPort) []netip.AddrPort {
	nodes := vipsmart.NormalizeNodes(primary, n.localNodes)
	if vipsmart.ValidateNodes("nodes", nodes) != nil {
		return nil
	}
	return nodes
}

// NodesChanged returns the proposal that records the local node set
// (SetLocalNodes) in this DC's member record, if the committed record
// lists other addresses and this DC is a member; ok is false otherwise.
// The caller decides when to propose it (debounced, retried).
func (n *Node) NodesChanged() (p Proposal, ok bool) {
	if !n.h.memberish() {
		return Proposal{}, false
	}
	me, found := findDC(n.h.Members, n.h.Self.Name)
	if !found || n.localNodes == nil {
		return Proposal{}, false
	}
	nodes := n.localNodesOK(me.AddrPort())
	if slices.Equal(me.Nodes, nodes) {
		return Proposal{}, false
	}
	me.Nodes = nodes
	return Proposal{Kind: SetNodes, DC: me}, true
}

// proposeNodes checks a SetNodes proposal and returns its change.
func (n *Node) proposeNodes(p Proposal) (Change, error) {
	self := n.h.Self
	if err := n.needMember("record its node addresses"); err != nil {
		return Change{}, err
	}
	if p.DC.Name != self.Name {
		return Change{}, vipsmart.Errorf(vipsmart.EINVALID, "name", "a DC records only its own node addresses (%s, not %s)", self.Name, p.DC.Name)
	}
	me, _ := findDC(n.h.Members, self.Name)
	nodes := vipsmart.NormalizeNodes(me.AddrPort(), p.DC.Nodes)
	if err := vipsmart.ValidateNodes("nodes", nodes); err != nil {
		return Change{}, err
	}
	if slices.Equal(me.Nodes, nodes) {
		return Change{}, vipsmart.Errorf(vipsmart.EINVALID, "nodes", "%s's member record already lists these node addresses", self.Name)
	}
	if err := nodesConflict(n.h.Members, self.Name, nodes); err != nil {
		return Change{}, err
	}
	d := me
	d.Nodes = nodes
	return Change{Kind: SetNodes, DC: &d}, nil
}

// nodesConflict refuses node addresses of DC name that are the address,
// or a node address, of another member.
func nodesConflict(members []vipsmart.DC, name string, nodes []netip.AddrPort) error {
	for _, m := range members {
		if m.Name == name {
			continue
		}
		for _, a := range nodes {
			if a == m.AddrPort() || slices.Contains(m.Nodes, a) {
				return vipsmart.Errorf(vipsmart.ECONFLICT, "nodes", "node address %s is already an address of member %s", a, m.Name)
			}
		}
	}
	return nil
}

// noteNodes records the node addresses a candidate named in its answer
// to the invite on the add in progress (as noteWitness).
func (n *Node) noteNodes(m Message) {
	o := n.op
	if o == nil || o.cand == nil || o.change.DC == nil {
		return
	}
	nodes := vipsmart.NormalizeNodes(o.cand.AddrPort(), m.From.Nodes)
	if vipsmart.ValidateNodes("nodes", nodes) != nil || nodesConflict(n.h.Members, o.cand.Name, nodes) != nil {
		nodes = nil // the add goes on with the one address the operator gave
	}
	o.cand.Nodes = nodes
	dc := *o.change.DC
	dc.Nodes = slices.Clone(nodes)
	o.change.DC = &dc
	if l := n.h.Lock; l != nil && l.Own && l.OpID == o.id {
		if l.Change.DC == nil || !slices.Equal(l.Change.DC.Nodes, dc.Nodes) {
			n.dirty = true // stored only if it changed
		}
		l.Change.DC = &dc
	}
}

// validateNodesChange is the edge rule of a SetNodes change coordinated
// by coord: it may name only coord's own addresses.
func validateNodesChange(c *Change, coord string) error {
	if c == nil || c.Kind != SetNodes || c.DC == nil || c.DC.Name == coord {
		return nil
	}
	return fmt.Errorf("%s would change the node addresses of %s: a DC records only its own", coord, c.DC.Name)
}

// inviteNodes are the node addresses a candidate names in its answer to
// an invite: all of them (the coordinator leaves out the one it was
// given, vipsmart.NormalizeNodes).
func (n *Node) inviteNodes() []netip.AddrPort { return n.localNodesOK(netip.AddrPort{}) }
