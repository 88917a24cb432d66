// Package ui is vipsmart's web UI: a page embedded in the binary (no CDN,
// no build step) and the one JSON route it reads, all served under /ui/
// over any vipsmart.Service: the daemon itself (on its operator API) or a
// client of a daemon (`vipsmart ui`).
//
// Invariants: the UI is read-only (it only calls the read methods of the
// Service); what it shows is one snapshot of the local DC's view, taken by
// one poller per Handler that runs only while a page asks; a page long-polls
// for the next version of the snapshot as soon as it has drawn the last
// one, so it is live without a reload and never falls behind on a busy
// machine (it skips to the newest snapshot instead of queueing old ones).
package ui

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"slices"
	"strconv"
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
	// Server names the daemon in the page (e.g. the --server of
	// `vipsmart ui`); empty on the daemon's own API.
	Server string
	// MaxEvents is how many of the latest events the page keeps (default
	// 500).
	MaxEvents int
}

// Snapshot is what the page shows: the local DC's view of everything.
// Version changes whenever anything but Time and Events does; Events are
// the events after the sequence number the page asked from.
type Snapshot struct {
	Time    time.Time            `json:"time"`
	Version uint64               `json:"version"`
	Server  string               `json:"server,omitempty"`
	Error   string               `json:"error,omitempty"`
	Status  *vipsmart.StatusInfo `json:"status,omitempty"`
	DCs     []vipsmart.DCInfo    `json:"dcs"`
	GIPs    []GIP                `json:"gips"`
	VIPs    []vipsmart.VIPInfo   `json:"vips"`
	Events  []vipsmart.Event     `json:"events"`
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

// How long a long poll waits for a change, and how long the poller keeps
// reading the daemon after the last page asked.
const (
	longPoll = 10 * time.Second
	idleStop = 15 * time.Second
)

// Handler serves the UI under /ui/ from svc.
func Handler(svc vipsmart.Service, o Options) http.Handler {
	if o.MaxEvents <= 0 {
		o.MaxEvents = 500
	}
	h := &handler{svc: svc, o: o, changed: make(chan struct{})}
	sub, _ := fs.Sub(static, "static")
	files := http.FileServer(http.FS(sub))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ui/api/snapshot", h.snapshot)
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

	mu sync.Mutex
	// snap is the latest state (without events), version its version,
	// key what version was computed from; changed is closed (and
	// replaced) at each new version.
	snap    Snapshot
	version uint64
	key     []byte
	changed chan struct{}
	lastReq time.Time
	running bool
	// events are the latest events (at most MaxEvents), seq the last one
	// read.
	events []vipsmart.Event
	seq    uint64
	// pollMu serialises reads of the daemon.
	pollMu sync.Mutex
}

// snapshot answers GET /ui/api/snapshot?wait=VERSION&after=SEQ: the
// latest snapshot, with the events after SEQ. With wait, it is a long
// poll: while the snapshot is still at VERSION it waits (up to 10s) for a
// newer one. The page asks again as soon as it has drawn an answer, so it
// is live without ever queueing snapshots it has no time to draw (a busy
// browser skips to the newest).
func (h *handler) snapshot(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	wait, _ := strconv.ParseUint(q.Get("wait"), 10, 64)
	after, _ := strconv.ParseUint(q.Get("after"), 10, 64)
	h.mu.Lock()
	h.lastReq = time.Now()
	if !h.running {
		h.running = true
		go h.run()
	}
	ready := h.version > 0
	h.mu.Unlock()
	if !ready {
		h.poll(r.Context())
	}
	h.mu.Lock()
	version, changed := h.version, h.changed
	h.mu.Unlock()
	if q.Has("wait") && version <= wait {
		t := time.NewTimer(longPoll)
		select {
		case <-changed:
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
		t.Stop()
	}
	h.mu.Lock()
	s := h.snap
	s.Version = h.version
	s.Events = []vipsmart.Event{}
	for _, e := range h.events {
		if e.Seq > after {
			s.Events = append(s.Events, e)
		}
	}
	h.mu.Unlock()
	b, err := marshal(s)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// run reads the daemon every interval while pages ask, and stops
// idleStop after the last request.
func (h *handler) run() {
	for {
		iv := h.interval()
		time.Sleep(iv)
		h.mu.Lock()
		if time.Since(h.lastReq) > idleStop {
			h.running = false
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), max(2*iv, 2*time.Second))
		h.poll(ctx)
		cancel()
	}
}

func (h *handler) interval() time.Duration {
	if h.o.Interval > 0 {
		return h.o.Interval
	}
	h.mu.Lock()
	big := len(h.snap.GIPs) > 1000
	h.mu.Unlock()
	if big {
		return 2 * time.Second
	}
	return 250 * time.Millisecond
}

// poll takes one snapshot and makes it the latest, with a new version if
// anything but its time changed or new events came.
func (h *handler) poll(ctx context.Context) {
	h.pollMu.Lock()
	defer h.pollMu.Unlock()
	seq := h.lastSeq()
	s := h.take(ctx)
	noTime := s
	noTime.Time = time.Time{}
	key, err := marshal(noTime)
	if err != nil {
		s = Snapshot{Time: s.Time, Error: err.Error()}
		key = []byte(err.Error())
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.snap = s
	if !bytes.Equal(key, h.key) || h.seq != seq || h.version == 0 {
		h.key = key
		h.version++
		close(h.changed)
		h.changed = make(chan struct{})
	}
}

func (h *handler) lastSeq() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seq
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
	s := Snapshot{Server: h.o.Server, DCs: []vipsmart.DCInfo{}, GIPs: []GIP{}, VIPs: []vipsmart.VIPInfo{}}
	fail := func(err error) {
		if s.Error == "" && err != nil {
			s.Error = err.Error()
		}
	}
	st, err := h.svc.Status(ctx)
	if err != nil {
		fail(err)
		s.Time = time.Now().UTC()
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
	if len(gips) > maxGIPs {
		s.Trunc = map[string]int{"gips": len(gips)}
		gips = gips[:maxGIPs]
	}
	for _, g := range gips {
		s.GIPs = append(s.GIPs, explain(g, view))
	}
	fail(h.readEvents(ctx))
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
