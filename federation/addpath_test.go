package federation

import (
	"bytes"
	"testing"
	"time"
)

// TestDCAddPathWrites: on the path of a dc add whose candidate raises
// nothing, the coordinator stores its record twice (its lock, then the
// commit), not again between the invite and the locks; and the candidate,
// which commits the state it was prepared with, does not fetch that state
// again from the coordinator.
func TestDCAddPathWrites(t *testing.T) {
	c := newCluster(t, 3)
	c.federate(2)
	fetches := 0
	c.drop = func(m Message) bool {
		if m.Type == MsgFetchState && m.From.Name == "dc-3" {
			fetches++
		}
		return false
	}
	writes, last := 0, bytes.Clone(c.rec["dc-1"])
	id, err := c.propose("dc-1", Proposal{Kind: AddDC, DC: scDC("dc-3")})
	if err != nil {
		t.Fatal(err)
	}
	for len(c.queue) > 0 || !bytes.Equal(last, c.rec["dc-1"]) {
		if !bytes.Equal(last, c.rec["dc-1"]) {
			writes++
			last = bytes.Clone(c.rec["dc-1"])
		}
		c.now = c.now.Add(time.Millisecond) // each write stores another SavedAt
		c.deliver(1)
	}
	if err := c.result(id); err != nil {
		t.Fatalf("dc add: %v", err)
	}
	if writes != 2 {
		t.Errorf("the coordinator stored its record %d times during the add; want 2 (lock, commit)", writes)
	}
	if fetches != 0 {
		t.Errorf("the candidate fetched the state %d times after committing the state it was prepared with", fetches)
	}
	c.run(time.Second)
	c.converged("dc-1", "dc-2", "dc-3")
}

// TestDCAddPrepareWithLocks: the candidate's prepare leaves with the locks
// (once it accepted the invite), so that its round trip is not after the
// lock phase: delivering messages in rounds (deliverRound), a dc add has
// its result after 4 rounds (invite, its answer, locks and prepare, their
// answers), not 6. When that prepare is lost, the prepare phase after the
// locks sends it again and the add still commits.
func TestDCAddPrepareWithLocks(t *testing.T) {
	c := newCluster(t, 4)
	c.federate(3)
	c.queue = nil
	id, err := c.propose("dc-1", Proposal{Kind: AddDC, DC: scDC("dc-4")})
	if err != nil {
		t.Fatal(err)
	}
	rounds := 0
	for _, ok := c.results[id]; !ok && rounds < 20; _, ok = c.results[id] {
		c.deliverRound()
		rounds++
	}
	if err := c.result(id); err != nil {
		t.Fatalf("dc add: %v", err)
	}
	if rounds != 4 {
		t.Errorf("dc add: result after %d rounds; want 4 (invite, invite-resp, locks and prepare, their answers)", rounds)
	}
	c.run(time.Second)
	c.converged("dc-1", "dc-2", "dc-3", "dc-4")

	c = newCluster(t, 4)
	c.federate(3)
	prepares := 0
	c.drop = func(m Message) bool {
		if m.Type == MsgPrepare && m.To.Name == "dc-4" {
			prepares++
			return prepares == 1
		}
		return false
	}
	id, err = c.propose("dc-1", Proposal{Kind: AddDC, DC: scDC("dc-4")})
	if err != nil {
		t.Fatal(err)
	}
	c.run(time.Second)
	if err := c.result(id); err != nil {
		t.Fatalf("dc add with its first prepare lost: %v", err)
	}
	if prepares != 2 {
		t.Errorf("dc add with its first prepare lost: %d prepares sent; want 2", prepares)
	}
	c.converged("dc-1", "dc-2", "dc-3", "dc-4")
}
