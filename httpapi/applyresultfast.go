package httpapi

import (
	"encoding/json"
	"net/netip"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/internal/jsonfast"
)

// applyResultOut is where Client.Apply decodes the answer: without
// reflection when jsonfast reads it (the answer of 10,000 GIP changes is
// megabytes), by encoding/json otherwise, into the same value
// (TestApplyResultFastIsTheLibrarys, FuzzApplyResult).
type applyResultOut struct{ res *vipsmart.ApplyResult }

// UnmarshalJSON is the way of encoding/json, when decodeFast cannot.
func (o *applyResultOut) UnmarshalJSON(data []byte) error { return json.Unmarshal(data, o.res) }

func (o *applyResultOut) decodeFast(data []byte) bool {
	var out vipsmart.ApplyResult
	r := jsonfast.New(data)
	var seen jsonfast.Fields
	names := map[string]string{}
	r.Object(func(k []byte) {
		switch string(k) {
		case "resource_version":
			seen.Once(r, 0)
			out.ResourceVersion = r.String()
		case "changes":
			seen.Once(r, 1)
			if r.Null() {
				out.Changes = nil
				return
			}
			out.Changes = []vipsmart.ObjectChange{}
			var scratch []vipsmart.Placement
			r.Array(func() {
				out.Changes = append(out.Changes, readChange(r, &scratch, names))
			})
		case "added":
			seen.Once(r, 2)
			out.Added = r.Int()
		case "changed":
			seen.Once(r, 3)
			out.Changed = r.Int()
		case "removed":
			seen.Once(r, 4)
			out.Removed = r.Int()
		case "applied":
			seen.Once(r, 5)
			out.Applied = r.Bool()
		case "op_id":
			seen.Once(r, 6)
			out.OpID = r.String()
		case "epoch":
			seen.Once(r, 7)
			out.Epoch = r.Uint64()
		case "new_resource_version":
			seen.Once(r, 8)
			out.NewVersion = r.String()
		default:
			r.Fail()
		}
	})
	if !r.End() {
		return false
	}
	*o.res = out
	return true
}

func readChange(r *jsonfast.Reader, scratch *[]vipsmart.Placement, names map[string]string) vipsmart.ObjectChange {
	var c vipsmart.ObjectChange
	var seen jsonfast.Fields
	r.Object(func(k []byte) {
		switch string(k) {
		case "kind":
			seen.Once(r, 0)
			c.Kind = r.Interned(names)
		case "name":
			seen.Once(r, 1)
			c.Name = r.String()
		case "action":
			seen.Once(r, 2)
			c.Action = r.Interned(names)
		case "fields":
			seen.Once(r, 3)
			if r.Null() {
				c.Fields = nil
				return
			}
			c.Fields = []string{}
			r.Array(func() { c.Fields = append(c.Fields, r.String()) })
		case "vip":
			seen.Once(r, 4)
			raw := r.Raw()
			if r.OK() && json.Unmarshal(raw, &c.VIP) != nil {
				r.Fail()
			}
		case "gip":
			seen.Once(r, 5)
			if r.Null() {
				c.GIP = nil
				return
			}
			g := readGIP(r, scratch, names)
			c.GIP = &g
		default:
			r.Fail()
		}
	})
	return c
}

// readGIP reads a GIP as encoding/json reads it from its field tags.
func readGIP(r *jsonfast.Reader, scratch *[]vipsmart.Placement, names map[string]string) vipsmart.GIP {
	var g vipsmart.GIP
	var seen jsonfast.Fields
	r.Object(func(k []byte) {
		switch string(k) {
		case "name":
			seen.Once(r, 0)
			g.Name = r.String()
		case "address":
			seen.Once(r, 1)
			if s := r.String(); s != "" && r.OK() {
				a, err := netip.ParseAddr(s)
				if err != nil {
					r.Fail()
				}
				g.Address = a
			}
		case "mode":
			seen.Once(r, 2)
			g.Mode = vipsmart.GIPMode(r.Interned(names))
		case "preempt":
			seen.Once(r, 3)
			g.Preempt = r.Bool()
		case "placements":
			seen.Once(r, 4)
			g.Placements = readPlacements(r, scratch, names)
		case "partition":
			seen.Once(r, 5)
			g.Partition = vipsmart.PartitionPolicy(r.Interned(names))
		default:
			r.Fail()
		}
	})
	return g
}
