package jsonfast

import (
	"encoding/json"
	"testing"
)

// TestIntIsTheLibrarys: an integer is read where encoding/json reads the
// same int, and refused (left to the library) otherwise.
func TestIntIsTheLibrarys(t *testing.T) {
	for _, in := range []string{"0", "7", "-7", "-0", "200", "9223372036854775807", "-9223372036854775808",
		"9223372036854775808", "01", "1.0", "1e2", "-", "", "+1", "1x", "0x1", "true", `"1"`, " 5 ", "5,"} {
		r := New([]byte(in))
		n := r.Int()
		if r.OK() && in == "5," {
			continue // the comma is the next token's
		}
		if r.OK() {
			r.End()
		}
		var want int
		err := json.Unmarshal([]byte(in), &want)
		if r.OK() && (err != nil || n != want) {
			t.Errorf("%q: read %d, the library: %d, %v", in, n, want, err)
		}
	}
	for _, in := range []string{"01", "1.0", "1e2", "9223372036854775808", "1x", `"1"`, "-"} {
		if r := New([]byte(in)); r.Int() >= 0 && r.OK() && r.End() {
			t.Errorf("%q read as an integer", in)
		}
	}
}

// TestStringSubset: plain strings only; the rest is left to the library.
func TestStringSubset(t *testing.T) {
	for in, ok := range map[string]bool{`"web"`: true, `""`: true, `"a b-c.d:1/2"`: true, `"a\"b"`: false, `"\u0041"`: false, `"é"`: false, "\"a\tb\"": false, `"open`: false, `web`: false} {
		r := New([]byte(in))
		s := r.String()
		if r.OK() != ok {
			t.Errorf("%s: read %v, want %v", in, r.OK(), ok)
		}
		var want string
		if r.OK() && (json.Unmarshal([]byte(in), &want) != nil || s != want) {
			t.Errorf("%s: read %q, the library %q", in, s, want)
		}
	}
}

// TestRawEnds: Raw returns one whole value and leaves what follows.
func TestRawEnds(t *testing.T) {
	for in, want := range map[string]string{
		`{"a":[1,"]}"],"b":{}},x`: `{"a":[1,"]}"],"b":{}}`,
		`"s\"}" ,`:                `"s\"}"`,
		`null}`:                   `null`,
		`12]`:                     `12`,
		` true , 1`:               `true`,
		`[[],[{}]]`:               `[[],[{}]]`,
	} {
		r := New([]byte(in))
		if got := string(r.Raw()); !r.OK() || got != want {
			t.Errorf("%s: Raw %q (ok %v), want %q", in, got, r.OK(), want)
		}
	}
	for _, in := range []string{`}`, `]`, `,`, ``, `[1,2`, `{"a":`} {
		r := New([]byte(in))
		if got := r.Raw(); r.OK() {
			t.Errorf("%q: Raw %q, want a failure", in, got)
		}
	}
}

// TestInternedIsBounded: Interned gives equal strings and keeps at most
// 1,024 (the input is not trusted).
func TestInternedIsBounded(t *testing.T) {
	m := map[string]string{}
	for i := range 3000 {
		r := New([]byte(`"dc-` + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676)) + `"`))
		if s := r.Interned(m); !r.OK() || len(s) != 6 {
			t.Fatalf("%d: %q %v", i, s, r.OK())
		}
	}
	if len(m) != 1024 {
		t.Fatalf("%d strings kept", len(m))
	}
}

// TestObjectAndFields: an object's keys in order; a repeated key fails.
func TestObjectAndFields(t *testing.T) {
	r := New([]byte(` { "a" : 1 , "b" : [ true , false ] } `))
	var keys []string
	var bs []bool
	r.Object(func(k []byte) {
		keys = append(keys, string(k))
		if string(k) == "a" {
			r.Int()
		} else {
			r.Array(func() { bs = append(bs, r.Bool()) })
		}
	})
	if !r.End() || len(keys) != 2 || keys[1] != "b" || len(bs) != 2 || !bs[0] || bs[1] {
		t.Fatalf("keys %v, bools %v, ok %v", keys, bs, r.OK())
	}
	r = New([]byte(`{"a":1,"a":2}`))
	var seen Fields
	r.Object(func(k []byte) { seen.Once(r, 0); r.Int() })
	if r.OK() {
		t.Fatal("a repeated key was read")
	}
}
