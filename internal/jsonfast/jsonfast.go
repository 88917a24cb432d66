// Package jsonfast reads a strict subset of JSON without reflection, for
// the large bodies of vipsmart apply (10,000 GIPs: megabytes that
// encoding/json takes a large part of a second to decode).
//
// Invariant: a reader built on it either fails (OK is false) or reads the
// same values encoding/json would read from the same bytes. It accepts
// only plain strings (printable ASCII, no escapes), plain integers, true,
// false, null where the caller allows it, and the keys the caller knows,
// each once; on anything else the caller decodes the bytes again with
// encoding/json, whose messages then say what is wrong. So the subset
// only changes how fast valid input is read, never what is accepted.
package jsonfast

import "strconv"

// Reader reads JSON from a byte slice; after the first failure every
// call does nothing and OK is false.
type Reader struct {
	b  []byte
	i  int
	ok bool
}

// New returns a Reader of b.
func New(b []byte) *Reader { return &Reader{b: b, ok: true} }

// OK reports whether everything read so far was in the subset.
func (r *Reader) OK() bool { return r.ok }

// Fail marks the input as outside the subset.
func (r *Reader) Fail() { r.ok = false }

// Pos is the offset of the next byte to read.
func (r *Reader) Pos() int { return r.i }

// SkipSpace moves past JSON white space.
func (r *Reader) SkipSpace() {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// Consume moves past c (after white space) if it comes next.
func (r *Reader) Consume(c byte) bool {
	if !r.ok {
		return false
	}
	r.SkipSpace()
	if r.i < len(r.b) && r.b[r.i] == c {
		r.i++
		return true
	}
	return false
}

// Expect moves past c, or fails.
func (r *Reader) Expect(c byte) {
	if !r.Consume(c) {
		r.ok = false
	}
}

// End reports whether only white space is left; it fails if not.
func (r *Reader) End() bool {
	r.SkipSpace()
	if r.i != len(r.b) {
		r.ok = false
	}
	return r.ok
}

// Null moves past null if it comes next.
func (r *Reader) Null() bool {
	if !r.ok {
		return false
	}
	r.SkipSpace()
	if len(r.b)-r.i >= 4 && string(r.b[r.i:r.i+4]) == "null" && !r.literalGoesOn(r.i+4) {
		r.i += 4
		return true
	}
	return false
}

// literalGoesOn reports whether the byte at j continues a literal (so
// that "nullx" or "truex" is not read as null or true).
func (r *Reader) literalGoesOn(j int) bool {
	if j >= len(r.b) {
		return false
	}
	switch r.b[j] {
	case ' ', '\t', '\n', '\r', ',', ']', '}':
		return false
	}
	return true
}

// stringBytes reads a plain string: its bytes, without the quotes.
func (r *Reader) stringBytes() []byte {
	if !r.ok {
		return nil
	}
	r.SkipSpace()
	if r.i >= len(r.b) || r.b[r.i] != '"' {
		r.ok = false
		return nil
	}
	start := r.i + 1
	for j := start; j < len(r.b); j++ {
		c := r.b[j]
		if c == '"' {
			r.i = j + 1
			return r.b[start:j]
		}
		if c < 0x20 || c > 0x7e || c == '\\' {
			break
		}
	}
	r.ok = false
	return nil
}

// String reads a plain string.
func (r *Reader) String() string {
	b := r.stringBytes()
	if !r.ok {
		return ""
	}
	return string(b)
}

// Interned reads a plain string that is often repeated (a DC's name in
// 10,000 placements): the same string each time, from m, which keeps at
// most 1,024 of them.
func (r *Reader) Interned(m map[string]string) string {
	b := r.stringBytes()
	if !r.ok {
		return ""
	}
	if s, ok := m[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(m) < 1024 {
		m[s] = s
	}
	return s
}

// Key reads an object's key and the colon after it; the bytes are the
// input's (compare them, do not keep them).
func (r *Reader) Key() []byte {
	k := r.stringBytes()
	r.Expect(':')
	return k
}

// number reads a plain integer's text: an optional minus and digits, no
// leading zero, no fraction or exponent.
func (r *Reader) number() []byte {
	if !r.ok {
		return nil
	}
	r.SkipSpace()
	start := r.i
	j := r.i
	if j < len(r.b) && r.b[j] == '-' {
		j++
	}
	d := j
	for j < len(r.b) && r.b[j] >= '0' && r.b[j] <= '9' {
		j++
	}
	if j == d || (r.b[d] == '0' && j-d > 1) || r.literalGoesOn(j) {
		r.ok = false
		return nil
	}
	r.i = j
	return r.b[start:j]
}

// Int reads a plain integer that fits an int.
func (r *Reader) Int() int {
	n, err := strconv.ParseInt(string(r.number()), 10, 0)
	if err != nil {
		r.ok = false
	}
	return int(n)
}

// Uint64 reads a plain integer that fits a uint64.
func (r *Reader) Uint64() uint64 {
	n, err := strconv.ParseUint(string(r.number()), 10, 64)
	if err != nil {
		r.ok = false
	}
	return n
}

// Bool reads true or false.
func (r *Reader) Bool() bool {
	if !r.ok {
		return false
	}
	r.SkipSpace()
	for _, v := range []bool{true, false} {
		s := strconv.FormatBool(v)
		if len(r.b)-r.i >= len(s) && string(r.b[r.i:r.i+len(s)]) == s && !r.literalGoesOn(r.i+len(s)) {
			r.i += len(s)
			return v
		}
	}
	r.ok = false
	return false
}

// Object reads an object, calling field for each key (the input's
// bytes); field reads the value. An empty object calls nothing.
func (r *Reader) Object(field func(key []byte)) {
	r.Expect('{')
	if !r.ok || r.Consume('}') {
		return
	}
	for r.ok {
		k := r.Key()
		if !r.ok {
			return
		}
		field(k)
		if r.Consume(',') {
			continue
		}
		r.Expect('}')
		return
	}
}

// Array reads an array, calling elem for each element (elem reads it).
func (r *Reader) Array(elem func()) {
	r.Expect('[')
	if !r.ok || r.Consume(']') {
		return
	}
	for r.ok {
		elem()
		if r.Consume(',') {
			continue
		}
		r.Expect(']')
		return
	}
}

// Raw moves past one value of any kind and returns its bytes, for the
// caller to decode with encoding/json (which checks it: Raw only finds
// where a valid value ends).
func (r *Reader) Raw() []byte {
	if !r.ok {
		return nil
	}
	r.SkipSpace()
	start := r.i
	depth := 0
	for j := r.i; j < len(r.b); j++ {
		switch r.b[j] {
		case '"':
			j++
			for j < len(r.b) && r.b[j] != '"' {
				if r.b[j] == '\\' {
					j++
				}
				j++
			}
			if depth == 0 {
				r.i = min(j+1, len(r.b))
				return r.b[start:r.i]
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 { // the end of a number or literal
				if j == start {
					r.ok = false
					return nil
				}
				r.i = j
				return r.b[start:j]
			}
			depth--
			if depth == 0 {
				r.i = j + 1
				return r.b[start:r.i]
			}
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				if j == start {
					r.ok = false
					return nil
				}
				r.i = j
				return r.b[start:j]
			}
		}
	}
	if depth != 0 || start == len(r.b) {
		r.ok = false
		return nil
	}
	r.i = len(r.b)
	return r.b[start:]
}

// Fields tracks the keys an object has had, to fail on a repeated one
// (encoding/json keeps the last; failing leaves that to it).
type Fields uint64

// Once marks field n (0 to 63) seen, failing r if it was.
func (f *Fields) Once(r *Reader, n int) {
	if *f&(1<<n) != 0 {
		r.ok = false
	}
	*f |= 1 << n
}
