package health

import (
	"testing"

	"github.com/vipsmart/vipsmart"
)

const (
	up      = vipsmart.VIPUp
	down    = vipsmart.VIPDown
	unknown = vipsmart.VIPUnknown
)

func TestCounter(t *testing.T) {
	for _, tc := range []struct {
		name       string
		rise, fall int
		start      vipsmart.VIPState // "" for the zero Counter
		results    string            // '+' success, '-' failure
		states     []vipsmart.VIPState
	}{
		{"rise 1", 1, 1, "", "+", []vipsmart.VIPState{up}},
		{"fall 1", 1, 1, "", "-", []vipsmart.VIPState{down}},
		{"rise 2 edge", 2, 2, "", "++", []vipsmart.VIPState{unknown, up}},
		{"fall 2 edge", 2, 2, "", "--", []vipsmart.VIPState{unknown, down}},
		{"rise 3 interrupted", 3, 2, "", "++-+++", []vipsmart.VIPState{unknown, unknown, unknown, unknown, unknown, up}},
		{"up then fall 3", 1, 3, "", "+---", []vipsmart.VIPState{up, up, up, down}},
		{"flapping stays up", 2, 2, "", "++-+-+-+", []vipsmart.VIPState{unknown, up, up, up, up, up, up, up}},
		{"flapping never leaves unknown", 2, 2, "", "+-+-+-", []vipsmart.VIPState{unknown, unknown, unknown, unknown, unknown, unknown}},
		{"down then recover", 2, 1, "", "-++", []vipsmart.VIPState{down, down, up}},
		{"down recover interrupted", 3, 1, "", "-++-+++", []vipsmart.VIPState{down, down, down, down, down, down, up}},
		{"long streak stays", 2, 2, "", "++++++", []vipsmart.VIPState{unknown, up, up, up, up, up}},
		{"rise 0 counts as 1", 0, 0, "", "+-", []vipsmart.VIPState{up, down}},
		{"start up keeps up", 2, 2, up, "-+-", []vipsmart.VIPState{up, up, up}},
		{"start up falls", 2, 2, up, "--", []vipsmart.VIPState{up, down}},
		{"start down rises", 2, 2, down, "+-++", []vipsmart.VIPState{down, down, down, up}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Counter{}
			if tc.start != "" {
				c = NewCounter(tc.start)
			}
			prev := c.State()
			if tc.start == "" && prev != unknown {
				t.Fatalf("zero Counter is %s, want unknown", prev)
			}
			for i, r := range tc.results {
				st, changed := c.Observe(r == '+', tc.rise, tc.fall)
				if st != tc.states[i] || changed != (st != prev) || c.State() != st {
					t.Fatalf("result %d (%c): got %s changed=%v, want %s changed=%v", i, r, st, changed, tc.states[i], tc.states[i] != prev)
				}
				prev = st
			}
		})
	}
}
