package federation

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// TestNodesRecorded: a founder lists its nodes in the founding add, a
// candidate's invite answer carries its nodes into the add, and SetNodes
// changes the coordinator's entry on every member, one epoch step.
func TestNodesRecorded(t *testing.T) {
	a := newAuthNet(t, 3)
	a.nodes["dc-1"].SetLocalNodes([]netip.AddrPort{ap("127.0.1.1:9610"), ap("127.0.0.1:9610")})
	a.nodes["dc-2"].SetLocalNodes([]netip.AddrPort{ap("127.0.0.2:9610"), ap("127.0.2.2:9610"), ap("127.0.1.2:9610")})
	a.nodes["dc-3"].SetLocalNodes([]netip.AddrPort{ap("127.0.0.3:9610")}) // one node: the one-address form
	a.federate(3)
	want1 := []netip.AddrPort{ap("127.0.0.1:9610"), ap("127.0.1.1:9610")}
	want2 := []netip.AddrPort{ap("127.0.0.2:9610"), ap("127.0.1.2:9610"), ap("127.0.2.2:9610")}
	nodesOf := func(at, dc string) []netip.AddrPort {
		d, _ := findDC(a.nodes[at].h.Members, dc)
		return d.Nodes
	}
	for _, at := range []string{"dc-1", "dc-2", "dc-3"} {
		if got := nodesOf(at, "dc-1"); !slices.Equal(got, want1) {
			t.Fatalf("%s lists dc-1's nodes %v, want %v (the founder's)", at, got, want1)
		}
		if got := nodesOf(at, "dc-2"); !slices.Equal(got, want2) {
			t.Fatalf("%s lists dc-2's nodes %v, want %v (from its invite answer)", at, got, want2)
		}
		if got := nodesOf(at, "dc-3"); got != nil {
			t.Fatalf("%s lists dc-3's nodes %v, want none", at, got)
		}
	}
	// Nothing changed: no proposal.
	if _, ok := a.nodes["dc-2"].NodesChanged(); ok {
		t.Fatal("dc-2 proposes its nodes though they are committed")
	}
	epoch := a.nodes["dc-1"].h.Epoch
	// A node of dc-2 leaves: dc-2 records the two left.
	a.nodes["dc-2"].SetLocalNodes([]netip.AddrPort{ap("127.0.0.2:9610"), ap("127.0.2.2:9610")})
	p, ok := a.nodes["dc-2"].NodesChanged()
	if !ok {
		t.Fatal("dc-2 does not propose its changed nodes")
	}
	if err := a.do("dc-2", p); err != nil {
		t.Fatal(err)
	}
	a.run(time.Second)
	for _, at := range []string{"dc-1", "dc-2", "dc-3"} {
		n := a.nodes[at]
		if got := nodesOf(at, "dc-2"); !slices.Equal(got, []netip.AddrPort{ap("127.0.0.2:9610"), ap("127.0.2.2:9610")}) {
			t.Fatalf("%s lists dc-2's nodes %v after the change", at, got)
		}
		if n.h.Epoch != epoch+1 {
			t.Fatalf("%s at epoch %d, want %d (one step)", at, n.h.Epoch, epoch+1)
		}
		if got := nodesOf(at, "dc-1"); !slices.Equal(got, want1) {
			t.Fatalf("%s: dc-2's change touched dc-1's nodes: %v", at, got)
		}
	}
	// Refusals at the proposer: another DC's nodes, an address of
	// another member, too many, unchanged.
	other := authDC(1)
	other.Nodes = []netip.AddrPort{ap("127.0.9.9:9610")}
	if _, err := a.nodes["dc-2"].Propose(a.now, Proposal{Kind: SetNodes, DC: other}); vipsmart.ErrorCodeOf(err) != vipsmart.EINVALID {
		t.Fatalf("dc-2 recording dc-1's nodes: %v", err)
	}
	me := authDC(2)
	me.Nodes = []netip.AddrPort{ap("127.0.0.2:9610"), ap("127.0.0.1:9610")}
	if _, err := a.nodes["dc-2"].Propose(a.now, Proposal{Kind: SetNodes, DC: me}); vipsmart.ErrorCodeOf(err) != vipsmart.ECONFLICT {
		t.Fatalf("dc-2 naming dc-1's address as a node: %v", err)
	}
	me.Nodes = nil
	for i := range vipsmart.MaxDCNodes + 1 {
		me.Nodes = append(me.Nodes, netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 3, byte(i + 1)}), 9610))
	}
	if _, err := a.nodes["dc-2"].Propose(a.now, Proposal{Kind: SetNodes, DC: me}); vipsmart.ErrorCodeOf(err) != vipsmart.EINVALID {
		t.Fatalf("dc-2 naming %d nodes: %v", len(me.Nodes), err)
	}
	me.Nodes = nodesOf("dc-2", "dc-2")
	if _, err := a.nodes["dc-2"].Propose(a.now, Proposal{Kind: SetNodes, DC: me}); vipsmart.ErrorCodeOf(err) != vipsmart.EINVALID {
		t.Fatalf("dc-2 recording its committed nodes again: %v", err)
	}
}

// TestNodesOnlyOwn: at the edge, a change, decision or doubt in which a
// coordinator sets another DC's node addresses is malformed, as are
// node addresses that are not IP:PORT host addresses, each once.
func TestNodesOnlyOwn(t *testing.T) {
	victim := authDC(1)
	victim.Nodes = []netip.AddrPort{ap("127.0.0.1:9610"), ap("192.0.2.66:9610")}
	c := Change{Kind: SetNodes, DC: &victim}
	lock := Message{Type: MsgLock, From: authDC(2), To: authDC(1), FedID: "f-1", OpID: "dc-2-1", Epoch: 3, Change: &c}
	if err := lock.Validate(); err == nil || !strings.Contains(err.Error(), "only its own") {
		t.Fatalf("a lock of dc-2 setting dc-1's nodes: %v", err)
	}
	own := victim
	own.Name, own.Address = "dc-2", netip.MustParseAddr("127.0.0.2")
	own.Identity = authDC(2).Identity
	c2 := Change{Kind: SetNodes, DC: &own}
	ok := lock
	ok.Change = &c2
	if err := ok.Validate(); err != nil {
		t.Fatalf("a lock of dc-2 setting its own nodes: %v", err)
	}
	hb := Message{Type: MsgHeartbeat, From: authDC(2), To: authDC(1), Last: &Decision{FedID: "f-1", FromEpoch: 3, ToEpoch: 4, OpID: "dc-2-1", Coordinator: "dc-2", Change: c}}
	if err := hb.Validate(); err == nil {
		t.Fatal("a decision of dc-2 setting dc-1's nodes was accepted")
	}
	lr := Message{Type: MsgLockResp, From: authDC(3), To: authDC(1), OpID: "dc-1-1", Doubts: []Doubt{{FedID: "f-1", Epoch: 3, ToEpoch: 4, OpID: "dc-2-1", Coordinator: "dc-2", Change: c}}}
	if err := lr.Validate(); err == nil {
		t.Fatal("a doubt of dc-2 setting dc-1's nodes was accepted")
	}
	for _, bad := range [][]netip.AddrPort{
		{ap("127.0.0.5:0")},
		{ap("0.0.0.0:9610")},
		{ap("127.0.0.5:9610"), ap("127.0.0.5:9610")},
	} {
		d := own
		d.Nodes = bad
		if err := d.Validate(); err == nil {
			t.Fatalf("nodes %v accepted", bad)
		}
	}
}
