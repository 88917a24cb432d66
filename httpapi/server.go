// Package httpapi is vipsmart's HTTP/JSON layer: the operator API under
// /v1/ and the peer routes under /v1/peer/, a Client implementing
// vipsmart.Service over HTTP, and a PeerClient that carries federation
// messages between daemons. The mapping from domain error codes to HTTP
// statuses lives here and nowhere else (StatusFor).
package httpapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vipsmart/vipsmart"
)

// Body size limits: operator requests are small; peer messages may carry a
// whole federation state (10,000 GIPs: 2.1 MiB with short names in 3 DCs,
// 13.9 MiB with maximal names in 8 DCs; see limits.go).
const (
	MaxOperatorBody = 1 << 20
	MaxPeerBody     = 16 << 20
)

// Server serves the operator API of one daemon (Handler; with Trust set,
// also the trust routes) or its federation listener (PeerHandler).
type Server struct {
	Service vipsmart.Service
	Trust   vipsmart.TrustService
	Peer    PeerReceiver
	Logger  *slog.Logger
	Ops     // /readyz, /metrics and /ui/ (ops.go)
	mux     *http.ServeMux

	// Backup, if set, serves GET /v1/backup (backup.go).
	Backup Snapshotter
	// PeerLimits and OperatorLimits override DefaultPeerLimits and
	// DefaultOperatorLimits (limits.go).
	PeerLimits, OperatorLimits *Limits
	// TrustForward, if set, says whether a peer connection presenting
	// key is a node of this DC, whose ForwardedPeerKeyHeader is believed
	// (nodes.go).
	TrustForward func(key string) bool
	peerKey      func(*tls.ConnectionState) string
}

// route is a handler per method for one path pattern; other methods get a
// JSON 405 with an Allow header.
type route map[string]http.HandlerFunc

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler {
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	handle := func(pattern string, r route) { mux.Handle(pattern, r) }
	handle("/v1/status", route{"GET": s.status})
	handle("/v1/vips", route{"GET": s.listVIPs, "POST": s.addVIP})
	handle("/v1/vips/{name}", route{"GET": s.getVIP, "DELETE": s.removeVIP})
	handle("/v1/dcs", route{"GET": s.listDCs, "POST": s.addDC})
	handle("/v1/dcs/{name}", route{"DELETE": s.removeDC})
	handle("/v1/leave", route{"POST": s.leave})
	s.gipRoutes(handle)
	s.extraRoutes(handle)
	s.applyRoutes(handle)
	handle("/v1/events", route{"GET": s.events})
	handle("/healthz", route{"GET": func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) }})
	if s.Trust != nil {
		s.trustRoutes(handle)
	}
	s.opsRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeHTTPError(w, http.StatusNotFound, vipsmart.ENOTFOUND, fmt.Sprintf("no such endpoint %s %s: see docs/api.md", r.Method, r.URL.Path))
	})
	s.mux = mux
	return s.logRequests(afterAnswer(s.limits(refuseUncleanPaths(clientDeadline(retryBusy(mux))))))
}

// TimeoutHeader carries how long the client will wait for the answer (a Go
// duration). The server stops waiting a little earlier, so that a client
// gets "operation ... is still running" (with its id) rather than a
// connection timeout.
const TimeoutHeader = "Vipsmart-Timeout"

func clientDeadline(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.Header.Get(TimeoutHeader); v != "" {
			if d, err := time.ParseDuration(v); err == nil && d > 0 {
				d -= min(d/10, time.Second)
				ctx, cancel := context.WithTimeout(r.Context(), d)
				defer cancel()
				r = r.WithContext(ctx)
			}
		}
		h.ServeHTTP(w, r)
	})
}

func (rt route) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h, ok := rt[r.Method]; ok {
		h(w, r)
		return
	}
	if r.Method == http.MethodHead {
		if h, ok := rt["GET"]; ok {
			h(w, r)
			return
		}
	}
	allowed := make([]string, 0, len(rt))
	for m := range rt {
		allowed = append(allowed, m)
	}
	slices.Sort(allowed)
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	writeHTTPError(w, http.StatusMethodNotAllowed, vipsmart.EINVALID,
		fmt.Sprintf("method %s is not allowed on %s: use %s", r.Method, r.URL.Path, strings.Join(allowed, " or ")))
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(s int) { r.status = s; r.ResponseWriter.WriteHeader(s) }

// Unwrap lets http.ResponseController reach the connection (the read
// deadlines of limits.go).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (s *Server) logRequests(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: 200}
		h.ServeHTTP(rec, r)
		lvl := slog.LevelDebug
		if rec.status >= 500 {
			lvl = slog.LevelWarn
		}
		s.Logger.Log(r.Context(), lvl, "http", "method", r.Method, "path", r.URL.Path, "status", rec.status, "dur", time.Since(start))
	})
}

// decode reads exactly one JSON value of at most limit bytes into v,
// refusing unknown fields, trailing data and non-JSON content types. The
// error it returns is a complete answer for the client.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any, fields string) (int, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return http.StatusUnsupportedMediaType, vipsmart.Errorf(vipsmart.EINVALID, "", "content type %q is not supported: send application/json", ct)
		}
	}
	buf := &bytes.Buffer{}
	if r.ContentLength > 0 && r.ContentLength <= limit {
		buf.Grow(int(r.ContentLength) + bytes.MinRead) // one allocation, not ReadAll's doublings
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	body := buf.Bytes()
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return http.StatusRequestEntityTooLarge, tooLarge(r, limit) // jsontext.go
		}
		return http.StatusBadRequest, vipsmart.Errorf(vipsmart.EINVALID, "", "reading request body: %v", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return http.StatusBadRequest, vipsmart.Errorf(vipsmart.EINVALID, "", "request body is empty: send a JSON object with %s", fields)
	}
	if st, err := checkJSONText(body); err != nil {
		return st, err // jsontext.go: not UTF-8
	}
	if f, ok := v.(fastDecoder); ok && f.decodeFast(body) {
		return 0, nil // applyfast.go: the same values as below, faster
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return http.StatusBadRequest, jsonErrorIn(body, err, fields)
	}
	if dec.More() {
		return http.StatusBadRequest, vipsmart.Errorf(vipsmart.EINVALID, "", "request body has data after the JSON object: send exactly one object")
	}
	return checkDuplicateKeys(body) // jsontext.go
}

// jsonError turns a decoding error into a message that names the field.
func jsonError(err error, fields string) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	msg := err.Error()
	switch {
	case errors.As(err, &se):
		return vipsmart.Errorf(vipsmart.EINVALID, "", "request body is not valid JSON (at byte %d): %v", se.Offset, se)
	case errors.As(err, &te):
		if e, ok := numberError(te); ok {
			return e
		}
		return vipsmart.Errorf(vipsmart.EINVALID, te.Field, "field %q must be of JSON type %s, not %s", te.Field, jsonType(te.Type.Kind().String()), te.Value)
	case strings.HasPrefix(msg, "json: unknown field "):
		f := strings.TrimPrefix(msg, "json: unknown field ")
		return vipsmart.Errorf(vipsmart.EINVALID, strings.Trim(f, `"`), "unknown field %s: the allowed fields are %s", f, fields)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return vipsmart.Errorf(vipsmart.EINVALID, "", "request body is truncated JSON")
	}
	return vipsmart.Errorf(vipsmart.EINVALID, "", "request body: %s", strings.TrimPrefix(msg, "json: "))
}

func jsonType(kind string) string {
	switch kind {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "number"
	case "struct", "map":
		return "object"
	case "slice", "array":
		return "array"
	}
	return kind
}

// pathName returns the {name} of the path if it is a valid name; else it
// writes the error and returns false.
func pathName(w http.ResponseWriter, r *http.Request) (string, bool) {
	name := r.PathValue("name")
	if err := vipsmart.ValidateName("name", name); err != nil {
		writeError(w, err)
		return "", false
	}
	return name, true
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st, err := s.Service.Status(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeStatus(w, &st)
}

// VIPRequest is the body of POST /v1/vips.
type VIPRequest struct {
	Name      string          `json:"name"`
	Address   string          `json:"address"`
	Interface string          `json:"interface,omitempty"`
	Check     *vipsmart.Check `json:"check,omitempty"`
	// Nodes and Preempt: which nodes of a DC on etcd may hold the VIP,
	// with their priority, and whether a higher one takes it from a live
	// holder (docs/ha.md, "VIPs that move between nodes").
	Nodes   []vipsmart.VIPNode `json:"nodes,omitempty"`
	Preempt bool               `json:"preempt,omitempty"`
}

const vipFields = `"name", "address", "interface", "check" (with "url", "interval", "timeout", "rise", "fall", "expect_status"), "nodes" (with "node", "priority") and "preempt"`

func (s *Server) addVIP(w http.ResponseWriter, r *http.Request) {
	var req VIPRequest
	if st, err := decode(w, r, MaxOperatorBody, &req, vipFields); err != nil {
		writeJSONError(w, st, err)
		return
	}
	v := vipsmart.VIP{Name: req.Name, Interface: req.Interface, Check: req.Check, Nodes: req.Nodes, Preempt: req.Preempt}
	if err := vipsmart.ValidateName("name", req.Name); err != nil {
		writeError(w, err)
		return
	}
	a, err := vipsmart.ParseHostAddr("address", req.Address)
	if err != nil {
		writeError(w, err)
		return
	}
	v.Address = a
	if err := v.Validate(); err != nil {
		writeError(w, err)
		return
	}
	out, err := s.Service.AddVIP(r.Context(), v)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

func writeJSONError(w http.ResponseWriter, status int, err error) {
	var e *vipsmart.Error
	if errors.As(err, &e) {
		writeJSON(w, status, errorBody{Error: *e})
		return
	}
	writeHTTPError(w, status, vipsmart.EINVALID, err.Error())
}

func (s *Server) listVIPs(w http.ResponseWriter, r *http.Request) {
	vs, err := s.Service.ListVIPs(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	if vs == nil {
		vs = []vipsmart.VIPInfo{}
	}
	writeJSON(w, http.StatusOK, vs)
}

func (s *Server) getVIP(w http.ResponseWriter, r *http.Request) {
	name, ok := pathName(w, r)
	if !ok {
		return
	}
	v, err := s.Service.GetVIP(r.Context(), name)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) removeVIP(w http.ResponseWriter, r *http.Request) {
	name, ok := pathName(w, r)
	if !ok {
		return
	}
	if err := s.Service.RemoveVIP(r.Context(), name); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) listDCs(w http.ResponseWriter, r *http.Request) {
	ds, err := s.Service.ListDCs(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	if ds == nil {
		ds = []vipsmart.DCInfo{}
	}
	writeJSON(w, http.StatusOK, ds)
}

// DCRequest is the body of POST /v1/dcs: the candidate DC and the join
// token made on it. Port defaults to 9610.
type DCRequest struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Port    *int   `json:"port,omitempty"`
	Token   string `json:"token"`
}

func (s *Server) addDC(w http.ResponseWriter, r *http.Request) {
	var req DCRequest
	if st, err := decode(w, r, MaxOperatorBody, &req, `"name", "address", "port" and "token"`); err != nil {
		writeJSONError(w, st, err)
		return
	}
	d := vipsmart.DC{Name: req.Name, Port: vipsmart.DefaultPort}
	if err := vipsmart.ValidateName("name", req.Name); err != nil {
		writeError(w, err)
		return
	}
	a, err := vipsmart.ParseHostAddr("address", req.Address)
	if err != nil {
		writeError(w, err)
		return
	}
	d.Address = a
	if req.Port != nil {
		p, err := vipsmart.ParsePort("port", strconv.Itoa(*req.Port))
		if err != nil {
			writeError(w, err)
			return
		}
		d.Port = p
	}
	st, err := s.Service.AddDC(r.Context(), d, req.Token)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) removeDC(w http.ResponseWriter, r *http.Request) {
	// {name} is one name, or several separated by commas (a forced
	// removal of several DCs in one change).
	names := strings.Split(r.PathValue("name"), ",")
	for _, name := range names {
		if err := vipsmart.ValidateName("name", name); err != nil {
			writeError(w, err)
			return
		}
	}
	force := false
	if f := r.URL.Query().Get("force"); f != "" {
		b, err := strconv.ParseBool(f)
		if err != nil {
			writeError(w, vipsmart.Errorf(vipsmart.EINVALID, "force", "force=%q is not a boolean: give true or false", f))
			return
		}
		force = b
	}
	st, err := s.Service.RemoveDC(r.Context(), names, force)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) leave(w http.ResponseWriter, r *http.Request) {
	st, err := s.Service.Leave(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after, limit := uint64(0), 1000
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeError(w, vipsmart.Errorf(vipsmart.EINVALID, "after", "after=%q is not a sequence number: give a non-negative integer", v))
			return
		}
		after = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			writeError(w, vipsmart.Errorf(vipsmart.EINVALID, "limit", "limit=%q is out of range: give 1 to 10000", v))
			return
		}
		limit = n
	}
	es, err := s.Service.Events(r.Context(), after, limit)
	if err != nil {
		writeError(w, err)
		return
	}
	if es == nil {
		es = []vipsmart.Event{}
	}
	writeJSON(w, http.StatusOK, es)
}
