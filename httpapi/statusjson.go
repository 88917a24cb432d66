package httpapi

import (
	"net/http"
	"strconv"

	"github.com/vipsmart/vipsmart"
)

// writeStatus answers GET /v1/status: the bytes writeJSON writes (the
// Encoder's, newline included), encoded by vipsmart.AppendStatusJSON
// instead of reflection and sent with their length in one write (with
// 10,000 GIPs a DC's status lists 10,000 announcements: about 1.5 MB).
// Should the hand encoder fail (a time outside the years 0-9999, which
// encoding/json refuses too), writeJSON answers as it always did.
func writeStatus(w http.ResponseWriter, st *vipsmart.StatusInfo) {
	b, err := vipsmart.AppendStatusJSON(make([]byte, 0, vipsmart.StatusJSONSizeHint(st)), st)
	if err != nil {
		writeJSON(w, http.StatusOK, st)
		return
	}
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}
