// Package jsondup finds what encoding/json lets pass without a word in a
// JSON value: a key given twice in one object (the decoder keeps the
// last one, so {"dry_run": true, "dry_run": false} is not a dry run);
// and where a key is, for the messages the decoder gives without a path
// (an unknown field).
//
// Invariant: Find reports the first duplicate in the order of the bytes;
// it is meant for JSON a decoder has accepted (in bytes that are not
// JSON it may report one before the error, or none).
package jsondup

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

type frame struct {
	obj     bool
	wantKey bool
	key     string
	n       int // array: index of the current element
	keys    map[string]struct{}
}

// Find returns the path of the first key given twice in one object of
// the JSON value b (`gips[3].placements[0].dc`, `dry_run`) and the
// offset of the byte after it; "" if there is none. It scans the bytes
// once, without a token or an allocation per value. b is valid UTF-8
// JSON (its callers check both first: keys of other bytes, which the
// decoder reads alike as U+FFFD, are told apart here).
func Find(b []byte) (string, int64) {
	var stack []open
	var keys [][]byte // the keys of the open objects, innermost last
	wantKey := false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '"':
			j, escaped := StringEnd(b, i)
			if wantKey && len(stack) > 0 && stack[len(stack)-1].obj {
				wantKey = false
				k := b[i+1 : min(j, len(b))]
				if escaped {
					var s string
					if json.Unmarshal(b[i:min(j+1, len(b))], &s) == nil {
						k = []byte(s)
					}
				}
				top := &stack[len(stack)-1]
				dup := false
				if top.seen != nil {
					_, dup = top.seen[string(k)]
					top.seen[string(k)] = struct{}{}
				} else {
					for _, prev := range keys[top.first:] {
						if string(prev) == string(k) {
							dup = true
							break
						}
					}
					if len(keys)-top.first >= 16 {
						// Many keys (a map): look them up, not
						// compare each with each.
						top.seen = make(map[string]struct{}, 32)
						for _, prev := range keys[top.first:] {
							top.seen[string(prev)] = struct{}{}
						}
						top.seen[string(k)] = struct{}{}
					}
				}
				if dup {
					return pathOf(stack, keys, k), int64(j + 1)
				}
				top.cur = len(keys)
				keys = append(keys, k)
			}
			i = j
		case '{':
			stack = append(stack, open{obj: true, first: len(keys)})
			wantKey = true
		case '[':
			stack = append(stack, open{})
		case '}', ']':
			if len(stack) == 0 {
				return "", 0
			}
			if top := stack[len(stack)-1]; top.obj {
				keys = keys[:top.first]
			}
			stack = stack[:len(stack)-1]
		case ',':
			if len(stack) > 0 {
				if top := &stack[len(stack)-1]; top.obj {
					wantKey = true
				} else {
					top.n++
				}
			}
		}
	}
	return "", 0
}

// open is an object or array Find is in.
type open struct {
	obj   bool
	first int // obj: its first key in keys
	cur   int // obj: its current key in keys
	n     int // array: index of the current element
	seen  map[string]struct{}
}

// pathOf is the path of key k in the innermost of the open values: for
// each outer object its current key, for each array its element.
func pathOf(stack []open, keys [][]byte, k []byte) string {
	var b strings.Builder
	for d, o := range stack {
		if !o.obj {
			b.WriteString("[" + strconv.Itoa(o.n) + "]")
			continue
		}
		key := k
		if d+1 < len(stack) {
			key = keys[o.cur]
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.Write(key)
	}
	return b.String()
}

// FindKey returns the path of the first key named key in the JSON value
// b (as the decoder meets it: `gips[0].kind`), "" if there is none.
func FindKey(b []byte, key string) string {
	p, _ := walk(b, func(_ *frame, k string, _ int64) bool { return k == key })
	return p
}

// PathBefore returns the path of the last key of b that ends at or
// before offset off (`gips[3].placements[1].priority`): where the value
// is that encoding/json's UnmarshalTypeError (whose Field has no array
// indexes) stopped at.
func PathBefore(b []byte, off int64) string {
	last := ""
	walk(b, func(_ *frame, _ string, end int64) bool { return end > off }, func(p string) { last = p })
	return last
}

// TypeErrorField returns the field of te, a type error decoding b, with
// its array indexes (`gips[3].placements[1].priority` for the decoder's
// `gips.placements.priority`), or te.Field if it cannot tell.
func TypeErrorField(b []byte, te *json.UnmarshalTypeError) string {
	if te.Field == "" {
		return ""
	}
	p := PathBefore(b, te.Offset)
	var plain strings.Builder
	skip := false
	for _, c := range p {
		switch {
		case c == '[':
			skip = true
		case c == ']':
			skip = false
		case !skip:
			plain.WriteRune(c)
		}
	}
	if plain.String() != te.Field {
		return te.Field
	}
	return p
}

// walk calls stop with every key of b in the order of the bytes, in the
// frame of its object, with the offset where the key ends, and returns
// the path of the first key for which it returns true; passed are told
// the path of every key before it.
func walk(b []byte, stop func(f *frame, k string, end int64) bool, passed ...func(path string)) (string, int64) {
	if bytes.IndexByte(b, '{') < 0 {
		return "", 0
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var stack []*frame
	// done ends a value in the frame on top of the stack.
	done := func() {
		if len(stack) == 0 {
			return
		}
		f := stack[len(stack)-1]
		if f.obj {
			f.wantKey = true
		} else {
			f.n++
		}
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", 0
		}
		if len(stack) > 0 {
			if f := stack[len(stack)-1]; f.obj && f.wantKey {
				if k, ok := tok.(string); ok {
					f.key, f.wantKey = k, false
					if stop(f, k, dec.InputOffset()) {
						return path(stack), dec.InputOffset()
					}
					for _, p := range passed {
						p(path(stack))
					}
					continue
				}
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{obj: true, wantKey: true, keys: map[string]struct{}{}})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		done()
		if len(stack) == 0 {
			return "", 0
		}
	}
}

// path is where the top of the stack is: keys joined by dots, array
// elements by [N].
func path(stack []*frame) string {
	var b strings.Builder
	for _, f := range stack {
		if f.obj {
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(f.key)
		} else {
			b.WriteString("[" + strconv.Itoa(f.n) + "]")
		}
	}
	return b.String()
}

// StringEnd returns the index of the quote that closes the JSON string
// whose opening quote is b[i] (len(b) or more if it is not closed), and
// whether the string holds an escape.
func StringEnd(b []byte, i int) (end int, escaped bool) {
	j := i + 1
	for j < len(b) && b[j] != '"' {
		if b[j] == '\\' {
			escaped = true
			j++
		}
		j++
	}
	return j, escaped
}
