package vipsmart

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"unicode/utf8"
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
	b = AppendJSONString(b, g.Name, escapeHTML)
	b = append(b, `,"address":`...)
	if g.Address.IsValid() {
		var tmp [64]byte
		b = appendJSONBytes(b, g.Address.AppendTo(tmp[:0]), escapeHTML)
	} else {
		b = append(b, `""`...)
	}
	b = append(b, `,"mode":`...)
	b = AppendJSONString(b, string(g.Mode), escapeHTML)
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
			b = AppendJSONString(b, p.DC, escapeHTML)
			b = append(b, `,"priority":`...)
			b = strconv.AppendInt(b, int64(p.Priority), 10)
			if p.VIP != "" {
				b = append(b, `,"vip":`...)
				b = AppendJSONString(b, p.VIP, escapeHTML)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"partition":`...)
	b = AppendJSONString(b, string(g.Partition), escapeHTML)
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
	b = AppendJSONString(b, r.ResourceVersion, escapeHTML)
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
		b = AppendJSONString(b, r.OpID, escapeHTML)
	}
	b = append(b, `,"epoch":`...)
	b = strconv.AppendUint(b, r.Epoch, 10)
	if r.NewVersion != "" {
		b = append(b, `,"new_resource_version":`...)
		b = AppendJSONString(b, r.NewVersion, escapeHTML)
	}
	return append(b, '}'), nil
}

func (c *ObjectChange) appendJSON(b []byte, escapeHTML bool) ([]byte, error) {
	b = append(b, `{"kind":`...)
	b = AppendJSONString(b, c.Kind, escapeHTML)
	b = append(b, `,"name":`...)
	b = AppendJSONString(b, c.Name, escapeHTML)
	b = append(b, `,"action":`...)
	b = AppendJSONString(b, c.Action, escapeHTML)
	if len(c.Fields) > 0 {
		b = append(b, `,"fields":[`...)
		for i, f := range c.Fields {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendJSONString(b, f, escapeHTML)
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

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s quoted as encoding/json quotes strings
// (with <, > and & as \u003c... when escapeHTML, as json.Marshal does),
// for the encoders written by hand (here and in httpapi).
func AppendJSONString(b []byte, s string, escapeHTML bool) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && (!escapeHTML || (c != '<' && c != '>' && c != '&')) {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendJSONBytes appends s, a string's bytes, as AppendJSONString would.
func appendJSONBytes(b, s []byte, escapeHTML bool) []byte {
	for _, c := range s {
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return AppendJSONString(b, string(s), escapeHTML)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
