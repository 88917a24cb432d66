package jsondup

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestFind(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"a": 1, "b": 2}`, ""},
		{`{"a": 1, "a": 2}`, "a"},
		{`{"dry_run": true, "gips": [], "dry_run": false}`, "dry_run"},
		{`{"gips": [{"name": "a"}, {"name": "b", "placements": [{"dc": "x"}, {"dc": "y", "priority": 1, "dc": "z"}]}]}`, "gips[1].placements[1].dc"},
		{`[{"kind": "GIP"}, {"kind": "GIP", "check": {"url": "a", "url": "b"}}]`, "[1].check.url"},
		{`[{"a": {"a": 1}}, {"a": [{"a": 1}, {"a": 2}]}]`, ""},
		{`{"a": "{\"a\": 1, \"a\": 2}"}`, ""},
		{`{"b": 1, "a": `, ""},
		{`[1, 2, "a"]`, ""},
		{`{"k\u0061": 1, "ka": 2}`, "ka"},
	} {
		if got, _ := Find([]byte(c.in)); got != c.want {
			t.Errorf("Find(%s) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestFindKey(t *testing.T) {
	for _, c := range []struct{ in, key, want string }{
		{`{"gips": [{"name": "a"}, {"name": "b", "kind": "GIP"}]}`, "kind", "gips[1].kind"},
		{`{"kind": 1}`, "kind", "kind"},
		{`{"a": "kind"}`, "kind", ""},
	} {
		if got := FindKey([]byte(c.in), c.key); got != c.want {
			t.Errorf("FindKey(%s, %s) = %q, want %q", c.in, c.key, got, c.want)
		}
	}
}

func TestPathBefore(t *testing.T) {
	b := []byte(`{"gips": [{"name": "a", "placements": [{"dc": "x", "priority": 1}]}, {"name": "b", "placements": [{"dc": "x", "priority": 1}, {"dc": "y", "priority": 1.5}]}], "dry_run": true}`)
	off := int64(len(`{"gips": [{"name": "a", "placements": [{"dc": "x", "priority": 1}]}, {"name": "b", "placements": [{"dc": "x", "priority": 1}, {"dc": "y", "priority": 1.5`))
	if got := PathBefore(b, off); got != "gips[1].placements[1].priority" {
		t.Fatalf("PathBefore = %q", got)
	}
}

func TestTypeErrorField(t *testing.T) {
	type pl struct {
		Priority int `json:"priority"`
	}
	type g struct {
		Placements []pl `json:"placements"`
	}
	var v struct {
		GIPs []g `json:"gips"`
	}
	b := []byte(`{"gips": [{"placements": []}, {"placements": [{"priority": 1}, {"priority": "x"}]}]}`)
	var te *json.UnmarshalTypeError
	if err := json.Unmarshal(b, &v); !errors.As(err, &te) {
		t.Fatalf("not a type error: %v", err)
	}
	if got := TypeErrorField(b, te); got != "gips[1].placements[1].priority" {
		t.Fatalf("TypeErrorField = %q (decoder: %q)", got, te.Field)
	}
}
