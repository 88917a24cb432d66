package vipsmart

import (
	"errors"
	"fmt"
)

// ErrorCode classifies an *Error. The HTTP layer maps each code to one
// status in one place (httpapi.StatusFor); clients map it back.
type ErrorCode string

// The error codes of vipsmart.
const (
	EINVALID     ErrorCode = "invalid"     // bad input: a field breaks a rule
	ENOTFOUND    ErrorCode = "not_found"   // the named object does not exist
	ECONFLICT    ErrorCode = "conflict"    // a name or address is already in use
	ESTATE       ErrorCode = "state"       // refused in the DC's current status
	EBUSY        ErrorCode = "busy"        // federation busy, retry
	EUNAVAILABLE ErrorCode = "unavailable" // a DC could not be reached
	ETIMEOUT     ErrorCode = "timeout"     // the operation did not finish in time
	EINTERNAL    ErrorCode = "internal"    // a bug or an I/O failure
)

// The error codes of authentication and authorization (operator API over
// HTTPS, federation peers).
const (
	EUNAUTHORIZED ErrorCode = "unauthorized" // no credentials, or credentials that are not valid
	EFORBIDDEN    ErrorCode = "forbidden"    // valid credentials that may not do this
)

// Error is vipsmart's one domain error. Message says what is wrong and, for
// bad input, how to fix it; Field names the offending input field, if any.
type Error struct {
	Code    ErrorCode `json:"code"`
	Field   string    `json:"field,omitempty"`
	Message string    `json:"message"`
	Err     error     `json:"-"`
}

// Error implements error.
func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

// Unwrap returns the wrapped cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code, field and formatted message.
func Errorf(code ErrorCode, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCodeOf returns the code of the first *Error in err's chain,
// EINTERNAL for any other non-nil error, and "" for nil.
func ErrorCodeOf(err error) ErrorCode {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// IsCode reports whether err carries code.
func IsCode(err error, code ErrorCode) bool { return ErrorCodeOf(err) == code }
