package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/vipsmart/vipsmart"
	"github.com/vipsmart/vipsmart/internal/jsondup"
)

// What encoding/json lets pass without a word, refused by decode: bytes
// that are not UTF-8 (read as U+FFFD: a value other than the one sent)
// and a key given twice in one object (the last one won:
// {"dry_run": true, ..., "dry_run": false} was no dry run).

// checkJSONText refuses a body that is not UTF-8.
func checkJSONText(body []byte) (int, error) {
	if utf8.Valid(body) {
		return 0, nil
	}
	off := 0
	for off < len(body) {
		r, n := utf8.DecodeRune(body[off:])
		if r == utf8.RuneError && n <= 1 {
			break
		}
		off += n
	}
	return http.StatusBadRequest, vipsmart.Errorf(vipsmart.EINVALID, "", "request body is not UTF-8 (byte %d): send JSON in UTF-8", off)
}

// checkDuplicateKeys refuses a body with a key twice in one object,
// naming it (gips[3].placements[0].dc).
func checkDuplicateKeys(body []byte) (int, error) {
	if dup, _ := jsondup.Find(body); dup != "" {
		return http.StatusBadRequest, vipsmart.Errorf(vipsmart.EINVALID, dup, "field %q is given twice: give each field once", dup)
	}
	return 0, nil
}

// hasDuplicateKey reports whether raw has a key twice in one object (the
// fast decoders then leave the body to decode, which says so).
func hasDuplicateKey(raw []byte) bool {
	dup, _ := jsondup.Find(raw)
	return dup != ""
}

// unknownFieldIn (nil if it does not apply) names where an unknown field is when it is inside an
// object of the body (gips[0].kind): the decoder names the key alone,
// and jsonError's list of allowed fields is the top level's.
func unknownFieldIn(body []byte, err error) error {
	k, ok := strings.CutPrefix(err.Error(), "json: unknown field ")
	if !ok {
		return nil
	}
	k = strings.Trim(k, `"`)
	p := jsondup.FindKey(body, k)
	if !strings.ContainsAny(p, ".[") {
		return nil // at the top: jsonError lists the fields
	}
	hint := ""
	if k == "kind" {
		hint = " (a body carries VIPs in \"vips\" and GIPs in \"gips\": its objects have no kind)"
	}
	return vipsmart.Errorf(vipsmart.EINVALID, p, "unknown field %q in %s: remove it or correct its spelling (docs/api.md lists the fields)%s", k, p[:len(p)-len(k)-1], hint)
}

// indexTypeError gives a type error the array indexes of its field
// (gips[3].placements[1].priority, not gips.placements.priority: which
// of 10,000 GIPs?).
func indexTypeError(body []byte, err error) error {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) || !strings.Contains(te.Field, ".") {
		return err
	}
	c := *te
	c.Field = jsondup.TypeErrorField(body, te)
	return &c
}

// topTypeError (nil if it does not apply) says what a body that is not
// an object should be (the decoder's words were: field "" must be of
// JSON type object).
func topTypeError(err error, fields string) error {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) || te.Field != "" || te.Type == nil || te.Type.Kind() != reflect.Struct {
		return nil
	}
	return vipsmart.Errorf(vipsmart.EINVALID, "", "request body must be one JSON object ({...}) with %s, not %s", fields, te.Value)
}

// tooLarge is the refusal of a body over limit, saying what to do.
func tooLarge(r *http.Request, limit int64) *vipsmart.Error {
	fix := "send a smaller body"
	if r.URL.Path == ApplyPath {
		fix = "apply the files in parts"
	}
	return vipsmart.Errorf(vipsmart.EINVALID, "", "request body is larger than %d bytes (%d MiB), the most %s %s takes: %s", limit, limit>>20, r.Method, r.URL.Path, fix)
}

// placementNames checks the names of placements, each error naming its
// placement (placements[1].dc: GIP.Validate says "placement dc", which
// of 10,000 GIPs' placements?).
func placementNames(ps []vipsmart.Placement) error {
	for i, p := range ps {
		if err := vipsmart.ValidateName("placement dc", p.DC); err != nil {
			e := *err.(*vipsmart.Error)
			e.Field = "placements[" + strconv.Itoa(i) + "].dc"
			return &e
		}
		if p.VIP == "" {
			continue
		}
		if err := vipsmart.ValidateName("placement vip", p.VIP); err != nil {
			e := *err.(*vipsmart.Error)
			e.Field = "placements[" + strconv.Itoa(i) + "].vip"
			return &e
		}
	}
	return nil
}
