package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestTwoOfFiveDCsDead is the regional outage of docs/federation.md: in a
// federation of five, two DCs die (kill -9). Every change needs every
// member, so a GIP change fails; forcing out a DC that is reachable is
// refused; one `dc remove --force` removes both dead DCs in one change,
// committed among the three survivors; a `gip update` then commits at once.
// The two dead DCs restart fenced out: standalone, no objects, and they
// can be added back.
func TestTwoOfFiveDCsDead(t *testing.T) {
	ds := startFederation(t, 5, fedTimers...)
	d1, d2, d3, d4, d5 := ds[0], ds[1], ds[2], ds[3], ds[4]
	mustCLI(t, d1.server(), "gip", "add", "www", "203.0.113.10", "--placement", "dc-1:200,dc-4:250,dc-5:150")
	before := expectFederation(t, ds, nil)

	d4.kill()
	d5.kill()
	r := cli(t, d1.server(), "gip", "update", "www", "--placement", "dc-1:200,dc-2:100")
	if r.code != 1 || !(strings.Contains(r.stderr, "dc-4") || strings.Contains(r.stderr, "dc-5")) {
		t.Fatalf("gip update with two members dead: exit %d, stderr %q; want exit 1 naming a dead DC", r.code, r.stderr)
	}
	r = cli(t, d1.server(), "dc", "remove", "--force", "dc-3")
	if r.code != 1 || !strings.Contains(r.stderr, "dc-3 is reachable") || !strings.Contains(r.stderr, "plain dc remove dc-3") {
		t.Fatalf("forced removal of a reachable DC: exit %d, stderr %q", r.code, r.stderr)
	}
	// Once the survivors see both dead (a few heartbeats), one forced
	// removal takes both out.
	var out string
	eventually(t, 10*time.Second, "dc remove --force dc-4,dc-5", func() error {
		r := cli(t, d1.server(), "dc", "remove", "--force", "dc-4,dc-5")
		if r.code != 0 {
			return fmt.Errorf("exit %d: %s", r.code, r.stderr)
		}
		out = r.stdout
		return nil
	})
	if !strings.Contains(out, "DC dc-4, dc-5 removed") {
		t.Fatalf("dc remove output:\n%s", out)
	}
	after := expectFederation(t, ds[:3], nil)
	if after.Federation.ID != before.Federation.ID || after.Federation.Epoch != before.Federation.Epoch+1 {
		t.Fatalf("after the forced removal: %s@%d, before %s@%d: want one change in the same federation", after.Federation.ID, after.Federation.Epoch, before.Federation.ID, before.Federation.Epoch)
	}
	// The GIP lost the dead DCs' placements in the same change, and an
	// update now commits at once on the three survivors.
	mustCLI(t, d2.server(), "gip", "update", "www", "--placement", "dc-1:200,dc-2:100")
	expectFederation(t, ds[:3], nil)
	for _, d := range ds[:3] {
		var g gipInfo
		cliJSON(t, d.server(), &g, "gip", "show", "www")
		var got []string
		for _, p := range g.Placements {
			got = append(got, fmt.Sprintf("%s:%d", p.DC, p.Priority))
		}
		if strings.Join(got, ",") != "dc-1:200,dc-2:100" {
			t.Fatalf("%s holds www with placements %v", d.name, got)
		}
	}

	// The dead DCs come back: fenced out, standalone.
	d4.start()
	d5.start()
	expectFederation(t, ds[:3], ds[3:])
	for _, d := range ds[3:] {
		var ev []struct {
			Message string `json:"message"`
		}
		cliJSON(t, d.server(), &ev, "events")
		fenced := false
		for _, e := range ev {
			fenced = fenced || strings.Contains(e.Message, "fenced out of federation "+before.Federation.ID)
		}
		if !fenced {
			t.Fatalf("%s has no fencing event: %+v", d.name, ev)
		}
	}
	// And they can be added back.
	mustDCAdd(t, d1, d4)
	mustDCAdd(t, d3, d5)
	expectFederation(t, ds, nil)
}
