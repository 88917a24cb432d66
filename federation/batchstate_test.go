package federation

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/vipsmart/vipsmart"
)

// bigGIP is GIP i with a name of 63 characters, an IPv6 address and a
// placement on each of dcs naming a VIP of 63 characters: about 580
// bytes of estimated JSON.
func bigGIP(i int, dcs ...string) vipsmart.GIP {
	name := fmt.Sprintf("g-%d-", i)
	name += strings.Repeat("x", 63-len(name))
	g := vipsmart.GIP{Name: name, Address: netip.MustParseAddr(fmt.Sprintf("2001:db8:ffff:ffff:ffff:ffff:%x:%x", i>>16, i&0xffff)), Mode: vipsmart.ModeFailover, Partition: vipsmart.PartitionConsistent}
	for j, dc := range dcs {
		g.Placements = append(g.Placements, vipsmart.Placement{DC: dc, Priority: 200 - j, VIP: strings.Repeat("v", 63)})
	}
	return g
}

func bigGIPs(from, n int) []vipsmart.GIP {
	put := make([]vipsmart.GIP, 0, n)
	for i := from; i < from+n; i++ {
		put = append(put, bigGIP(i, "dc-1", "dc-2", "dc-3"))
	}
	return put
}

// TestBatchKeepsTheStateTransferable: a batch that would take the
// federation's GIPs past MaxStateBytes is refused, saying so and changing
// nothing, though each batch alone is within the batch limits: a prepare
// (dc add) and a state answer (catch-up) carry every GIP in one message
// of at most 16 MiB. Before, two such applies left a federation of 52,000
// GIPs (21 MB of JSON) that could no longer add a DC (e2e
// TestApplyKeepsTheFederationJoinable).
func TestBatchKeepsTheStateTransferable(t *testing.T) {
	c := newCluster(t, 3)
	c.federate(3)
	first := bigGIPs(0, 12000)
	if sz := NewBatch(first, nil).size(); sz > MaxBatchBytes || 2*sz <= MaxStateBytes {
		t.Fatalf("the test's batch takes %d bytes: want it within MaxBatchBytes and two of them over MaxStateBytes", sz)
	}
	e := c.h("dc-1").Epoch
	id, err := c.propose("dc-1", Proposal{Kind: ApplyGIPs, Batch: &Batch{Put: first}, ExpectEpoch: e})
	if err != nil {
		t.Fatal(err)
	}
	c.settle()
	if err := c.result(id); err != nil {
		t.Fatal(err)
	}
	_, err = c.propose("dc-2", Proposal{Kind: ApplyGIPs, Batch: &Batch{Put: bigGIPs(12000, 12000)}, ExpectEpoch: e + 1})
	wantErr(t, err, vipsmart.EINVALID, "24000 GIPs would take about", "adding a DC or a member catching up", "delete GIPs first or apply fewer")
	c.settle()
	for _, name := range c.names {
		if h := c.h(name); h.Epoch != e+1 || len(c.nodes[name].gips) != 12000 || h.Lock != nil {
			t.Fatalf("%s at epoch %d with %d GIPs (lock %v) after the refusal, want epoch %d, 12000 and no lock", name, h.Epoch, len(c.nodes[name].gips), h.Lock, e+1)
		}
	}
	// A batch within the limit still commits.
	id, err = c.propose("dc-3", Proposal{Kind: ApplyGIPs, Batch: &Batch{Put: bigGIPs(12000, 100), Delete: []string{first[0].Name}}, ExpectEpoch: e + 1})
	if err != nil {
		t.Fatal(err)
	}
	c.settle()
	if err := c.result(id); err != nil {
		t.Fatal(err)
	}
}

// TestLargestStateFitsThePeerLimit: a prepare carrying GIPs of
// MaxStateBytes (estimated), with 64 members of maximal names, fits the
// peer body limit (16 MiB, httpapi).
func TestLargestStateFitsThePeerLimit(t *testing.T) {
	const peerLimit = 16 << 20
	var gips []vipsmart.GIP
	total := 0
	for i := 0; ; i++ {
		g := bigGIP(i, "dc-1", "dc-2", "dc-3")
		total += gipSize(&g, len(g.Address.String()))
		if total > MaxStateBytes {
			break
		}
		gips = append(gips, g)
	}
	var members []vipsmart.DC
	for i := range 64 {
		name := fmt.Sprintf("dc-%d-", i)
		name += strings.Repeat("x", 63-len(name))
		members = append(members, vipsmart.DC{Name: name, Address: netip.MustParseAddr("2001:db8::1"), Port: 9610, Identity: "sha256:" + strings.Repeat("0", 64)})
	}
	m := Message{Type: MsgPrepare, From: members[0], To: members[1], FedID: "f-x", OpID: "op", State: &State{FedID: "f-x", Epoch: 9, Members: members, GIPs: gips}}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) > peerLimit {
		t.Fatalf("a prepare with %d GIPs (estimated %d bytes) is %d bytes, over the peer limit %d", len(gips), total, len(raw), peerLimit)
	}
	t.Logf("largest state: %d GIPs, prepare %.1f MiB", len(gips), float64(len(raw))/(1<<20))
}
