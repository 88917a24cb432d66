package jsondup

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"unicode/utf8"
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

// findSlow is Find by the decoder's tokens (walk): the reference.
func findSlow(b []byte) string {
	p, _ := walk(b, func(f *frame, k string, _ int64) bool {
		if _, dup := f.keys[k]; dup {
			return true
		}
		f.keys[k] = struct{}{}
		return false
	})
	return p
}

// FuzzFind: on valid JSON, Find's scan finds what the decoder's tokens
// find.
func FuzzFind(f *testing.F) {
	for _, s := range []string{
		`{"a": 1, "b": {"c": [1, {"d": 2, "d": 3}]}}`,
		`[{"a": "x\"y", "a\u0062": 1, "ab": 2}]`,
		`{"k": {"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11,"l":12,"m":13,"n":14,"o":15,"p":16,"q":17,"a":18}}`,
		`{"gips": [{"name": "a"}, {"name": "b", "placements": [{"dc": "x"}, {"dc": "y", "dc": "z"}]}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) || !utf8.Valid(b) {
			return // Find's callers refuse both first
		}
		if got, want := func() string { p, _ := Find(b); return p }(), findSlow(b); got != want {
			t.Fatalf("Find(%s) = %q, the tokens find %q", b, got, want)
		}
	})
}

// BenchmarkFind: a body of 10,000 GIPs placed in 10 DCs (3.4 MB), found
// free of duplicate keys, against decoding it with encoding/json.
func BenchmarkFind(b *testing.B) {
	type pl struct {
		DC       string `json:"dc"`
		Priority int    `json:"priority"`
	}
	type g struct {
		Name       string `json:"name"`
		Address    string `json:"address"`
		Placements []pl   `json:"placements"`
	}
	var gs []g
	for i := range 10000 {
		x := g{Name: fmt.Sprintf("g%05d", i), Address: fmt.Sprintf("10.1.%d.%d", i>>8, i&255)}
		for k := range 10 {
			x.Placements = append(x.Placements, pl{fmt.Sprintf("dc-%d", k), 100})
		}
		gs = append(gs, x)
	}
	body, _ := json.Marshal(map[string]any{"gips": gs})
	b.Run("find", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if p, _ := Find(body); p != "" {
				b.Fatal(p)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			var v map[string][]g
			if err := json.Unmarshal(body, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
