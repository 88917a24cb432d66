package e2e

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

type fedStatus struct {
	Name       string `json:"name"`
	Status     string `json:"status"`
	Epoch      uint64 `json:"epoch"`
	OpID       string `json:"op_id"`
	Federation *struct {
		ID      string `json:"id"`
		Epoch   uint64 `json:"epoch"`
		Members []struct {
			Name string `json:"name"`
		} `json:"members"`
	} `json:"federation"`
	GIPs int `json:"gips"`
}

func (s fedStatus) members() []string {
	if s.Federation == nil {
		return nil
	}
	var out []string
	for _, m := range s.Federation.Members {
		out = append(out, m.Name)
	}
	sort.Strings(out)
	return out
}

type dcRow struct {
	Name      string `json:"name"`
	Self      bool   `json:"self"`
	Reachable bool   `json:"reachable"`
	LastEpoch uint64 `json:"last_epoch"`
}

func status(t testing.TB, d *daemon) fedStatus {
	t.Helper()
	var st fedStatus
	cliJSON(t, d.server(), &st, "status")
	return st
}

// fedTimers are short protocol timers so that expiry and convergence
// happen within a test's patience.
var fedTimers = []string{"--invite-ttl", "3s", "--review-ttl", "3s", "--phase-timeout", "1s", "--heartbeat-interval", "100ms"}

// expectFederation waits until every daemon in members is a member of one
// federation at one epoch listing exactly members, and every daemon in
// standalone is standalone with no DC or GIP objects; nobody holds a
// temporary status.
func expectFederation(t testing.TB, members, standalone []*daemon) fedStatus {
	t.Helper()
	var want []string
	for _, d := range members {
		want = append(want, d.name)
	}
	sort.Strings(want)
	var first fedStatus
	eventually(t, 15*time.Second, fmt.Sprintf("federation of %v", want), func() error {
		for i, d := range members {
			st := status(t, d)
			if st.Status != "member" || st.Federation == nil {
				return fmt.Errorf("%s is %s", d.name, st.Status)
			}
			if got := st.members(); strings.Join(got, ",") != strings.Join(want, ",") {
				return fmt.Errorf("%s lists members %v", d.name, got)
			}
			if i == 0 {
				first = st
			} else if st.Federation.ID != first.Federation.ID || st.Federation.Epoch != first.Federation.Epoch {
				return fmt.Errorf("%s at %s/%d, %s at %s/%d", d.name, st.Federation.ID, st.Federation.Epoch, members[0].name, first.Federation.ID, first.Federation.Epoch)
			}
		}
		for _, d := range standalone {
			st := status(t, d)
			if st.Status != "standalone" || st.Federation != nil || st.GIPs != 0 {
				return fmt.Errorf("%s is %s with federation %v", d.name, st.Status, st.Federation)
			}
			var dcs []any
			cliJSON(t, d.server(), &dcs, "dc", "list")
			if len(dcs) != 0 {
				return fmt.Errorf("standalone %s still lists DCs %v", d.name, dcs)
			}
		}
		return nil
	})
	return first
}

// TestFederationOfFourThroughCLI builds a federation of four DCs with dc add,
// removes one, lets one leave and re-adds it, all through the CLI.
func TestFederationOfFourThroughCLI(t *testing.T) {
	ds := make([]*daemon, 4)
	for i := range ds {
		ds[i] = startDaemon(t, fmt.Sprintf("dc-%d", i+1), fedTimers...)
	}
	d1, d2, d3, d4 := ds[0], ds[1], ds[2], ds[3]

	out := mustDCAdd(t, d1, d2)
	if !strings.Contains(out, "dc-2 added") {
		t.Fatalf("dc add output:\n%s", out)
	}
	st := expectFederation(t, ds[:2], ds[2:])
	fedID, epoch := st.Federation.ID, st.Federation.Epoch
	mustDCAdd(t, d1, d3)
	mustDCAdd(t, d2, d4) // any member can add
	st = expectFederation(t, ds, nil)
	if st.Federation.ID != fedID || st.Federation.Epoch != epoch+2 {
		t.Fatalf("after two more adds: federation %s epoch %d; want %s epoch %d", st.Federation.ID, st.Federation.Epoch, fedID, epoch+2)
	}
	eventually(t, 5*time.Second, "every member reachable in dc list", func() error {
		var rows []dcRow
		cliJSON(t, d3.server(), &rows, "dc", "list")
		if len(rows) != 4 {
			return fmt.Errorf("dc list has %d rows", len(rows))
		}
		for _, r := range rows {
			if !r.Reachable || r.LastEpoch != st.Federation.Epoch {
				return fmt.Errorf("row %+v", r)
			}
		}
		return nil
	})

	// Adding a DC that is already a member of a federation is refused.
	other := startDaemon(t, "dc-9", fedTimers...)
	if r := dcAdd(t, other, d4); r.code == 0 || !strings.Contains(r.stderr, "dc-4") {
		t.Fatalf("adding a federated DC: exit %d, stderr %s", r.code, r.stderr)
	}

	mustCLI(t, d2.server(), "dc", "remove", "dc-4")
	expectFederation(t, ds[:3], ds[3:])

	mustCLI(t, d3.server(), "dc", "leave")
	expectFederation(t, ds[:2], ds[2:])

	mustDCAdd(t, d1, d3)
	st2 := expectFederation(t, ds[:3], ds[3:])
	if st2.Federation.ID != fedID || st2.Federation.Epoch <= st.Federation.Epoch {
		t.Fatalf("re-add: federation %s epoch %d after %d", st2.Federation.ID, st2.Federation.Epoch, st.Federation.Epoch)
	}
}
