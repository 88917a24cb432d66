package vipsmart

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

var (
	genDCs  = []string{"dc-0", "dc-1", "dc-2", "dc-3", "dc-4", "dc-5", "dc-6"}
	genVIPs = []string{"web", "api"}
	// Few distinct priorities, so that ties are common.
	genPrios = []int{1, 50, 100, 100, 200, 255}
)

// genCase draws a random GIP (valid: each DC once), view and previous set.
func genCase(r *rand.Rand) (GIP, HealthView, []string) {
	g := GIP{Name: "g", Mode: ModeFailover, Preempt: r.IntN(2) == 0}
	if r.IntN(2) == 0 {
		g.Mode = ModeAnycast
	}
	dcs := slices.Clone(genDCs)
	r.Shuffle(len(dcs), func(i, j int) { dcs[i], dcs[j] = dcs[j], dcs[i] })
	for _, dc := range dcs[:r.IntN(len(dcs)+1)] {
		p := Placement{DC: dc, Priority: genPrios[r.IntN(len(genPrios))]}
		if r.IntN(3) > 0 {
			p.VIP = genVIPs[r.IntN(len(genVIPs))]
		}
		g.Placements = append(g.Placements, p)
	}
	v := HealthView{Reachable: map[string]bool{}, VIPUp: map[string]map[string]bool{}}
	for _, dc := range genDCs {
		if r.IntN(4) > 0 {
			v.Reachable[dc] = true
		} else if r.IntN(2) == 0 {
			v.Reachable[dc] = false
		}
		if r.IntN(5) == 0 {
			continue // no report from this DC
		}
		v.VIPUp[dc] = map[string]bool{}
		for _, name := range genVIPs {
			if r.IntN(5) > 0 { // sometimes a VIP is missing from the report
				v.VIPUp[dc][name] = r.IntN(3) > 0
			}
		}
	}
	var prev []string
	for range r.IntN(3) {
		prev = append(prev, genDCs[r.IntN(len(genDCs))])
	}
	if r.IntN(10) == 0 {
		prev = append(prev, "dc-gone") // a DC no longer placed
	}
	return g, v, prev
}

// healthySet is the reference: the healthy placements, best first.
func healthySet(g GIP, v HealthView) []Placement {
	var out []Placement
	for _, p := range g.Placements {
		if ok, _ := PlacementHealthy(v, p); ok {
			out = append(out, p)
		}
	}
	SortPlacements(out)
	return out
}

func dcNames(ps []Placement) []string {
	out := []string{}
	for _, p := range ps {
		out = append(out, p.DC)
	}
	slices.Sort(out)
	return out
}

func TestActivePlacementsProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(20240601, 7))
	const n = 20000
	var seen struct{ anycast, failover, preemptKept, preemptMoved, none int }
	for i := range n {
		g, v, prev := genCase(r)
		got := ActivePlacements(g, v, prev)
		desc := func() string { return fmt.Sprintf("case %d: gip %+v\nview %+v\nprev %v\ngot %v", i, g, v, prev, got) }

		if got == nil {
			t.Fatalf("nil result, want non-nil: %s", desc())
		}
		if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Fatalf("result not sorted and unique: %s", desc())
		}

		// The same view gives the same answer whatever the order of the
		// placements and of prev.
		for range 3 {
			g2 := g
			g2.Placements = slices.Clone(g.Placements)
			r.Shuffle(len(g2.Placements), func(a, b int) { g2.Placements[a], g2.Placements[b] = g2.Placements[b], g2.Placements[a] })
			prev2 := slices.Clone(prev)
			r.Shuffle(len(prev2), func(a, b int) { prev2[a], prev2[b] = prev2[b], prev2[a] })
			if got2 := ActivePlacements(g2, v, prev2); !slices.Equal(got, got2) {
				t.Fatalf("shuffled placements gave %v: %s", got2, desc())
			}
		}

		// Never an unhealthy placement.
		for _, dc := range got {
			i := slices.IndexFunc(g.Placements, func(p Placement) bool { return p.DC == dc })
			if i < 0 {
				t.Fatalf("active %s is not a placement: %s", dc, desc())
			}
			if ok, why := PlacementHealthy(v, g.Placements[i]); !ok {
				t.Fatalf("active %s is unhealthy (%s): %s", dc, why, desc())
			}
		}

		healthy := healthySet(g, v)
		if len(healthy) == 0 {
			seen.none++
			if len(got) != 0 {
				t.Fatalf("none healthy but got %v: %s", got, desc())
			}
			continue
		}
		if g.Mode == ModeAnycast {
			seen.anycast++
			if want := dcNames(healthy); !slices.Equal(got, want) {
				t.Fatalf("anycast: want the healthy set %v: %s", want, desc())
			}
			continue
		}
		if len(got) != 1 {
			t.Fatalf("failover: want exactly one active: %s", desc())
		}
		var healthyPrev []Placement
		for _, p := range healthy { // still best first
			if slices.Contains(prev, p.DC) {
				healthyPrev = append(healthyPrev, p)
			}
		}
		switch {
		case g.Preempt || len(prev) == 0:
			seen.failover++
			if got[0] != healthy[0].DC {
				t.Fatalf("failover: want best healthy %s: %s", healthy[0].DC, desc())
			}
		case len(healthyPrev) > 0:
			seen.preemptKept++
			if got[0] != healthyPrev[0].DC {
				t.Fatalf("preempt off: want still-healthy previous %s: %s", healthyPrev[0].DC, desc())
			}
		default:
			seen.preemptMoved++
			if got[0] != healthy[0].DC {
				t.Fatalf("preempt off, previous unhealthy: want best healthy %s: %s", healthy[0].DC, desc())
			}
		}

		// Explain agrees with the answer.
		ex := ExplainPlacements(g, v, got)
		if len(ex) != len(g.Placements) {
			t.Fatalf("explain has %d entries for %d placements: %v", len(ex), len(g.Placements), ex)
		}
		for _, p := range g.Placements {
			ok, _ := PlacementHealthy(v, p)
			e := ex[p.DC]
			switch {
			case slices.Contains(got, p.DC):
				if e != "active" {
					t.Fatalf("explain %s = %q, want active: %s", p.DC, e, desc())
				}
			case !ok:
				if !strings.HasPrefix(e, "unhealthy: ") {
					t.Fatalf("explain %s = %q, want unhealthy: %s", p.DC, e, desc())
				}
			default:
				if !strings.HasPrefix(e, "standby: "+got[0]+" ") {
					t.Fatalf("explain %s = %q, want standby naming %s: %s", p.DC, e, got[0], desc())
				}
			}
		}
	}
	// The generator must reach every branch often enough to mean something.
	t.Logf("%d cases: %+v", n, seen)
	for name, c := range map[string]int{"anycast": seen.anycast, "failover": seen.failover, "preemptKept": seen.preemptKept, "preemptMoved": seen.preemptMoved, "none": seen.none} {
		if c < n/100 {
			t.Errorf("only %d cases for %s", c, name)
		}
	}
}

func TestPlacementHealthy(t *testing.T) {
	v := HealthView{
		Reachable: map[string]bool{"dc-1": true, "dc-2": true, "dc-3": false},
		VIPUp:     map[string]map[string]bool{"dc-1": {"web": true, "api": false}, "dc-3": {"web": true}},
	}
	for _, tc := range []struct {
		p   Placement
		ok  bool
		why string
	}{
		{Placement{DC: "dc-1", Priority: 1}, true, ""},
		{Placement{DC: "dc-1", Priority: 1, VIP: "web"}, true, ""},
		{Placement{DC: "dc-1", Priority: 1, VIP: "api"}, false, "VIP api down in dc-1"},
		{Placement{DC: "dc-1", Priority: 1, VIP: "db"}, false, "health of VIP db in dc-1 not known yet"},
		{Placement{DC: "dc-2", Priority: 1}, true, ""},
		{Placement{DC: "dc-2", Priority: 1, VIP: "web"}, false, "health of VIP web in dc-2 not known yet"},
		{Placement{DC: "dc-3", Priority: 1, VIP: "web"}, false, "dc-3 unreachable"},
		{Placement{DC: "dc-9", Priority: 1}, false, "dc-9 unreachable"},
	} {
		ok, why := PlacementHealthy(v, tc.p)
		if ok != tc.ok || why != tc.why {
			t.Errorf("PlacementHealthy(%+v) = %v, %q; want %v, %q", tc.p, ok, why, tc.ok, tc.why)
		}
	}
}

func TestActivePlacementsTable(t *testing.T) {
	all := HealthView{
		Reachable: map[string]bool{"dc-1": true, "dc-2": true, "dc-3": true},
		VIPUp:     map[string]map[string]bool{"dc-1": {"web": true}, "dc-2": {"web": true}, "dc-3": {"web": true}},
	}
	dc1Down := HealthView{
		Reachable: map[string]bool{"dc-1": true, "dc-2": true, "dc-3": true},
		VIPUp:     map[string]map[string]bool{"dc-1": {"web": false}, "dc-2": {"web": true}, "dc-3": {"web": true}},
	}
	dc2Gone := HealthView{
		Reachable: map[string]bool{"dc-1": true, "dc-3": true},
		VIPUp:     all.VIPUp,
	}
	ps := []Placement{{DC: "dc-1", Priority: 200, VIP: "web"}, {DC: "dc-2", Priority: 100, VIP: "web"}, {DC: "dc-3", Priority: 100}}
	failover := GIP{Name: "g", Mode: ModeFailover, Preempt: true, Placements: ps}
	sticky := failover
	sticky.Preempt = false
	anycast := GIP{Name: "g", Mode: ModeAnycast, Placements: ps}
	noMode := failover
	noMode.Mode = ""

	for _, tc := range []struct {
		name    string
		g       GIP
		v       HealthView
		prev    []string
		want    []string
		explain map[string]string
	}{
		{"failover best", failover, all, nil, []string{"dc-1"}, map[string]string{
			"dc-1": "active", "dc-2": "standby: dc-1 has better priority 200", "dc-3": "standby: dc-1 has better priority 200"}},
		{"failover no mode", noMode, all, nil, []string{"dc-1"}, nil},
		{"failover preempts back", failover, all, []string{"dc-2"}, []string{"dc-1"}, nil},
		{"failover tie by name", failover, dc1Down, nil, []string{"dc-2"}, map[string]string{
			"dc-1": "unhealthy: VIP web down in dc-1", "dc-2": "active", "dc-3": "standby: dc-2 has the same priority 100 and sorts first"}},
		{"failover tie, dc-2 gone", failover, HealthView{Reachable: map[string]bool{"dc-3": true}, VIPUp: dc1Down.VIPUp}, nil, []string{"dc-3"}, map[string]string{
			"dc-1": "unhealthy: dc-1 unreachable", "dc-2": "unhealthy: dc-2 unreachable", "dc-3": "active"}},
		{"sticky keeps previous", sticky, all, []string{"dc-3"}, []string{"dc-3"}, map[string]string{
			"dc-1": "standby: dc-3 stays active (preempt off)", "dc-2": "standby: dc-3 stays active (preempt off)", "dc-3": "active"}},
		{"sticky previous unhealthy", sticky, dc2Gone, []string{"dc-2"}, []string{"dc-1"}, nil},
		{"sticky no previous", sticky, dc1Down, nil, []string{"dc-2"}, nil},
		{"sticky two previous keeps best", sticky, all, []string{"dc-3", "dc-2"}, []string{"dc-2"}, nil},
		{"anycast all", anycast, all, nil, []string{"dc-1", "dc-2", "dc-3"}, nil},
		{"anycast some", anycast, dc1Down, []string{"dc-1"}, []string{"dc-2", "dc-3"}, map[string]string{
			"dc-1": "unhealthy: VIP web down in dc-1", "dc-2": "active", "dc-3": "active"}},
		{"none healthy", failover, HealthView{}, []string{"dc-1"}, []string{}, map[string]string{
			"dc-1": "unhealthy: dc-1 unreachable", "dc-2": "unhealthy: dc-2 unreachable", "dc-3": "unhealthy: dc-3 unreachable"}},
		{"no placements", GIP{Name: "g", Mode: ModeFailover}, all, nil, []string{}, map[string]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ActivePlacements(tc.g, tc.v, tc.prev)
			if got == nil || !slices.Equal(got, tc.want) {
				t.Fatalf("ActivePlacements = %#v, want %#v", got, tc.want)
			}
			if tc.explain == nil {
				return
			}
			ex := ExplainPlacements(tc.g, tc.v, got)
			if fmt.Sprint(ex) != fmt.Sprint(tc.explain) {
				t.Errorf("ExplainPlacements =\n  %v\nwant\n  %v", ex, tc.explain)
			}
		})
	}
}

func TestExplainStaleActive(t *testing.T) {
	// Explain takes the active set as given, so it can show a placement that
	// is still announced but no longer healthy, and a set nobody is active in.
	g := GIP{Name: "g", Mode: ModeFailover, Preempt: true, Placements: []Placement{{DC: "dc-1", Priority: 10}, {DC: "dc-2", Priority: 20}}}
	v := HealthView{Reachable: map[string]bool{"dc-1": true}}
	ex := ExplainPlacements(g, v, []string{"dc-2"})
	if ex["dc-2"] != "active but unhealthy: dc-2 unreachable" || ex["dc-1"] != "standby: dc-2 has better priority 20" {
		t.Errorf("stale active: %v", ex)
	}
	ex = ExplainPlacements(g, v, nil)
	if ex["dc-1"] != "standby: no placement is active" {
		t.Errorf("nobody active: %v", ex)
	}
}
