package vipsmart

import (
	"net/netip"
	"testing"
)

// TestApplyRequestValidateNamesTheTwin: a name or an address given twice
// is refused, naming the object and the other that has it.
func TestApplyRequestValidateNamesTheTwin(t *testing.T) {
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	pl := []Placement{{DC: "dc-1", Priority: 100}}
	for _, c := range []struct {
		req         ApplyRequest
		field, want string
	}{
		{ApplyRequest{GIPs: []GIP{{Name: "g", Address: a, Placements: pl}, {Name: "g", Address: b, Placements: pl}}}, "gips[1].name", "GIP g is given twice: give each object once"},
		{ApplyRequest{GIPs: []GIP{{Name: "g", Address: a, Placements: pl}, {Name: "h", Address: a, Placements: pl}}}, "gips[1].address", "GIP h has address 192.0.2.1, which GIP g has too: give each address once"},
		{ApplyRequest{VIPs: []VIP{{Name: "v", Address: a}}, GIPs: []GIP{{Name: "g", Address: a, Placements: pl}}}, "gips[0].address", "GIP g has address 192.0.2.1, which VIP v has too: give each address once"},
		{ApplyRequest{VIPs: []VIP{{Name: "v", Address: a}, {Name: "v", Address: b}}}, "vips[1].name", "VIP v is given twice: give each object once"},
	} {
		err := c.req.Validate()
		e, ok := err.(*Error)
		if !ok || e.Field != c.field || e.Message != c.want {
			t.Errorf("got %#v, want field %s, message %q", err, c.field, c.want)
		}
	}
	ok := ApplyRequest{VIPs: []VIP{{Name: "g", Address: b}}, GIPs: []GIP{{Name: "g", Address: a, Placements: []Placement{{DC: "b", Priority: 5}, {DC: "a", Priority: 5}, {DC: "c", Priority: 9}}}}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("a VIP and a GIP of one name: %v", err)
	}
	if got := ok.GIPs[0].Placements; got[0].DC != "c" || got[1].DC != "a" || got[2].DC != "b" {
		t.Fatalf("placements not sorted by priority then DC: %v", got)
	}
}
