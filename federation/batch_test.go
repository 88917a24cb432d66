package federation

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

func batchGIP(i int, dcs ...string) vipsmart.GIP {
	g := vipsmart.GIP{Name: fmt.Sprintf("g-%d", i), Address: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), Mode: vipsmart.ModeFailover, Preempt: true}
	for j, dc := range dcs {
		g.Placements = append(g.Placements, vipsmart.Placement{DC: dc, Priority: 200 - j})
	}
	return g
}

// TestBatchCommitsEverywhereInOneEpoch: one ApplyGIPs operation writes and
// deletes many GIPs on every member in one epoch step; the commit and the
// heartbeats carry the batch slim.
func TestBatchCommitsEverywhereInOneEpoch(t *testing.T) {
	c := newCluster(t, 3)
	c.federate(3)
	var put []vipsmart.GIP
	for i := range 500 {
		put = append(put, batchGIP(i, "dc-1", "dc-2", "dc-3"))
	}
	e := c.h("dc-1").Epoch
	id, err := c.propose("dc-2", Proposal{Kind: ApplyGIPs, Batch: &Batch{Put: put}, ExpectEpoch: e})
	if err != nil {
		t.Fatal(err)
	}
	var commitSizes []int
	c.drop = func(m Message) bool {
		if m.Type == MsgCommit || m.Type == MsgHeartbeat || m.Type == MsgHeartbeatResp {
			b, _ := json.Marshal(m)
			commitSizes = append(commitSizes, len(b))
		}
		return false
	}
	c.settle()
	if err := c.result(id); err != nil {
		t.Fatal(err)
	}
	c.run(time.Second)
	c.converged("dc-1", "dc-2", "dc-3")
	for _, name := range c.names {
		if h := c.h(name); h.Epoch != e+1 || len(c.nodes[name].gips) != 500 || len(c.gips[name]) != 500 {
			t.Fatalf("%s at epoch %d with %d GIPs (%d stored), want epoch %d and 500", name, h.Epoch, len(c.nodes[name].gips), len(c.gips[name]), e+1)
		}
		if b := c.h(name).Last.Change.Batch; b == nil || b.full() || b.Count != 500 {
			t.Fatalf("%s keeps its last decision with batch %+v, want it slim with count 500", name, b)
		}
	}
	for _, n := range commitSizes {
		if n > 4096 {
			t.Fatalf("a commit or heartbeat took %d bytes: the batch should travel slim", n)
		}
	}
	// A second batch deletes some and rewrites others, at the new epoch.
	c.drop = nil
	id, err = c.propose("dc-3", Proposal{Kind: ApplyGIPs, Batch: &Batch{Put: []vipsmart.GIP{batchGIP(7, "dc-3")}, Delete: []string{"g-1", "g-2"}}, ExpectEpoch: e + 1})
	if err != nil {
		t.Fatal(err)
	}
	c.settle()
	if err := c.result(id); err != nil {
		t.Fatal(err)
	}
	c.run(time.Second)
	c.converged("dc-1", "dc-2", "dc-3")
	if g := c.nodes["dc-1"].gips["g-7"]; len(g.Placements) != 1 || len(c.nodes["dc-1"].gips) != 498 {
		t.Fatalf("after the second batch: g-7 %+v, %d GIPs", g, len(c.nodes["dc-1"].gips))
	}
}

// TestBatchRefusals: a stale expected epoch, an unknown delete, a
// placement on a non-member, a duplicate address and a VIP another member
// lacks are all refused, and nothing changes anywhere.
func TestBatchRefusals(t *testing.T) {
	c := newCluster(t, 3)
	c.federate(3)
	e := c.h("dc-1").Epoch
	_, err := c.propose("dc-1", Proposal{Kind: ApplyGIPs, Batch: &Batch{Put: []vipsmart.GIP{batchGIP(1, "dc-1")}}, ExpectEpoch: e - 1})
	wantErr(t, err, vipsmart.ECONFLICT, "changed since the diff", fmt.Sprintf("epoch %d", e))
	_, err = c.propose("dc-1", Proposal{Kind: ApplyGIPs, Batch: &Batch{Delete: []string{"nope"}}})
	wantErr(t, err, vipsmart.ENOTFOUND, "nope")
	_, err = c.propose("dc-1", Proposal{Kind: ApplyGIPs, Batch: &Batch{Put: []vipsmart.GIP{batchGIP(1, "dc-7")}}})
	wantErr(t, err, vipsmart.EINVALID, "dc-7")
	g2 := batchGIP(2, "dc-1")
	g2.Address = batchGIP(1).Address
	_, err = c.propose("dc-1", Proposal{Kind: ApplyGIPs, Batch: &Batch{Put: []vipsmart.GIP{batchGIP(1, "dc-1"), g2}}})
	wantErr(t, err, vipsmart.ECONFLICT, "already used")
	_, err = c.propose("dc-1", Proposal{Kind: ApplyGIPs, Batch: &Batch{}})
	wantErr(t, err, vipsmart.EINVALID, "nothing")
	// dc-3 has no VIP web: its lock refuses the whole batch.
	c.nodes["dc-3"].SetLocalVIPs(map[string]netip.Addr{})
	g := batchGIP(3, "dc-1", "dc-3")
	g.Placements[1].VIP = "web"
	id, err := c.propose("dc-1", Proposal{Kind: ApplyGIPs, Batch: &Batch{Put: []vipsmart.GIP{batchGIP(1, "dc-1"), g}}, ExpectEpoch: e})
	if err != nil {
		t.Fatal(err)
	}
	c.settle()
	wantErr(t, c.result(id), vipsmart.EINVALID, "dc-3", "no VIP named web")
	c.run(time.Second)
	c.converged("dc-1", "dc-2", "dc-3")
	for _, name := range c.names {
		if h := c.h(name); h.Epoch != e || len(c.nodes[name].gips) != 0 {
			t.Fatalf("%s at epoch %d with %d GIPs after refusals, want %d and none", name, h.Epoch, len(c.nodes[name].gips), e)
		}
	}
}

// TestBatchMemberMissesCommitCatchesUp: a member whose lock expired before
// the commit reached it cannot apply the slim decision; it fetches the
// state and ends with the whole batch.
func TestBatchMemberMissesCommitCatchesUp(t *testing.T) {
	c := newCluster(t, 3)
	c.federate(3)
	var put []vipsmart.GIP
	for i := range 50 {
		put = append(put, batchGIP(i, "dc-1", "dc-2"))
	}
	c.drop = func(m Message) bool { return m.To.Name == "dc-3" && m.Type == MsgCommit }
	id, err := c.propose("dc-1", Proposal{Kind: ApplyGIPs, Batch: &Batch{Put: put}})
	if err != nil {
		t.Fatal(err)
	}
	c.settle()
	if err := c.result(id); err != nil {
		t.Fatal(err)
	}
	// dc-3 still holds its lock with the batch: a heartbeat's slim
	// decision lets it apply the batch from the lock.
	if c.h("dc-3").Lock == nil {
		t.Fatal("dc-3 should still hold its lock")
	}
	c.drop = func(m Message) bool { return m.To.Name == "dc-3" && (m.Type == MsgState || m.Type == MsgCommit) }
	c.run(time.Second)
	c.converged("dc-1", "dc-2", "dc-3")
	if len(c.nodes["dc-3"].gips) != 50 {
		t.Fatalf("dc-3 has %d GIPs, want 50", len(c.nodes["dc-3"].gips))
	}

	// Next batch: dc-3 hears nothing until its lock expired; then only a
	// state transfer can give it the batch.
	c.drop = func(m Message) bool { return m.To.Name == "dc-3" && m.Type != MsgLock }
	id, err = c.propose("dc-1", Proposal{Kind: ApplyGIPs, Batch: &Batch{Delete: []string{"g-1", "g-2"}}})
	if err != nil {
		t.Fatal(err)
	}
	c.drop = func(m Message) bool { return m.To.Name == "dc-3" && m.Type != MsgLock && m.Type != MsgLockResp }
	c.settle()
	if err := c.result(id); err != nil {
		t.Fatal(err)
	}
	c.drop = func(m Message) bool { return m.To.Name == "dc-3" || m.From.Name == "dc-3" }
	c.run(11 * time.Second) // dc-3's lock expires
	if c.h("dc-3").Lock != nil || len(c.h("dc-3").Doubts) != 1 {
		t.Fatalf("dc-3 lock %+v doubts %+v: want the lock expired into one doubt", c.h("dc-3").Lock, c.h("dc-3").Doubts)
	}
	if d := c.h("dc-3").Doubts[0]; d.Change.Batch == nil || d.Change.Batch.full() {
		t.Fatalf("the doubt keeps batch %+v, want it slim", d.Change.Batch)
	}
	c.drop = nil
	c.run(2 * time.Second)
	c.converged("dc-1", "dc-2", "dc-3")
	if len(c.nodes["dc-3"].gips) != 48 {
		t.Fatalf("dc-3 has %d GIPs, want 48", len(c.nodes["dc-3"].gips))
	}
}

// TestBatchValidation: a peer's batch whose content does not match its
// digest or count is malformed.
func TestBatchValidation(t *testing.T) {
	b := NewBatch([]vipsmart.GIP{batchGIP(1, "dc-1")}, []string{"old"})
	if err := b.validate(); err != nil {
		t.Fatal(err)
	}
	if err := b.slim().validate(); err != nil {
		t.Fatalf("slim: %v", err)
	}
	bad := *b
	bad.Put = []vipsmart.GIP{batchGIP(2, "dc-1")}
	if err := bad.validate(); err == nil || !strings.Contains(err.Error(), "digest") {
		t.Fatalf("tampered batch: %v", err)
	}
	bad = *b
	bad.Count = 5
	if err := bad.validate(); err == nil {
		t.Fatal("a batch with a wrong count was accepted")
	}
	dup := NewBatch([]vipsmart.GIP{batchGIP(1, "dc-1")}, []string{"g-1"})
	if err := dup.validate(); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("a batch naming a GIP twice: %v", err)
	}
}

// TestLargestBatchFitsThePeerLimit: the largest batch Propose accepts,
// as a lock message, fits the peer body limit (16 MiB, httpapi).
func TestLargestBatchFitsThePeerLimit(t *testing.T) {
	const peerLimit = 16 << 20
	long := func(prefix string, i int) string {
		s := fmt.Sprintf("%s-%d-", prefix, i)
		return s + strings.Repeat("x", 63-len(s))
	}
	var dcs []string
	for i := range 8 {
		dcs = append(dcs, long("dc", i))
	}
	var put []vipsmart.GIP
	total := (&Batch{}).size()
	for i := 0; ; i++ {
		g := vipsmart.GIP{Name: long("g", i), Address: netip.MustParseAddr(fmt.Sprintf("2001:db8:ffff:ffff:ffff:ffff:%x:%x", i>>16, i&0xffff)), Mode: vipsmart.ModeAnycast}
		for j, dc := range dcs {
			g.Placements = append(g.Placements, vipsmart.Placement{DC: dc, Priority: 1 + j, VIP: long("v", j)})
		}
		total += (&Batch{Put: []vipsmart.GIP{g}}).size() - (&Batch{}).size()
		if total > MaxBatchBytes {
			break
		}
		put = append(put, g)
	}
	b := NewBatch(put, nil)
	self := vipsmart.DC{Name: dcs[0], Address: netip.MustParseAddr("2001:db8::1"), Port: 9610}
	m := Message{Type: MsgLock, From: self, To: self, FedID: "f-" + long("x", 0), OpID: long("op", 0), Change: &Change{Kind: ApplyGIPs, Batch: b, By: long("by", 0)}}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) > peerLimit {
		t.Fatalf("a lock with %d GIPs (size estimate %d) is %d bytes, over the peer limit %d", len(put), b.size(), len(raw), peerLimit)
	}
	if b.size() < len(raw)-4096 {
		t.Fatalf("the size estimate %d is under the real size %d", b.size(), len(raw))
	}
	t.Logf("largest batch: %d GIPs with maximal names in 8 DCs, lock message %.1f MiB", len(put), float64(len(raw))/(1<<20))
}

// TestBatchLockWithSlimBatchRefused: a lock carries its batch in full (each member
// checks the placements on itself against its own VIPs before it grants
// it); a lock whose batch is slim (count and digest only, as decisions
// carry it) is malformed. It used to be granted unchecked, and the member
// then took the batch's GIPs from a state transfer at the commit, placements
// on VIPs it does not have included. Decisions keep carrying it slim.
func TestBatchLockWithSlimBatchRefused(t *testing.T) {
	c := newCluster(t, 3)
	c.federate(3)
	b := NewBatch([]vipsmart.GIP{batchGIP(1, "dc-1", "dc-3")}, nil)
	lock := c.nodes["dc-1"].newMsg(MsgLock, c.nodes["dc-3"].h.Self)
	lock.OpID, lock.FedID, lock.Epoch, lock.ToEpoch = "dc-1-99", c.h("dc-1").FedID, c.h("dc-1").Epoch, c.h("dc-1").Epoch+1
	lock.Change = &Change{Kind: ApplyGIPs, Batch: b}
	if err := lock.Validate(); err != nil {
		t.Fatalf("a lock with its whole batch: %v", err)
	}
	slim := lock
	slim.Change = &Change{Kind: ApplyGIPs, Batch: b.slim()}
	if err := slim.Validate(); err == nil || !strings.Contains(err.Error(), "carries the whole batch") {
		t.Fatalf("a lock with its batch slim: %v, want it refused", err)
	}
	// Stepped on dc-3, which lacks the VIP web the batch places on it: the
	// whole lock is refused by its check, the slim one is not granted.
	c.nodes["dc-3"].SetLocalVIPs(map[string]netip.Addr{})
	g := batchGIP(1, "dc-1", "dc-3")
	g.Placements[1].VIP = "web"
	slim.Change = &Change{Kind: ApplyGIPs, Batch: NewBatch([]vipsmart.GIP{g}, nil).slim()}
	slim.Seq, slim.Running = slim.Seq+5, true // a running operation of dc-1, not a late lock
	c.nodes["dc-3"].Step(c.now, slim)
	if l := c.h("dc-3").Lock; l != nil {
		t.Fatalf("dc-3 granted a lock with its batch slim: %+v", *l)
	}
	commit := c.nodes["dc-1"].newMsg(MsgCommit, c.nodes["dc-3"].h.Self)
	commit.OpID = lock.OpID
	commit.Last = &Decision{FedID: lock.FedID, FromEpoch: lock.Epoch, ToEpoch: lock.ToEpoch, OpID: lock.OpID, Coordinator: "dc-1", Change: slimChange(*lock.Change)}
	if err := commit.Validate(); err != nil {
		t.Fatalf("a commit with its batch slim: %v", err)
	}
}

// TestForgedBatchLockRefused: a member checks a lock's batch itself, as
// the coordinator did: a batch placing a GIP on a DC that is not a member,
// or giving a GIP the address of another that stays, is refused in the
// lock's answer (it used to be granted and committed: a forged or broken
// coordinator could make every member store it). A sound batch is granted.
func TestForgedBatchLockRefused(t *testing.T) {
	c := newCluster(t, 3)
	c.federate(3)
	e := c.h("dc-1").Epoch
	id, err := c.propose("dc-1", Proposal{Kind: ApplyGIPs, Batch: &Batch{Put: []vipsmart.GIP{batchGIP(1, "dc-1"), batchGIP(2, "dc-2")}}, ExpectEpoch: e})
	if err != nil {
		t.Fatal(err)
	}
	c.settle()
	if err := c.result(id); err != nil {
		t.Fatal(err)
	}
	c.run(time.Second)
	n := c.nodes["dc-3"]
	seq := c.h("dc-1").Counter
	lockWith := func(put []vipsmart.GIP, del []string) (Message, bool) {
		seq += 5
		m := c.nodes["dc-1"].newMsg(MsgLock, n.h.Self)
		m.OpID, m.FedID, m.Epoch, m.ToEpoch = fmt.Sprintf("dc-1-%d", seq), c.h("dc-1").FedID, e+1, e+2
		m.Seq, m.Running = seq, true
		m.Change = &Change{Kind: ApplyGIPs, Batch: NewBatch(put, del)}
		if err := n.Step(c.now, m); err != nil {
			t.Fatal(err)
		}
		rd := n.Ready()
		n.Advance(rd)
		for _, r := range rd.Messages {
			if r.Type == MsgLockResp {
				if r.OK {
					n.h.Lock = nil // granted: released for the next case
					n.setStatus(c.now, vipsmart.StatusMember, "", "test")
				}
				return r, r.OK
			}
		}
		t.Fatalf("no lock answer")
		return Message{}, false
	}
	g9 := batchGIP(3, "dc-1", "dc-9")
	if r, ok := lockWith([]vipsmart.GIP{g9}, nil); ok || !strings.Contains(r.Reason, "dc-9, which is not a member") {
		t.Fatalf("a batch placing a GIP on dc-9: ok %v, %q", ok, r.Reason)
	}
	dup := batchGIP(3, "dc-1")
	dup.Address = batchGIP(1).Address
	if r, ok := lockWith([]vipsmart.GIP{dup}, nil); ok || !strings.Contains(r.Reason, "address") || !strings.Contains(r.Reason, "GIP g-1") {
		t.Fatalf("a batch reusing g-1's address: ok %v, %q", ok, r.Reason)
	}
	twice := batchGIP(4, "dc-2")
	twice.Address = dup.Address
	if r, ok := lockWith([]vipsmart.GIP{dup, twice}, []string{"g-1"}); ok || !strings.Contains(r.Reason, "address") {
		t.Fatalf("a batch giving two GIPs one address: ok %v, %q", ok, r.Reason)
	}
	// g-1 deleted (or rewritten) in the same batch: its address is free.
	if r, ok := lockWith([]vipsmart.GIP{dup}, []string{"g-1"}); !ok {
		t.Fatalf("a batch moving g-1's address to g-3 while deleting g-1: refused: %s", r.Reason)
	}
	moved := batchGIP(1, "dc-3")
	moved.Address = batchGIP(9).Address
	if r, ok := lockWith([]vipsmart.GIP{dup, moved}, nil); !ok {
		t.Fatalf("a batch moving g-1's address to g-3 while readdressing g-1: refused: %s", r.Reason)
	}
}

// TestBatchCommitOfAnotherDigestNotApplied: a member applies a slim
// decision from the batch of its lock only when the decision names that
// batch (its digest): a commit of the same operation naming another batch
// (forged, or damaged in a way the message checks cannot see) is not
// applied from the lock; the member fetches the state instead and ends
// with the coordinator's decision.
func TestBatchCommitOfAnotherDigestNotApplied(t *testing.T) {
	c := newCluster(t, 3)
	c.federate(3)
	other := NewBatch([]vipsmart.GIP{batchGIP(7, "dc-2")}, nil)
	c.tamper = func(m *Message) {
		if m.Type == MsgCommit && m.To.Name == "dc-3" && m.Last != nil && m.Last.Change.Kind == ApplyGIPs {
			m.Last.Change.Batch = other.slim()
		}
	}
	e := c.h("dc-1").Epoch
	id, err := c.propose("dc-1", Proposal{Kind: ApplyGIPs, Batch: &Batch{Put: []vipsmart.GIP{batchGIP(1, "dc-1", "dc-3"), batchGIP(2, "dc-2")}}, ExpectEpoch: e})
	if err != nil {
		t.Fatal(err)
	}
	c.settle()
	if err := c.result(id); err != nil {
		t.Fatal(err)
	}
	c.tamper = nil
	c.run(2 * time.Second)
	c.converged("dc-1", "dc-2", "dc-3")
	want := c.h("dc-1").Last.Change.Batch.Digest
	if got := c.h("dc-3").Last.Change.Batch.Digest; got != want || len(c.nodes["dc-3"].gips) != 2 {
		t.Fatalf("dc-3 keeps the decision of batch %s with %d GIPs, want %s (dc-1's) and 2", got, len(c.nodes["dc-3"].gips), want)
	}
}

// TestBatchChangeCarriesNoOtherFields: an apply-gips change carries its
// batch (and by) only; a field of another kind in it (new_fed_id, which
// re-founds the federation at the commit; a dc, a gip, force ...) makes
// the message malformed. A commit of a batch with new_fed_id used to be
// applied: the member left its federation for the new id.
func TestBatchChangeCarriesNoOtherFields(t *testing.T) {
	c := newCluster(t, 3)
	c.federate(3)
	var commits []Message
	c.drop = func(m Message) bool {
		if m.Type == MsgCommit && m.To.Name == "dc-3" {
			commits = append(commits, m)
			return true
		}
		return false
	}
	fed := c.h("dc-1").FedID
	id, err := c.propose("dc-1", Proposal{Kind: ApplyGIPs, Batch: &Batch{Put: []vipsmart.GIP{batchGIP(1, "dc-1", "dc-3")}}, ExpectEpoch: c.h("dc-1").Epoch})
	if err != nil {
		t.Fatal(err)
	}
	c.settle()
	if err := c.result(id); err != nil || len(commits) != 1 {
		t.Fatalf("result %v, %d commits to dc-3", err, len(commits))
	}
	m := commits[0]
	d := *m.Last
	d.Change.NewFedID = "f-forged"
	m.Last = &d
	if err := c.nodes["dc-3"].Step(c.now, m); err == nil || !strings.Contains(err.Error(), "new_fed_id") {
		t.Fatalf("a commit of a batch with new_fed_id: %v, want it refused as malformed", err)
	}
	if got := c.h("dc-3").FedID; got != fed {
		t.Fatalf("dc-3 is in federation %s after the forged commit, want %s", got, fed)
	}
	for _, ch := range []Change{
		{Kind: ApplyGIPs, Batch: NewBatch([]vipsmart.GIP{batchGIP(1)}, nil), Force: true},
		{Kind: ApplyGIPs, Batch: NewBatch([]vipsmart.GIP{batchGIP(1)}, nil), Name: "dc-2"},
		{Kind: ApplyGIPs, Batch: NewBatch([]vipsmart.GIP{batchGIP(1)}, nil), GIP: &vipsmart.GIP{Name: "x"}},
	} {
		if err := ch.validate(); err == nil {
			t.Fatalf("an apply-gips change with a field of another kind validates: %+v", ch)
		}
	}
	c.drop = nil
	c.run(2 * time.Second)
	c.converged("dc-1", "dc-2", "dc-3")
}
