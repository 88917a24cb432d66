package vipsmart

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"

	"github.com/vipsmart/vipsmart/internal/jsonfast"
)

// The JSON of the large answers and records (10,000 GIPs in one apply, one
// bbolt transaction) written by hand: the same bytes as encoding/json
// (gipjson_test.go compares them on random objects), several times
// cheaper than its reflection. Only ApplyResult carries a MarshalJSON;
// GIP has none, so that the other encodings of a GIP (the federation's
// messages among them) are not changed by this file.

// AppendGIPJSON appends the JSON of g to b: the bytes json.Marshal(g)
// gives when escapeHTML is true, those of an Encoder with
// SetEscapeHTML(false) otherwise.
func AppendGIPJSON(b []byte, g *GIP, escapeHTML bool) []byte {
	b = append(b, `{"name":`...)
	b = appendJSONString(b, g.Name, escapeHTML)
	b = append(b, `,"address":`...)
	if g.Address.IsValid() {
		var tmp [64]byte
		b = appendJSONBytes(b, g.Address.AppendTo(tmp[:0]), escapeHTML)
	} else {
		b = append(b, `""`...)
	}
	b = append(b, `,"mode":`...)
	b = appendJSONString(b, string(g.Mode), escapeHTML)
	b = append(b, `,"preempt":`...)
	b = strconv.AppendBool(b, g.Preempt)
	b = append(b, `,"placements":`...)
	if g.Placements == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range g.Placements {
			p := &g.Placements[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"dc":`...)
			b = appendJSONString(b, p.DC, escapeHTML)
			b = append(b, `,"priority":`...)
			b = strconv.AppendInt(b, int64(p.Priority), 10)
			if p.VIP != "" {
				b = append(b, `,"vip":`...)
				b = appendJSONString(b, p.VIP, escapeHTML)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"partition":`...)
	b = appendJSONString(b, string(g.Partition), escapeHTML)
	return append(b, '}')
}

// MarshalJSON writes r as encoding/json would from its field tags (the
// GIPs of its changes by AppendGIPJSON), without HTML escaping: an
// Encoder escapes the result as it is set to.
func (r ApplyResult) MarshalJSON() ([]byte, error) {
	return r.AppendJSON(nil, false)
}

// sizeHint is about the length of r's JSON.
func (r *ApplyResult) sizeHint() int {
	return 64 + len(r.Changes)*(256+40*avgPlacements(r.Changes))
}

func avgPlacements(cs []ObjectChange) int {
	if len(cs) == 0 || cs[0].GIP == nil {
		return 0
	}
	return len(cs[0].GIP.Placements)
}

// AppendJSON appends the JSON of r to b: the bytes of json.Marshal when
// escapeHTML is true, those of MarshalJSON (an Encoder with
// SetEscapeHTML(false)) otherwise.
func (r *ApplyResult) AppendJSON(b []byte, escapeHTML bool) ([]byte, error) {
	b = slices.Grow(b, r.sizeHint())
	b = append(b, `{"resource_version":`...)
	b = appendJSONString(b, r.ResourceVersion, escapeHTML)
	b = append(b, `,"changes":`...)
	if r.Changes == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range r.Changes {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = r.Changes[i].appendJSON(b, escapeHTML); err != nil {
				return nil, err
			}
		}
		b = append(b, ']')
	}
	b = append(b, `,"added":`...)
	b = strconv.AppendInt(b, int64(r.Added), 10)
	b = append(b, `,"changed":`...)
	b = strconv.AppendInt(b, int64(r.Changed), 10)
	b = append(b, `,"removed":`...)
	b = strconv.AppendInt(b, int64(r.Removed), 10)
	b = append(b, `,"applied":`...)
	b = strconv.AppendBool(b, r.Applied)
	if r.OpID != "" {
		b = append(b, `,"op_id":`...)
		b = appendJSONString(b, r.OpID, escapeHTML)
	}
	b = append(b, `,"epoch":`...)
	b = strconv.AppendUint(b, r.Epoch, 10)
	if r.NewVersion != "" {
		b = append(b, `,"new_resource_version":`...)
		b = appendJSONString(b, r.NewVersion, escapeHTML)
	}
	return append(b, '}'), nil
}

func (c *ObjectChange) appendJSON(b []byte, escapeHTML bool) ([]byte, error) {
	b = append(b, `{"kind":`...)
	b = appendJSONString(b, c.Kind, escapeHTML)
	b = append(b, `,"name":`...)
	b = appendJSONString(b, c.Name, escapeHTML)
	b = append(b, `,"action":`...)
	b = appendJSONString(b, c.Action, escapeHTML)
	if len(c.Fields) > 0 {
		b = append(b, `,"fields":[`...)
		for i, f := range c.Fields {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, f, escapeHTML)
		}
		b = append(b, ']')
	}
	if c.VIP != nil {
		// Few VIPs, and a VIP's check has its own encodings: the
		// library's.
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(escapeHTML)
		if err := enc.Encode(c.VIP); err != nil {
			return nil, err
		}
		b = append(b, `,"vip":`...)
		b = append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
	}
	if c.GIP != nil {
		b = append(b, `,"gip":`...)
		b = AppendGIPJSON(b, c.GIP, escapeHTML)
	}
	return append(b, '}'), nil
}

func appendJSONString(b []byte, s string, escapeHTML bool) []byte {
	return jsonfast.AppendString(b, s, escapeHTML)
}

func appendJSONBytes(b, s []byte, escapeHTML bool) []byte {
	return jsonfast.AppendBytes(b, s, escapeHTML)
}
