package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/vipsmart/vipsmart"
)

// numberError explains a JSON number that does not fit its field (the
// decoder's own message is "must be of JSON type number, not number -1").
// ok is false when te is not about a number.
func numberError(te *json.UnmarshalTypeError) (error, bool) {
	v, isNum := strings.CutPrefix(te.Value, "number ")
	if !isNum || te.Type == nil {
		return nil, false
	}
	t := te.Type
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	field := te.Field
	var lo, hi string
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		bits := t.Bits()
		lo, hi = fmt.Sprint(-(int64(1) << (bits - 1))), fmt.Sprint(uint64(1)<<(bits-1)-1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		lo, hi = "0", fmt.Sprint(uint64(1<<(t.Bits()-1))*2-1)
	default:
		return nil, false
	}
	switch {
	case strings.ContainsAny(v, ".eE"):
		return vipsmart.Errorf(vipsmart.EINVALID, field, "field %q must be a whole number written in digits (no fraction or exponent), not %s", field, v), true
	case strings.HasPrefix(v, "-") && lo == "0":
		return vipsmart.Errorf(vipsmart.EINVALID, field, "field %q must not be negative, not %s", field, v), true
	}
	return vipsmart.Errorf(vipsmart.EINVALID, field, "field %q is out of range: %s does not fit in %s to %s", field, v, lo, hi), true
}

// jsonErrorIn is jsonError for body, naming the field when the decoder
// does not: a value whose own decoding failed (an address that is not
// one: `ParseAddr("300.1.1.1"): ...`) is found in body by its text.
func jsonErrorIn(body []byte, err error, fields string) error {
	err = indexTypeError(body, err) // jsontext.go
	if e := topTypeError(err, fields); e != nil {
		return e
	}
	if e := unknownFieldIn(body, err); e != nil {
		return e // jsontext.go: an unknown field inside an object of the body
	}
	e := jsonError(err, fields)
	var ve *vipsmart.Error
	if !errors.As(e, &ve) || ve.Field != "" {
		return e
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	i := strings.Index(msg, `("`)
	if i < 0 {
		return e
	}
	j := strings.Index(msg[i+2:], `")`)
	if j < 0 {
		return e
	}
	bad := msg[i+2 : i+2+j]
	var doc any
	if json.Unmarshal(body, &doc) != nil {
		return e
	}
	path := findString(doc, bad, "")
	if path == "" {
		return e
	}
	if strings.HasPrefix(msg, "ParseAddr(") {
		return vipsmart.Errorf(vipsmart.EINVALID, path, "field %q: %q is not an IP address (%s): give an IPv4 or IPv6 address such as 192.0.2.10 or 2001:db8::10", path, bad, msg)
	}
	return vipsmart.Errorf(vipsmart.EINVALID, path, "field %q: %q is not valid: %s", path, bad, msg)
}

// findString returns the dotted path of the first string equal to s in v.
func findString(v any, s, at string) string {
	switch x := v.(type) {
	case string:
		if x == s {
			return at
		}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := k
			if at != "" {
				p = at + "." + k
			}
			if got := findString(x[k], s, p); got != "" {
				return got
			}
		}
	case []any:
		for _, e := range x {
			if got := findString(e, s, at); got != "" {
				return got
			}
		}
	}
	return ""
}
