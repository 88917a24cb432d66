// Package ui is vipsmart's web UI: a page embedded in the binary (no CDN,
// no build step) and the two JSON routes it reads, all served under /ui/
// over any vipsmart.Service: the daemon itself (on its operator API) or a
// client of a daemon (`vipsmart ui`).
//
// Invariants: the UI is read-only (it only calls the read methods of the
// Service); what it shows is one snapshot of the local DC's view, taken by
// one poller per Handler that runs only while a page is open, and pushed
// to the pages as server-sent events when it changes; a page that cannot
// keep a stream open polls the snapshot instead.
package ui

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vipsmart/vipsmart"
)

//go:embed static
var static embed.FS

// Options configure a Handler.
type Options struct {
	// Interval is how often the poller reads the daemon while a page is
	// open (default 250ms; 2s with more than 1,000 GIPs).
	Interval time.Duration
	// Server names the daemon in the page title (e.g. the --server of
	// `vipsmart ui`); empty on the daemon's own API.
	Server string
	// MaxEvents is how many of the latest events the page gets (default
	// 500).
	MaxEvents int
}

// Snapshot is what the page shows: the local DC's view of everything.
type Snapshot struct {
	Time   time.Time            `json:"time"`
	Server string               `json:"server,omitempty"`
	Error  string               `json:"error,omitempty"`
	Status *vipsmart.StatusInfo `json:"status,omitempty"`
	DCs    []vipsmart.DCInfo    `json:"dcs"`
	GIPs   []GIP                `json:"gips"`
	VIPs   []vipsmart.VIPInfo   `json:"vips"`
	Events []vipsmart.Event     `json:"events"`
	View   *vipsmart.HealthView `json:"view,omitempty"`
	// Truncated counts what the snapshot left out (more than 2,000
	// GIPs).
	Trunc map[string]int `json:"truncated,omitempty"`
}

// GIP is a GIP with the state of each placement and why, as `gip show`
// says it; Placements and States are in priority order, best first.
type GIP struct {
	vipsmart.GIP
	Active []string        `json:"active"`
	States []PlacementView `json:"states"`
}

// PlacementView is one placement's state: active, standby or unhealthy,
// and the reason.
type PlacementView struct {
	DC    string `json:"dc"`
	State string `json:"state"`
	Why   string `json:"why"`
}

// maxGIPs bounds the GIPs a snapshot carries (the page lists them with a
// filter; `vipsmart gip list` has them all).
const maxGIPs = 2000

// Handler serves the UI under /ui/ from svc.
func Handler(svc vipsmart.Service, o Options) http.Handler {
	if o.MaxEvents <= 0 {
		o.MaxEvents = 500
	}
	h := &handler{svc: svc, o: o, subs: map[chan []byte]struct{}{}}
	sub, _ := fs.Sub(static, "static")
	files := http.FileServer(http.FS(sub))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ui/api/snapshot", h.snapshotJSON)
	mux.HandleFunc("GET /ui/api/stream", h.stream)
	mux.Handle("GET /ui/", http.StripPrefix("/ui/", files))
	return secure(mux)
}

// secure sets headers that keep the page to its own origin.
func secure(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

type handler struct {
	svc vipsmart.Service
	o   Options

	mu      sync.Mutex
	subs    map[chan []byte]struct{}
	running bool
	last    []byte
	// events are the latest events (at most MaxEvents), seq the last one
	// read.
	events []vipsmart.Event
	seq    uint64
	// pollMu serialises snapshots (the poller and /api/snapshot).
	pollMu sync.Mutex
}

func (h *handler) snapshotJSON(w http.ResponseWriter, r *http.Request) {
	b := h.poll(r.Context())
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// stream sends the snapshot as a server-sent event each time it changes,
// and a comment every 15s to keep proxies from closing the connection.
func (h *handler) stream(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return // no streaming here: the page polls /ui/api/snapshot instead
	}
	// A stream outlives any write deadline of the server.
	_ = rc.SetWriteDeadline(time.Time{})
	fmtEvent := func(b []byte) []byte {
		return append(append([]byte("event: snapshot\ndata: "), b...), '\n', '\n')
	}
	ch := h.subscribe()
	defer h.unsubscribe(ch)
	// The first snapshot at once, so the page fills without waiting.
	if _, err := w.Write(fmtEvent(h.poll(r.Context()))); err != nil {
		return
	}
	_ = rc.Flush()
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case b := <-ch:
			if _, err := w.Write(fmtEvent(b)); err != nil {
				return
			}
			_ = rc.Flush()
		case <-keep.C:
			if _, err := w.Write([]byte(": keep-alive\n\n")); err != nil {
				return
			}
			_ = rc.Flush()
		}
	}
}

func (h *handler) subscribe() chan []byte {
	ch := make(chan []byte, 1)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.subs[ch] = struct{}{}
	if !h.running {
		h.running = true
		go h.run()
	}
	return ch
}

func (h *handler) unsubscribe(ch chan []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, ch)
}

// run polls while a page is subscribed and hands each changed snapshot to
// every page (a page that is behind gets only the newest).
func (h *handler) run() {
	for {
		iv := h.interval()
		time.Sleep(iv)
		h.mu.Lock()
		if len(h.subs) == 0 {
			h.running = false
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), max(2*iv, 2*time.Second))
		prev := h.lastSnapshot()
		b := h.poll(ctx)
		cancel()
		if bytes.Equal(stripTime(prev), stripTime(b)) {
			continue
		}
		h.mu.Lock()
		for ch := range h.subs {
			select {
			case <-ch:
			default:
			}
			ch <- b
		}
		h.mu.Unlock()
	}
}

func (h *handler) interval() time.Duration {
	if h.o.Interval > 0 {
		return h.o.Interval
	}
	h.mu.Lock()
	big := bytes.Count(h.last, []byte(`"placements"`)) > 1000
	h.mu.Unlock()
	if big {
		return 2 * time.Second
	}
	return 250 * time.Millisecond
}

func (h *handler) lastSnapshot() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

// stripTime drops the leading "time" field so that two snapshots that
// differ only in when they were taken compare equal.
func stripTime(b []byte) []byte {
	if i := bytes.IndexByte(b, ','); i > 0 && bytes.HasPrefix(b, []byte(`{"time":`)) {
		return b[i:]
	}
	return b
}

// poll takes one snapshot and returns it as JSON.
func (h *handler) poll(ctx context.Context) []byte {
	h.pollMu.Lock()
	defer h.pollMu.Unlock()
	s := h.take(ctx)
	b, err := marshal(s)
	if err != nil {
		b, _ = marshal(Snapshot{Time: s.Time, Error: err.Error()})
	}
	h.mu.Lock()
	h.last = b
	h.mu.Unlock()
	return b
}

func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// take reads the daemon. A read that fails leaves its part empty and the
// first error in Error (the page says the daemon cannot be reached).
func (h *handler) take(ctx context.Context) Snapshot {
	s := Snapshot{Time: time.Now().UTC(), Server: h.o.Server, DCs: []vipsmart.DCInfo{}, GIPs: []GIP{}, VIPs: []vipsmart.VIPInfo{}}
	fail := func(err error) {
		if s.Error == "" && err != nil {
			s.Error = err.Error()
		}
	}
	st, err := h.svc.Status(ctx)
	if err != nil {
		fail(err)
		s.Events = h.latestEvents()
		return s
	}
	s.Status = &st
	dcs, err := h.svc.ListDCs(ctx)
	fail(err)
	if dcs != nil {
		s.DCs = dcs
	}
	vips, err := h.svc.ListVIPs(ctx)
	fail(err)
	if vips != nil {
		s.VIPs = vips
	}
	gips, err := h.svc.ListGIPs(ctx)
	fail(err)
	view := healthView(st.Name, s.DCs, s.VIPs, gips)
	s.View = &view
	if len(gips) > maxGIPs {
		s.Trunc = map[string]int{"gips": len(gips)}
		gips = gips[:maxGIPs]
	}
	for _, g := range gips {
		s.GIPs = append(s.GIPs, explain(g, view))
	}
	fail(h.readEvents(ctx))
	s.Events = h.latestEvents()
	s.Time = time.Now().UTC() // when the reads ended: "last seen" ages are measured from here
	return s
}

// readEvents reads the events after the last one read, keeping the latest
// MaxEvents. A daemon whose log restarted (a new data directory: sequence
// numbers went down) is read again from the start.
func (h *handler) readEvents(ctx context.Context) error {
	for range 20 { // at most 20 pages per snapshot; the rest comes next time
		es, err := h.svc.Events(ctx, h.seq, 1000)
		if err != nil {
			return err
		}
		if len(es) == 0 {
			return nil
		}
		h.mu.Lock()
		h.events = append(h.events, es...)
		if n := len(h.events) - h.o.MaxEvents; n > 0 {
			h.events = slices.Delete(h.events, 0, n)
		}
		h.seq = es[len(es)-1].Seq
		h.mu.Unlock()
		if len(es) < 1000 {
			return nil
		}
	}
	return nil
}

func (h *handler) latestEvents() []vipsmart.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := slices.Clone(h.events)
	if out == nil {
		out = []vipsmart.Event{}
	}
	return out
}

// healthView rebuilds the local DC's health view from what the API says,
// as the daemon builds it: members as reachable as the local DC sees them;
// local VIPs as their checks say; another DC's VIPs named by placements up
// unless that DC reported them down.
func healthView(self string, dcs []vipsmart.DCInfo, vips []vipsmart.VIPInfo, gips []vipsmart.GIPInfo) vipsmart.HealthView {
	v := vipsmart.HealthView{Reachable: map[string]bool{self: true}, VIPUp: map[string]map[string]bool{}}
	down := map[string]map[string]bool{}
	for _, d := range dcs {
		if d.Self {
			continue
		}
		v.Reachable[d.Name] = d.Reachable
		down[d.Name] = map[string]bool{}
		for _, n := range d.VIPsDown {
			down[d.Name][n] = true
		}
	}
	own := map[string]bool{}
	for _, x := range vips {
		own[x.Name] = x.State == vipsmart.VIPUp
	}
	v.VIPUp[self] = own
	for _, g := range gips {
		for _, p := range g.Placements {
			if p.VIP == "" || p.DC == self {
				continue
			}
			if v.VIPUp[p.DC] == nil {
				v.VIPUp[p.DC] = map[string]bool{}
			}
			v.VIPUp[p.DC][p.VIP] = !down[p.DC][p.VIP]
		}
	}
	return v
}

// explain gives each placement of g its state and reason (as `gip show`).
func explain(g vipsmart.GIPInfo, view vipsmart.HealthView) GIP {
	why := g.Why
	if why == nil {
		why = vipsmart.ExplainPlacements(g.GIP, view, g.Active)
	}
	ps := slices.Clone(g.Placements)
	vipsmart.SortPlacements(ps)
	out := GIP{GIP: g.GIP, Active: g.Active}
	out.Placements = ps
	if out.Active == nil {
		out.Active = []string{}
	}
	for _, p := range ps {
		w := why[p.DC]
		state := "standby"
		switch {
		case strings.HasPrefix(w, "active"):
			state = "active"
		case strings.HasPrefix(w, "unhealthy"):
			state = "unhealthy"
		}
		out.States = append(out.States, PlacementView{DC: p.DC, State: state, Why: w})
	}
	return out
}
