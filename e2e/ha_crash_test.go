package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vipsmart/vipsmart/etcd/etcdtest"
)

// TestHALeaderKilledMidAdd: dc-1 runs three nodes on etcd and coordinates
// `dc add` of dc-4 (asked through a follower) into a federation with dc-2
// and dc-3; its leader is killed (SIGKILL, the test crash point) in the
// middle of the operation. A follower takes over from the state in etcd,
// and every DC ends consistent with no temporary status left: the add
// committed everywhere when the leader had committed it, else nowhere, and
// the federation works again.
func TestHALeaderKilledMidAdd(t *testing.T) {
	timers := []string{"--invite-ttl", "2s", "--review-ttl", "2s", "--phase-timeout", "1s", "--heartbeat-interval", "100ms"}
	cases := []struct {
		name, fault string
		committed   bool
	}{
		{"after the locks", "send:prepare", false},
		{"after its own commit", "send:commit", true},
		{"after some members commit", "send:commit:2", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ec := etcdtest.Start(t, etcdtest.Options{})
			node := func(i int) *daemon {
				return newDaemon(t, "dc-1", append([]string{"--store", "etcd", "--etcd-endpoints", strings.Join(ec.Endpoints(), ","), "--node", fmt.Sprintf("n%d", i)}, timers...)...)
			}
			n1 := node(1)
			n1.start()
			h := &haDC{t: t, nodes: []*daemon{n1}}
			h.waitLeader(10 * time.Second)
			others := []*daemon{startDaemon(t, "dc-2", timers...), startDaemon(t, "dc-3", timers...)}
			cand := startDaemon(t, "dc-4", timers...)
			for _, o := range others {
				mustDCAdd(t, n1, o)
			}
			before := expectFederation(t, append([]*daemon{n1}, others...), []*daemon{cand})

			// n1 leads again with the crash point armed; n2 and n3 follow.
			if err := n1.stop(); err != nil {
				t.Fatal(err)
			}
			n1.env = []string{"VIPSMART_TEST_FAULT=" + c.fault}
			n1.start()
			h.waitLeader(10 * time.Second)
			n2, n3 := node(2), node(3)
			n2.start()
			n3.start()
			h.nodes = []*daemon{n1, n2, n3}
			if l := h.waitLeader(10 * time.Second); l != n1 {
				t.Fatalf("the leader is %s; want n1", l.sock)
			}
			h.waitNodesRecorded(n1) // no change recording the nodes runs during the add
			expectFederation(t, append([]*daemon{n2}, others...), []*daemon{cand})

			r := dcAdd(t, n2, cand)
			if r.code == 0 {
				t.Fatalf("dc add succeeded although the leader was to crash: %s", r.stdout)
			}
			select {
			case <-n1.done:
			case <-time.After(5 * time.Second):
				t.Fatalf("the leader did not crash at %s", c.fault)
			}
			if !strings.Contains(n1.Logs(), "test crash point reached") {
				t.Fatalf("the leader exited without reaching the crash point:\n%s", n1.Logs())
			}
			leader := h.waitLeader(10 * time.Second)
			h.waitNodesRecorded(leader)
			for i, d := range h.nodes {
				if d == leader {
					t.Logf("n%d leads after the crash", i+1)
				}
			}
			dc1 := []*daemon{n2, n3}
			if c.committed {
				for _, d := range dc1 {
					after := expectFederation(t, append([]*daemon{d, cand}, others...), nil)
					if after.Federation.ID != before.Federation.ID || !epochMovedByNodes(t, d, before.Federation.Epoch+1, after.Federation.Epoch) {
						t.Fatalf("after a committed add: %s/%d; before %s/%d", after.Federation.ID, after.Federation.Epoch, before.Federation.ID, before.Federation.Epoch)
					}
				}
				return
			}
			for _, d := range dc1 {
				after := expectFederation(t, append([]*daemon{d}, others...), []*daemon{cand})
				if after.Federation.ID != before.Federation.ID || !epochMovedByNodes(t, d, before.Federation.Epoch, after.Federation.Epoch) {
					t.Fatalf("after an aborted add: %s/%d; before %s/%d", after.Federation.ID, after.Federation.Epoch, before.Federation.ID, before.Federation.Epoch)
				}
			}
			// The federation works again: the add, through the other
			// follower, now succeeds.
			follower := n2
			if leader == n2 {
				follower = n3
			}
			eventually(t, 15*time.Second, "dc add after the failover", func() error {
				if r := dcAdd(t, follower, cand); r.code != 0 {
					return fmt.Errorf("exit %d: %s", r.code, r.stderr)
				}
				return nil
			})
			expectFederation(t, append([]*daemon{n2, cand}, others...), nil)
		})
	}
}
