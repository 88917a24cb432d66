package federation

import (
	"testing"
	"time"

	"github.com/vipsmart/vipsmart"
)

// TestForcedRemovalOfSeveralUnpinsTheirKeys: after one forced removal of
// two DCs of five, no survivor accepts anything from either key but a
// heartbeat or a state request, which it only answers; the answers fence
// both out when they return.
func TestForcedRemovalOfSeveralUnpinsTheirKeys(t *testing.T) {
	a := newAuthNet(t, 5)
	a.federate(5)
	gone := map[string]*Node{"dc-4": a.nodes["dc-4"], "dc-5": a.nodes["dc-5"]}
	delete(a.nodes, "dc-4")
	delete(a.nodes, "dc-5")
	a.run(2 * a.nodes["dc-1"].window())
	if err := a.do("dc-1", Proposal{Kind: RemoveDC, Name: "dc-4", Names: []string{"dc-5"}, Force: true}); err != nil {
		t.Fatal(err)
	}
	a.run(time.Second)
	for _, s := range []string{"dc-1", "dc-2", "dc-3"} {
		n := a.nodes[s]
		if len(n.h.Members) != 3 {
			t.Fatalf("%s lists %v", s, names(n.h.Members))
		}
		for i := 4; i <= 5; i++ {
			d := authDC(i)
			lock := Message{Type: MsgLock, From: d, To: n.Self(), FedID: n.h.FedID, Epoch: n.h.Epoch, OpID: d.Name + "-9", Change: &Change{Kind: RemoveDC, Name: s, Force: true}}
			if v, err := n.Admit(lock, d.Identity); v != Refuse {
				t.Fatalf("%s accepted removed %s's lock: %s %v", s, d.Name, v, err)
			}
			hb := Message{Type: MsgHeartbeat, From: d, To: n.Self(), SenderFed: n.h.FedID, SenderEpoch: n.h.Epoch - 1}
			if v, _ := n.Admit(hb, d.Identity); v != AnswerOnly {
				t.Fatalf("%s: removed %s's heartbeat: %s", s, d.Name, v)
			}
		}
	}
	for name, n := range gone {
		a.nodes[name] = n
	}
	a.run(3 * time.Second)
	for name, n := range gone {
		if n.h.Status != vipsmart.StatusStandalone {
			t.Fatalf("returning %s is %s", name, n.h.Status)
		}
	}
}
