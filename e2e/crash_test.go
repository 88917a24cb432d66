package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestCoordinatorKilledMidAdd kills the coordinator (kill -9, at a test-only
// fault point) at each step of `dc add` into a federation of three, restarts
// it, and checks that every DC ends consistent with no temporary status
// left: the add either committed everywhere (the coordinator's own commit
// is the decision) or nowhere.
func TestCoordinatorKilledMidAdd(t *testing.T) {
	timers := []string{"--invite-ttl", "2s", "--review-ttl", "2s", "--phase-timeout", "1s", "--heartbeat-interval", "100ms"}
	cases := []struct {
		name, fault string
		committed   bool
	}{
		{"after the invite", "send:lock", false},
		{"after the locks", "send:prepare", false},
		{"after the candidate's prepare", "persist:committed at epoch", false},
		{"after its own commit", "send:commit", true},
		{"after some members commit", "send:commit:2", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ds := make([]*daemon, 4)
			for i := range ds {
				ds[i] = startDaemon(t, fmt.Sprintf("dc-%d", i+1), timers...)
			}
			coord, cand := ds[0], ds[3]
			mustDCAdd(t, coord, ds[1])
			mustDCAdd(t, coord, ds[2])
			before := expectFederation(t, ds[:3], ds[3:])

			// Restart the coordinator with the crash point armed.
			if err := coord.stop(); err != nil {
				t.Fatal(err)
			}
			coord.env = []string{"VIPSMART_TEST_FAULT=" + c.fault}
			coord.start()
			expectFederation(t, ds[:3], ds[3:])
			r := dcAdd(t, coord, cand)
			if r.code == 0 {
				t.Fatalf("dc add succeeded although the coordinator was to crash: %s", r.stdout)
			}
			select {
			case <-coord.done:
			case <-time.After(5 * time.Second):
				t.Fatalf("coordinator did not crash at %s", c.fault)
			}
			if !strings.Contains(coord.Logs(), "test crash point reached") {
				t.Fatalf("coordinator exited without reaching the crash point:\n%s", coord.Logs())
			}
			coord.env = nil
			coord.start()
			if c.committed {
				after := expectFederation(t, ds, nil)
				if after.Federation.ID != before.Federation.ID || after.Federation.Epoch != before.Federation.Epoch+1 {
					t.Fatalf("after a committed add: %s/%d; before %s/%d", after.Federation.ID, after.Federation.Epoch, before.Federation.ID, before.Federation.Epoch)
				}
			} else {
				after := expectFederation(t, ds[:3], ds[3:])
				if after.Federation.ID != before.Federation.ID || after.Federation.Epoch != before.Federation.Epoch {
					t.Fatalf("after an aborted add: %s/%d; before %s/%d", after.Federation.ID, after.Federation.Epoch, before.Federation.ID, before.Federation.Epoch)
				}
				// The federation works again: the add now succeeds.
				eventually(t, 10*time.Second, "dc add after recovery", func() error {
					if r := dcAdd(t, coord, cand); r.code != 0 {
						return fmt.Errorf("exit %d: %s", r.code, r.stderr)
					}
					return nil
				})
				expectFederation(t, ds, nil)
			}
		})
	}
}
