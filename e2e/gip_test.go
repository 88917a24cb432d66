package e2e

import (
	"fmt"
	"net"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

type gipInfo struct {
	Name       string            `json:"name"`
	Address    string            `json:"address"`
	Mode       string            `json:"mode"`
	Preempt    bool              `json:"preempt"`
	Active     []string          `json:"active"`
	Why        map[string]string `json:"why"`
	Placements []struct {
		DC       string `json:"dc"`
		Priority int    `json:"priority"`
		VIP      string `json:"vip"`
	} `json:"placements"`
}

// activeHere reports whether d considers itself active for GIP name.
func activeSet(t testing.TB, d *daemon, name string) []string {
	var g gipInfo
	cliJSON(t, d.server(), &g, "gip", "show", name)
	return g.Active
}

// waitActive waits until every daemon in ds reports exactly want as the
// active set of the GIP and returns how long it took.
func waitActive(t testing.TB, ds []*daemon, gip string, want []string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	eventually(t, timeout, fmt.Sprintf("GIP %s active on %v", gip, want), func() error {
		for _, d := range ds {
			got := activeSet(t, d, gip)
			if !slices.Equal(got, want) {
				return fmt.Errorf("%s sees %v active", d.name, got)
			}
		}
		return nil
	})
	return time.Since(start)
}

// TestGIPFailoverThroughCLI: a failover GIP across three DCs moves when the
// active DC is killed, fails back (preempt) or stays (no preempt) when it
// returns, and moves when the backend of its VIP goes away.
func TestGIPFailoverThroughCLI(t *testing.T) {
	ds := make([]*daemon, 3)
	for i := range ds {
		ds[i] = startDaemon(t, fmt.Sprintf("dc-%d", i+1), fedTimers...)
	}
	d1, d2, d3 := ds[0], ds[1], ds[2]
	mustDCAdd(t, d1, d2)
	mustDCAdd(t, d1, d3)
	expectFederation(t, ds, nil)

	// A backend for dc-2's VIP: a TCP listener on loopback.
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := backend.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	mustCLI(t, d2.server(), "vip", "add", "web", "192.0.2.20", "--check", "tcp://"+backend.Addr().String(), "--check-interval", "100ms", "--check-timeout", "50ms", "--check-rise", "1", "--check-fall", "2")
	eventually(t, 5*time.Second, "dc-2's VIP web up", func() error {
		var v vipInfo
		cliJSON(t, d2.server(), &v, "vip", "show", "web")
		if v.State != "up" {
			return fmt.Errorf("state %s", v.State)
		}
		return nil
	})

	mustCLI(t, d3.server(), "gip", "add", "www", "203.0.113.10", "--placement", "dc-1:200", "--placement", "dc-2:150:web", "--placement", "dc-3:100")
	mustCLI(t, d3.server(), "gip", "add", "sticky", "203.0.113.11", "--placement", "dc-1:200,dc-2:150,dc-3:100", "--preempt=false")
	waitActive(t, ds, "www", []string{"dc-1"}, 5*time.Second)
	waitActive(t, ds, "sticky", []string{"dc-1"}, 5*time.Second)
	// What each DC announces (the default announcer only keeps state):
	// dc-1 the active GIPs, dc-2 its VIP and the standby GIPs.
	announced := func(d *daemon) map[string]string {
		var st struct {
			Announced []struct {
				Address, Kind, Name, Via, Since string
			} `json:"announced"`
		}
		cliJSON(t, d.server(), &st, "status")
		m := map[string]string{}
		for _, a := range st.Announced {
			if a.Via != "none" || a.Since == "" {
				t.Fatalf("%s announces %+v", d.name, a)
			}
			m[a.Name] = a.Kind + " " + a.Address
		}
		return m
	}
	eventually(t, 5*time.Second, "announced sets", func() error {
		a1, a2 := announced(d1), announced(d2)
		w1 := map[string]string{"www": "gip-active 203.0.113.10", "sticky": "gip-active 203.0.113.11"}
		w2 := map[string]string{"web": "vip 192.0.2.20", "www": "gip-standby 203.0.113.10", "sticky": "gip-standby 203.0.113.11"}
		if !reflect.DeepEqual(a1, w1) || !reflect.DeepEqual(a2, w2) {
			return fmt.Errorf("dc-1 announces %v, dc-2 %v", a1, a2)
		}
		return nil
	})

	// kill -9 of the active DC: dc-2 takes over within the detection time
	// (3 missed heartbeats of 100ms here, plus one interval of slack and
	// the time the CLI polls take).
	d1.kill()
	took := waitActive(t, ds[1:2], "www", []string{"dc-2"}, 1500*time.Millisecond)
	t.Logf("dc-2 reported itself active %s after kill -9", took)
	waitActive(t, ds[1:], "www", []string{"dc-2"}, time.Second)
	waitActive(t, ds[1:], "sticky", []string{"dc-2"}, 5*time.Second)
	var g gipInfo
	cliJSON(t, d3.server(), &g, "gip", "show", "www")
	if !strings.Contains(g.Why["dc-1"], "unreachable") {
		t.Fatalf("gip show does not say why dc-1 is not active: %v", g.Why)
	}

	// dc-1 returns: www fails back (preempt), sticky stays on dc-2.
	d1.start()
	waitActive(t, ds, "www", []string{"dc-1"}, 10*time.Second)
	waitActive(t, ds, "sticky", []string{"dc-2"}, 5*time.Second)
	time.Sleep(time.Second)
	waitActive(t, ds, "sticky", []string{"dc-2"}, time.Second)

	// The backend of dc-2's VIP goes away: www, now on dc-1, is unaffected;
	// move it to prefer dc-2 first, then close the backend: it moves to dc-1.
	mustCLI(t, d1.server(), "gip", "update", "www", "--placement", "dc-1:100,dc-2:200:web,dc-3:50")
	waitActive(t, ds, "www", []string{"dc-2"}, 5*time.Second)
	backend.Close()
	waitActive(t, ds, "www", []string{"dc-1"}, 5*time.Second)
	cliJSON(t, d1.server(), &g, "gip", "show", "www")
	if !strings.Contains(g.Why["dc-2"], "VIP web down in dc-2") {
		t.Fatalf("gip show does not say dc-2's VIP is down: %v", g.Why)
	}
	var ev []struct {
		Kind    string `json:"kind"`
		Message string `json:"message"`
	}
	cliJSON(t, d2.server(), &ev, "events")
	var sawDown, sawInactive bool
	for _, e := range ev {
		sawDown = sawDown || (e.Kind == "health" && strings.Contains(e.Message, "VIP web is down"))
		sawInactive = sawInactive || (e.Kind == "gip" && strings.Contains(e.Message, "GIP www") && strings.Contains(e.Message, "inactive here"))
	}
	if !sawDown || !sawInactive {
		t.Fatalf("dc-2's events lack the VIP going down (%v) or www going inactive (%v): %+v", sawDown, sawInactive, ev)
	}
}
