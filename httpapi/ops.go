package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/vipsmart/vipsmart"
)

// Ops are the operational routes a Server adds beside the API: /healthz
// (always; the process answers), /readyz (Ready), /metrics (Metrics,
// Prometheus text) and /ui/ (UI, the web UI). Each one left nil is not
// served (404), except /readyz, which then answers ready.
type Ops struct {
	// Ready reports whether the daemon is ready to serve (store open,
	// state loaded, announcers applied); nil error means ready.
	Ready func(ctx context.Context) error
	// Metrics serves GET /metrics.
	Metrics http.Handler
	// UI serves everything under /ui/.
	UI http.Handler
}

func (s *Server) opsRoutes(mux *http.ServeMux) {
	mux.Handle("/readyz", route{"GET": s.readyz})
	if s.Metrics != nil {
		mux.Handle("/metrics", route{"GET": s.Metrics.ServeHTTP})
	}
	if s.UI != nil {
		mux.Handle("/ui/", s.UI)
		mux.Handle("/ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently))
	}
}

// readyz answers 200 {"status":"ready"} or 503 with the reason, for load
// balancers, orchestrators and systemd.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.Ready == nil {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.Ready(ctx); err != nil {
		writeHTTPError(w, http.StatusServiceUnavailable, vipsmart.EUNAVAILABLE, "not ready: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
