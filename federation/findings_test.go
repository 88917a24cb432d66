package federation

import (
	"net/netip"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

// The scenario tests of this file reproduce the findings of issue 8, each
// as the exact sequence the review described. Invariant 2 is checked at
// every persist (cluster.checkState).

func gipNamed(name string, last byte) vipsmart.GIP {
	return vipsmart.GIP{Name: name, Address: netip.AddrFrom4([4]byte{192, 0, 2, last}), Mode: vipsmart.ModeFailover}
}

// TestForcedRemovalsOnBothSidesOfAPartition is finding 1: A, B, M at
// epoch E; A and B cut off from each other. A force-removes B (M grants,
// the commit to M is lost, A-M cut until M's lock expires); B force-removes
// A (M is asked while it doubts A's removal of B); A-M heals; A puts a GIP.
// Two lines of history must never share an epoch, and after a full heal
// the federation converges with the third DC fenced out.
func TestForcedRemovalsOnBothSidesOfAPartition(t *testing.T) {
	c := newCluster(t, 3)
	c.federate(3)
	A, B, M := "dc-1", "dc-2", "dc-3"
	E := c.h(A).Epoch
	c.cut(A, B)
	c.run(time.Second) // A and B see each other unreachable

	c.drop = func(m Message) bool { return m.Type == MsgCommit && m.From.Name == A }
	fa, err := c.propose(A, Proposal{Kind: RemoveDC, Name: B, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	c.settle()
	if err := c.result(fa); err != nil {
		t.Fatal(err)
	}
	if got := c.h(A).Epoch; got != E+1 {
		t.Fatalf("A's forced removal of B committed at %d, want %d", got, E+1)
	}
	c.drop = nil
	c.cut(A, M)
	c.run(11 * time.Second) // M's lock expires: M doubts A's removal of B

	c.drop = func(m Message) bool { return m.Type == MsgCommit && m.From.Name == B }
	fb, err := c.propose(B, Proposal{Kind: RemoveDC, Name: A, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	c.settle()
	c.drop = nil
	c.cut(B, M)
	c.run(11 * time.Second)
	t.Logf("B's forced removal of A: %v", c.results[fb].Err)

	c.heal(A, M)
	c.run(time.Second)
	id, err := c.propose(A, Proposal{Kind: PutGIP, GIP: gipNamed("g", 1)})
	if err == nil {
		c.settle()
		t.Logf("A's GIP put: %v", c.results[id].Err)
	}
	c.run(time.Second)

	c.heal(A, B)
	c.heal(B, M)
	c.run(12 * time.Second)
	// M ends in a federation with A or with B; the other one is fenced out.
	var with, fenced string
	switch {
	case c.h(M).memberish() && len(c.h(M).Members) == 2 && c.h(A).memberish() && c.h(A).FedID == c.h(M).FedID:
		with, fenced = A, B
	case c.h(M).memberish() && len(c.h(M).Members) == 2 && c.h(B).memberish() && c.h(B).FedID == c.h(M).FedID:
		with, fenced = B, A
	default:
		t.Fatalf("no convergence: A %s@%d %v, B %s@%d %v, M %s@%d %v", c.h(A).FedID, c.h(A).Epoch, names(c.h(A).Members), c.h(B).FedID, c.h(B).Epoch, names(c.h(B).Members), c.h(M).FedID, c.h(M).Epoch, names(c.h(M).Members))
	}
	c.converged(with, M)
	if c.status(fenced) != vipsmart.StatusStandalone {
		t.Fatalf("%s is %s, want standalone (fenced out)", fenced, c.status(fenced))
	}
}

// TestDoubtsAreNotForgotten is finding 2: X commits a change alone and
// dies; the others run many changes that fail because X is dead, with
// their aborts lost; the forced removal of X must still skip the epoch X
// may have used.
func TestDoubtsAreNotForgotten(t *testing.T) {
	c := newCluster(t, 3)
	c.federate(3)
	X := "dc-3"
	E := c.h("dc-1").Epoch
	c.drop = dropType(MsgCommit)
	id, err := c.propose(X, Proposal{Kind: PutGIP, GIP: gipNamed("lone", 1)})
	if err != nil {
		t.Fatal(err)
	}
	c.settle()
	if err := c.result(id); err != nil {
		t.Fatal(err)
	}
	c.crash(X)
	c.drop = nil
	c.run(11 * time.Second) // dc-1 and dc-2 doubt X's change

	c.drop = dropType(MsgAbort)
	for i := range 40 {
		at := []string{"dc-1", "dc-2"}[i%2]
		id, err := c.propose(at, Proposal{Kind: PutGIP, GIP: gipNamed("g", byte(10+i))})
		if err != nil {
			t.Fatalf("change %d at %s: %v", i, at, err)
		}
		c.nodes[at].ReportUnreachable(c.now, X, "connection refused")
		c.flush()
		c.settle()
		wantErr(t, c.result(id), vipsmart.EUNAVAILABLE, "could not be reached")
		c.run(11 * time.Second) // a lock left behind by a lost abort expires
	}
	c.drop = nil

	fid, err := c.propose("dc-1", Proposal{Kind: RemoveDC, Name: X, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	c.settle()
	if err := c.result(fid); err != nil {
		t.Fatal(err)
	}
	if got := c.h("dc-1").Epoch; got != E+2 {
		t.Fatalf("the forced removal of %s committed at %d, want %d (past the epoch of its lone change)", X, got, E+2)
	}
	c.restart(X)
	c.run(2 * time.Second)
	if c.status(X) != vipsmart.StatusStandalone {
		t.Fatalf("%s is %s, want standalone", X, c.status(X))
	}
	c.converged("dc-1", "dc-2")
}

// TestForcedRemovalKeepsWhatTheCandidateHolds is finding 3: X adds K
// alone (its commits to the members are lost, K gets its commit) and dies.
// The acknowledged add is held by K too, so forcing X out must not lose
// it: K stays a member.
func TestForcedRemovalKeepsWhatTheCandidateHolds(t *testing.T) {
	c := newCluster(t, 4)
	c.federate(3)
	X, K := "dc-3", "dc-4"
	E := c.h("dc-1").Epoch
	c.drop = func(m Message) bool { return m.Type == MsgCommit && m.To.Name != K }
	id, err := c.propose(X, Proposal{Kind: AddDC, DC: scDC(K)})
	if err != nil {
		t.Fatal(err)
	}
	c.settle()
	if err := c.result(id); err != nil {
		t.Fatal(err)
	}
	if c.status(K) != vipsmart.StatusMember || c.h(K).Epoch != E+1 {
		t.Fatalf("K is %s at %d", c.status(K), c.h(K).Epoch)
	}
	c.drop = nil
	c.crash(X)
	c.cut(K, "dc-1", "dc-2") // the survivors do not hear K before they force X out
	c.run(11 * time.Second)

	fid, err := c.propose("dc-1", Proposal{Kind: RemoveDC, Name: X, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	c.settle()
	c.run(4 * time.Second)
	c.heal(K, "dc-1", "dc-2")
	c.run(3 * time.Second)
	if err := c.result(fid); err != nil {
		t.Logf("forced removal while K was cut off: %v", err)
		fid, err = c.propose("dc-1", Proposal{Kind: RemoveDC, Name: X, Force: true})
		if err != nil {
			t.Fatal(err)
		}
		c.settle()
		if err := c.result(fid); err != nil {
			t.Fatal(err)
		}
	}
	c.run(2 * time.Second)
	c.converged("dc-1", "dc-2", K)
}

// TestAbortsAreResent is finding 4: an abort that is lost is sent again,
// so a member locked by a failed operation is released at once, not at
// its deadline.
func TestAbortsAreResent(t *testing.T) {
	c := newCluster(t, 3)
	c.federate(3)
	c.crash("dc-3")
	c.run(time.Second)
	first := true
	c.drop = func(m Message) bool {
		if m.From.Name != "dc-1" || m.To.Name != "dc-2" {
			return false
		}
		if m.Type == MsgAbort && first {
			first = false
			return true
		}
		return m.Type != MsgAbort && m.Type != MsgLock
	}
	id, err := c.propose("dc-1", Proposal{Kind: PutGIP, GIP: gipNamed("g", 1)})
	if err != nil {
		t.Fatal(err)
	}
	c.settle()
	c.nodes["dc-1"].ReportUnreachable(c.now, "dc-3", "connection refused")
	c.flush()
	c.settle()
	wantErr(t, c.result(id), vipsmart.EUNAVAILABLE)
	if c.status("dc-2") != vipsmart.StatusCandidateReview {
		t.Fatalf("dc-2 is %s; the first abort was to be lost", c.status("dc-2"))
	}
	c.run(time.Second)
	if c.status("dc-2") != vipsmart.StatusMember || len(c.h("dc-2").Doubts) != 0 {
		t.Fatalf("dc-2 is %s with doubts %+v one second after the operation failed: the abort was not resent", c.status("dc-2"), c.h("dc-2").Doubts)
	}
}
