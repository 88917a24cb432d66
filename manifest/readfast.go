package manifest

import (
	"bytes"
	"encoding/json"
	"sort"
	"strconv"

	"github.com/vipsmart/vipsmart/internal/jsondup"
	"github.com/vipsmart/vipsmart/internal/jsonfast"
)

// objectKeys are the keys an object may have, as readFast reports them
// (no allocation per key).
var objectKeys = []string{"kind", "name", "address", "interface", "check", "mode", "preempt", "partition", "placements", "nodes"}

// readFast reads a JSON file without reflection (internal/jsonfast: plain
// strings and integers, each key once, spelled as documented); it
// reports false, having added nothing, for any file outside that subset,
// which readJSON then reads with encoding/json. What it adds is what
// readJSONEach adds (TestReadJSONIsReadJSONEach).
func (s *Set) readFast(name string, b []byte) (bool, error) {
	r := jsonfast.New(b)
	r.SkipSpace()
	type read struct {
		off  int
		o    Object
		keys []string
	}
	// Sized once from the number of "kind" keys (an estimate: a string
	// may hold it too), not grown by doubling: 10,000 objects are copied
	// some 14 times otherwise.
	estimate := bytes.Count(b, []byte(`"kind"`)) + 1
	items := make([]read, 0, estimate)
	keys := make([]string, 0, 8*estimate) // every object's keys, one after the other
	names := map[string]string{}
	var scratch []Placement
	one := func() {
		r.SkipSpace()
		it := read{off: r.Pos()}
		first := len(keys)
		var seen jsonfast.Fields
		r.Object(func(k []byte) {
			n := -1
			for i, key := range objectKeys {
				if string(k) == key {
					n = i
					break
				}
			}
			if n < 0 {
				r.Fail() // unknown, or another spelling: the library says
				return
			}
			seen.Once(r, n)
			keys = append(keys, objectKeys[n])
			o := &it.o
			switch n {
			case 0:
				o.Kind = r.Interned(names)
			case 1:
				o.Name = r.String()
			case 2:
				o.Address = r.String()
			case 3:
				o.Interface = r.Interned(names)
			case 4:
				raw := r.Raw()
				if r.OK() && !decodeStrict(raw, &o.Check) {
					r.Fail()
				} else if dup, _ := jsondup.Find(raw); dup != "" {
					r.Fail()
				}
			case 5:
				o.Mode = r.Interned(names)
			case 6:
				if r.Null() {
					o.Preempt = nil
					return
				}
				p := r.Bool()
				o.Preempt = &p
			case 7:
				o.Partition = r.Interned(names)
			case 8:
				if r.Null() {
					o.Placements = nil
					return
				}
				ps := scratch[:0]
				r.Array(func() {
					var p Placement
					var seen jsonfast.Fields
					r.Object(func(k []byte) {
						switch string(k) {
						case "dc":
							seen.Once(r, 0)
							p.DC = r.Interned(names)
						case "priority":
							seen.Once(r, 1)
							p.Priority = r.Int()
						case "vip":
							seen.Once(r, 2)
							p.VIP = r.Interned(names)
						default:
							r.Fail()
						}
					})
					ps = append(ps, p)
				})
				scratch = ps
				o.Placements = append(make([]Placement, 0, len(ps)), ps...)
			case 9:
				if r.Null() {
					o.Nodes = nil
					return
				}
				o.Nodes = []string{}
				r.Array(func() { o.Nodes = append(o.Nodes, r.String()) })
			}
		})
		it.keys = keys[first:len(keys):len(keys)]
		items = append(items, it)
	}
	if r.Consume('[') {
		// An array: the elements as jsonfast.Array reads them, each
		// element's offset kept.
		if !r.Consume(']') {
			for r.OK() {
				one()
				if r.Consume(',') {
					continue
				}
				r.Expect(']')
				break
			}
		}
	} else {
		one()
	}
	if !r.End() {
		return false, nil
	}
	line, counted := 1, 0
	defer func() { s.more = 0 }()
	for i := range items {
		s.more = len(items) - i
		it := &items[i]
		line += bytes.Count(b[counted:it.off], []byte("\n"))
		counted = it.off
		sort.Strings(it.keys)
		// fmt's "%s: document %d (line %d)", without its cost per object
		where := name + ": document " + strconv.Itoa(i+1) + " (line " + strconv.Itoa(line) + ")"
		if err := s.add(where, it.o, it.keys); err != nil {
			return true, err
		}
	}
	return true, nil
}

// decodeStrict decodes raw, one whole value, refusing unknown fields.
func decodeStrict(raw []byte, v any) bool {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(v) == nil && dec.InputOffset() == int64(len(raw))
}
