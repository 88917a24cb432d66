package federation

import (
	"fmt"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

// TestInDoubtTakesPartOnlyInRemovingTheCoordinator: C force-removes X in a
// federation of five and dies right after committing (its commits lost).
// The other members doubt C's removal: a change proposed on one of them is
// refused at once with what to do, until C is force-removed too, which
// goes past the epoch C's removal may have used; C comes back fenced out.
func TestInDoubtTakesPartOnlyInRemovingTheCoordinator(t *testing.T) {
	c := newCluster(t, 5)
	c.federate(5)
	C, X := "dc-1", "dc-5"
	E := c.h(C).Epoch
	c.crash(X)
	c.run(time.Second)
	c.drop = func(m Message) bool { return m.Type == MsgCommit && m.From.Name == C }
	fid, err := c.propose(C, Proposal{Kind: RemoveDC, Name: X, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	c.settle()
	if err := c.result(fid); err != nil {
		t.Fatal(err)
	}
	c.crash(C)
	c.drop = nil
	c.run(11 * time.Second) // dc-2..4 doubt C's removal of X
	_, err = c.propose("dc-2", Proposal{Kind: PutGIP, GIP: gipNamed("g", 1)})
	wantErr(t, err, vipsmart.ESTATE, fmt.Sprintf("dc-2 is in doubt about operation %s of dc-1 (force-remove dc-5), which may have committed at epoch %d: until it hears from dc-1 it takes part only in a forced removal of dc-1", fid, E+1))
	id, err := c.propose("dc-2", Proposal{Kind: RemoveDC, Name: C, Names: []string{X}, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	c.settle()
	if err := c.result(id); err != nil {
		t.Fatal(err)
	}
	if got := c.h("dc-2").Epoch; got != E+2 {
		t.Fatalf("the removal of dc-1 committed at %d, want %d (past dc-1's removal of dc-5)", got, E+2)
	}
	c.run(time.Second)
	c.converged("dc-2", "dc-3", "dc-4")
	c.restart(C)
	c.run(2 * time.Second)
	if c.status(C) != vipsmart.StatusStandalone {
		t.Fatalf("dc-1 is %s", c.status(C))
	}
	c.converged("dc-2", "dc-3", "dc-4")
}
