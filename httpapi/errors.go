package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/vipsmart/vipsmart"
)

// statusFor maps each domain error code to its HTTP status. It is the one
// place where that mapping lives; codeFor is its inverse for clients.
var statusFor = map[vipsmart.ErrorCode]int{
	vipsmart.EINVALID:     http.StatusBadRequest,
	vipsmart.ENOTFOUND:    http.StatusNotFound,
	vipsmart.ECONFLICT:    http.StatusConflict,
	vipsmart.ESTATE:       http.StatusConflict,
	vipsmart.EBUSY:        http.StatusLocked,
	vipsmart.EUNAVAILABLE: http.StatusServiceUnavailable,
	vipsmart.ETIMEOUT:     http.StatusGatewayTimeout,
	vipsmart.EINTERNAL:    http.StatusInternalServerError,

	vipsmart.EUNAUTHORIZED: http.StatusUnauthorized,
	vipsmart.EFORBIDDEN:    http.StatusForbidden,
}

// StatusFor returns the HTTP status for a domain error code.
func StatusFor(code vipsmart.ErrorCode) int {
	if s, ok := statusFor[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// errorBody is the JSON body of every error response.
type errorBody struct {
	Error vipsmart.Error `json:"error"`
}

// writeError writes err as a JSON error body with the status of its code.
// Errors that are not *vipsmart.Error are internal: their text is still
// shown, since the API is an operator's tool and hiding it helps nobody.
func writeError(w http.ResponseWriter, err error) {
	var e *vipsmart.Error
	if !errors.As(err, &e) {
		e = &vipsmart.Error{Code: vipsmart.EINTERNAL, Message: err.Error()}
	}
	body := errorBody{Error: vipsmart.Error{Code: e.Code, Field: e.Field, Message: e.Error()}}
	writeJSON(w, StatusFor(e.Code), body)
}

// writeHTTPError writes an error that arises in HTTP itself (405, 413, 415)
// with the JSON shape of every other error.
func writeHTTPError(w http.ResponseWriter, status int, code vipsmart.ErrorCode, msg string) {
	writeJSON(w, status, errorBody{Error: vipsmart.Error{Code: code, Message: msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decodeError turns an error response back into a *vipsmart.Error.
func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var body errorBody
	if err := json.Unmarshal(b, &body); err == nil && body.Error.Message != "" {
		e := body.Error
		if e.Code == "" {
			e.Code = codeFor(resp.StatusCode)
		}
		return &e
	}
	return &vipsmart.Error{Code: codeFor(resp.StatusCode), Message: fmt.Sprintf("server answered %s: %s", resp.Status, clip(string(b)))}
}

func codeFor(status int) vipsmart.ErrorCode {
	for c, s := range statusFor {
		if s == status && c != vipsmart.ESTATE {
			return c
		}
	}
	if status >= 400 && status < 500 {
		return vipsmart.EINVALID
	}
	return vipsmart.EINTERNAL
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
