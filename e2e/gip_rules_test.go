package e2e

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func gipList(t testing.TB, d *daemon) []gipInfo {
	var gs []gipInfo
	cliJSON(t, d.server(), &gs, "gip", "list")
	return gs
}

// TestGIPRulesThroughCLI checks the GIP rules of the issue through the CLI:
// refusals name the DC that blocked the change and why and change nothing
// anywhere; a joining DC receives every GIP; removing a DC drops its
// placements; a GIP left with no placement stays, inactive, and says so.
func TestGIPRulesThroughCLI(t *testing.T) {
	ds := make([]*daemon, 4)
	for i := range ds {
		ds[i] = startDaemon(t, fmt.Sprintf("dc-%d", i+1), fedTimers...)
	}
	d1, d2, d3, d4 := ds[0], ds[1], ds[2], ds[3]
	mustDCAdd(t, d1, d2)
	mustDCAdd(t, d1, d3)
	expectFederation(t, ds[:3], ds[3:])
	mustCLI(t, d2.server(), "vip", "add", "web", "192.0.2.20")
	mustCLI(t, d1.server(), "gip", "add", "www", "203.0.113.10", "--placement", "dc-1:200,dc-2:150:web,dc-3:100")
	mustCLI(t, d1.server(), "gip", "add", "only3", "203.0.113.30", "--placement", "dc-3:100", "--mode", "anycast")
	eventually(t, 5*time.Second, "GIPs on every member", func() error {
		for _, d := range ds[:3] {
			if n := len(gipList(t, d)); n != 2 {
				return fmt.Errorf("%s has %d GIPs", d.name, n)
			}
		}
		return nil
	})
	before := gipList(t, d1)

	cases := []struct {
		at   *daemon
		args []string
		code int
		msgs []string
	}{
		{d1, []string{"gip", "add", "a", "203.0.113.40", "--placement", "dc-9:100"}, 2, []string{"dc-9", "not a member"}},
		{d3, []string{"gip", "add", "a", "192.0.2.20", "--placement", "dc-1:100"}, 1, []string{"dc-2", "VIP web"}},
		{d1, []string{"gip", "add", "a", "203.0.113.40", "--placement", "dc-2:100:nope"}, 2, []string{"dc-2", "no VIP named nope"}},
		{d1, []string{"gip", "add", "a", "203.0.113.40", "--placement", "dc-1:100:nope"}, 2, []string{"dc-1", "no VIP named nope"}},
		{d2, []string{"gip", "add", "a", "203.0.113.10", "--placement", "dc-1:100"}, 1, []string{"already used by GIP www"}},
		{d2, []string{"gip", "add", "www", "203.0.113.41", "--placement", "dc-1:100"}, 1, []string{"www already exists"}},
		{d2, []string{"gip", "update", "nope", "--preempt=false"}, 1, []string{"nope does not exist"}},
		{d2, []string{"gip", "remove", "nope"}, 1, []string{"nope does not exist"}},
		{d1, []string{"gip", "add", "a", "203.0.113.40", "--placement", "dc-1"}, 2, []string{"DC:PRIORITY"}},
		{d1, []string{"gip", "add", "a", "203.0.113.40", "--placement", "dc-1:0"}, 2, []string{"1 to 255"}},
		{d1, []string{"gip", "add", "a", "203.0.113.40", "--placement", "dc-1:256"}, 2, []string{"1 to 255"}},
		{d1, []string{"gip", "add", "a", "203.0.113.40", "--placement", "dc-1:1,dc-1:2"}, 2, []string{"twice"}},
		{d1, []string{"gip", "add", "a", "203.0.113.40", "--mode", "roundrobin"}, 2, []string{"mode"}},
		{d1, []string{"gip", "add", "a", "239.1.1.1"}, 2, []string{"multicast"}},
		{d1, []string{"gip", "update", "www"}, 2, []string{"nothing to update"}},
		{d1, []string{"vip", "add", "clash", "203.0.113.10"}, 1, []string{"GIP www"}},
		{d2, []string{"vip", "remove", "web"}, 1, []string{"backs the placement of GIP www"}},
		{d4, []string{"gip", "add", "a", "203.0.113.40", "--placement", "dc-4:100"}, 1, []string{"dc-4", "no federation"}},
	}
	for _, c := range cases {
		r := cli(t, c.at.server(), c.args...)
		if r.code != c.code {
			t.Errorf("%s: vipsmart %s: exit %d; want %d (stderr %q)", c.at.name, strings.Join(c.args, " "), r.code, c.code, r.stderr)
		}
		for _, m := range c.msgs {
			if !strings.Contains(r.stderr, m) {
				t.Errorf("%s: vipsmart %s: stderr %q does not say %q", c.at.name, strings.Join(c.args, " "), r.stderr, m)
			}
		}
	}
	for _, d := range ds[:3] {
		if got := gipList(t, d); !reflect.DeepEqual(stripActive(got), stripActive(before)) {
			t.Fatalf("refusals changed the GIPs on %s:\n%+v\nwant %+v", d.name, got, before)
		}
	}
	// An update that changes nothing succeeds and changes nothing.
	mustCLI(t, d3.server(), "gip", "update", "www", "--preempt=true")

	// A joining DC receives every GIP.
	mustDCAdd(t, d2, d4)
	expectFederation(t, ds, nil)
	if got := gipList(t, d4); !reflect.DeepEqual(stripActive(got), stripActive(before)) {
		t.Fatalf("the new member has GIPs %+v; want %+v", got, before)
	}

	// Removing dc-3 drops its placements in the same commit; only3 stays
	// with no placement, inactive, and says so.
	mustCLI(t, d1.server(), "dc", "remove", "dc-3")
	expectFederation(t, []*daemon{d1, d2, d4}, []*daemon{d3})
	for _, d := range []*daemon{d1, d2, d4} {
		gs := gipList(t, d)
		if len(gs) != 2 || gs[0].Name != "only3" || len(gs[0].Placements) != 0 || len(gs[0].Active) != 0 || len(gs[1].Placements) != 2 {
			t.Fatalf("%s after removing dc-3: %+v", d.name, gs)
		}
	}
	if out := mustCLI(t, d4.server(), "gip", "show", "only3"); !strings.Contains(out, "inactive everywhere") {
		t.Fatalf("gip show of a GIP without placements:\n%s", out)
	}
	mustCLI(t, d4.server(), "gip", "remove", "only3")
	eventually(t, 5*time.Second, "only3 removed everywhere", func() error {
		for _, d := range []*daemon{d1, d2, d4} {
			if n := len(gipList(t, d)); n != 1 {
				return fmt.Errorf("%s has %d GIPs", d.name, n)
			}
		}
		return nil
	})
}

func stripActive(gs []gipInfo) []gipInfo {
	out := make([]gipInfo, len(gs))
	for i, g := range gs {
		g.Active, g.Why = nil, nil
		out[i] = g
	}
	return out
}
