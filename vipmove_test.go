package vipsmart

import (
	"strings"
	"testing"
)

func TestParseVIPNode(t *testing.T) {
	for in, want := range map[string]VIPNode{"n1:200": {"n1", 200}, "n2": {"n2", DefaultVIPPriority}, "host-a:1": {"host-a", 1}, "b:255": {"b", 255}} {
		got, err := ParseVIPNode("--node", in)
		if err != nil || got != want {
			t.Errorf("%q: %+v %v, want %+v", in, got, err, want)
		}
	}
	for in, msg := range map[string]string{"n1:0": "out of range", "n1:256": "out of range", "n1:x": "not a number", ":100": "node", "N1:100": "node", "": "node"} {
		if _, err := ParseVIPNode("--node", in); err == nil || !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), "--node") {
			t.Errorf("%q: %v, want an error naming --node and saying %q", in, err, msg)
		}
	}
	if err := ValidateVIPNodes([]VIPNode{{"n1", 100}, {"n1", 200}}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("a node twice: %v", err)
	}
	v := VIP{Name: "web", Nodes: []VIPNode{{"n1", 300}}}
	v.Address, _ = ParseHostAddr("address", "192.0.2.1")
	if err := v.Validate(); err == nil || ErrorCodeOf(err) != EINVALID {
		t.Errorf("VIP with priority 300: %v", err)
	}
}
