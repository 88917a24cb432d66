package federation

import (
	"fmt"
	"testing"
)

// deliverRound delivers the messages queued now (not the ones they cause)
// and returns how many there were.
func (c *cluster) deliverRound() int {
	round := c.queue
	c.queue = nil
	for _, m := range round {
		n := c.nodes[c.byAddr(m.To)]
		if n == nil {
			continue
		}
		if err := n.Step(c.now, m); err != nil {
			c.t.Fatalf("Step(%s %s->%s): %v", m.Type, m.From.Name, m.To.Name, err)
		}
	}
	c.flush()
	return len(round)
}

// TestAddCriticalPathIsConstant proves that dc add fans out in parallel:
// delivering messages in rounds (every message sent in round k arrives in
// round k+1), the operation's result comes after the same number of rounds
// whatever the size of the federation; only the number of messages per
// round grows.
func TestAddCriticalPathIsConstant(t *testing.T) {
	var want int
	for _, n := range []int{2, 5, 10, 25} {
		c := newCluster(t, n+1)
		c.federate(n)
		c.queue = nil
		cand := fmt.Sprintf("dc-%d", n+1)
		id, err := c.propose("dc-1", Proposal{Kind: AddDC, DC: scDC(cand)})
		if err != nil {
			t.Fatal(err)
		}
		rounds, msgs := 0, 0
		for {
			if _, ok := c.results[id]; ok {
				break
			}
			if rounds > 20 {
				t.Fatalf("%d members: no result after %d rounds", n, rounds)
			}
			msgs += c.deliverRound()
			rounds++
		}
		if err := c.result(id); err != nil {
			t.Fatalf("%d members: %v", n, err)
		}
		t.Logf("%2d members: result after %d rounds, %d messages", n, rounds, msgs)
		if want == 0 {
			want = rounds
		}
		if rounds != want {
			t.Fatalf("%d members: %d rounds; %d with fewer members: the critical path grows with the federation", n, rounds, want)
		}
		if msgs < 2*(n-1) {
			t.Fatalf("%d members: only %d messages: not every member was locked", n, msgs)
		}
	}
}
