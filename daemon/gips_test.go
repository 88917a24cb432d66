package daemon

import (
	"testing"

	"github.com/vipsmart/vipsmart"
)

func TestUnknownBetter(t *testing.T) {
	g := vipsmart.GIP{Name: "g", Placements: []vipsmart.Placement{
		{DC: "dc-3", Priority: 100, VIP: "web"}, {DC: "dc-1", Priority: 200, VIP: "web"}, {DC: "dc-2", Priority: 150},
	}}
	view := vipsmart.HealthView{Reachable: map[string]bool{"dc-1": true, "dc-2": true, "dc-3": true}}
	unknown := map[string]map[string]bool{"dc-1": {"web": true}, "dc-3": {"web": true}}
	for _, c := range []struct {
		self, want string
		view       vipsmart.HealthView
	}{
		{"dc-3", "VIP web in dc-1", view}, // dc-1 ranks first and is unknown
		{"dc-2", "VIP web in dc-1", view},
		{"dc-1", "", view}, // nothing ranks before dc-1
		// An unreachable DC is known to be unhealthy: no wait.
		{"dc-2", "", vipsmart.HealthView{Reachable: map[string]bool{"dc-2": true, "dc-3": true}}},
	} {
		if got := unknownBetter(g, c.self, c.view, unknown); got != c.want {
			t.Errorf("unknownBetter(self %s) = %q, want %q", c.self, got, c.want)
		}
	}
	// Only a worse placement is unknown: no wait.
	if got := unknownBetter(g, "dc-2", view, map[string]map[string]bool{"dc-3": {"web": true}}); got != "" {
		t.Errorf("a worse unknown placement made dc-2 wait: %q", got)
	}
}
