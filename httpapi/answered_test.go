package httpapi

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/vipsmart/vipsmart"
)

// TestAfterAnswerRunsOnceAnswered: what a service put off runs after the
// handler's answer was written and flushed, not before.
func TestAfterAnswerRunsOnceAnswered(t *testing.T) {
	rec := httptest.NewRecorder()
	var sawBody string
	var sawFlushed, ran bool
	h := afterAnswer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !vipsmart.AfterAnswer(r.Context(), func() { ran, sawBody, sawFlushed = true, rec.Body.String(), rec.Flushed }) {
			t.Fatal("the request carries nothing to register with")
		}
		if ran {
			t.Fatal("ran before the answer")
		}
		writeJSON(w, http.StatusCreated, map[string]string{"name": "www"})
	}))
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/gips", nil))
	if !ran {
		t.Fatal("never ran")
	}
	if !sawFlushed || sawBody == "" {
		t.Fatalf("ran before the answer was flushed (flushed %v, body %q)", sawFlushed, sawBody)
	}
}
