package httpapi

import (
	"net/http"

	"github.com/vipsmart/vipsmart"
)

// afterAnswer gives each operator request a vipsmart.Answered: what the
// service put off until the answer was sent (the commit messages of a
// federation change, daemon/answer.go) runs once the handler returned and
// its answer was flushed to the client.
func afterAnswer(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, a := vipsmart.WithAnswered(r.Context())
		defer a.Done()
		h.ServeHTTP(w, r.WithContext(ctx))
		if a.Pending() {
			_ = http.NewResponseController(w).Flush()
		}
	})
}
