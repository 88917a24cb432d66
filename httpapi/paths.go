package httpapi

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/vipsmart/vipsmart"
)

// refuseUncleanPaths answers 400 to a path with an empty, "." or ".."
// segment (http.ServeMux would answer a redirect to the cleaned path,
// which a client then follows to another object than it named).
func refuseUncleanPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if !strings.HasPrefix(p, "/") {
			writeHTTPError(w, http.StatusBadRequest, vipsmart.EINVALID, fmt.Sprintf("path %q does not start with /", p))
			return
		}
		segs := strings.Split(p[1:], "/")
		for i, seg := range segs {
			last := i == len(segs)-1
			if seg == "." || seg == ".." || (seg == "" && !last) {
				writeHTTPError(w, http.StatusBadRequest, vipsmart.EINVALID,
					fmt.Sprintf("path %q has an empty, \".\" or \"..\" segment: name the object itself (names are DNS labels such as web); see docs/api.md", p))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// RefuseUncleanPaths is refuseUncleanPaths for a handler built outside
// this package (a node's routes wrapped around a Server's Handler in an
// http.ServeMux, which would clean the path before the Server sees it).
func RefuseUncleanPaths(next http.Handler) http.Handler { return refuseUncleanPaths(next) }
