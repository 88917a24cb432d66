package jsondup

import "testing"

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
